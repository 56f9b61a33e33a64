"""`visits audit`: the auditor's commands (replay a visit, cross-check, export, verify).

`visits audit ID` is short for `visits audit show ID`. Exit codes: 0 when everything
checked is intact, 3 when a check found a problem (tampering, a gap, a difference with
Temporal's history, a replay failure, an open visit or plan whose workflow has ended), 1
for errors (a server that cannot be reached included), 2 for bad input.
"""

from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from temporalio.client import Client
from typer.core import TyperGroup

from activities.plan_store import PLAN_LOG, PlanStore
from activities.store import VISIT_LOG, EventStore
from connect import NotConfigured, database_url
from domain.calendar import zone
from domain.month_plan import plan_id_of
from domain.planning import check_month
from settings import Settings
from starter.audit import Auditor, PlanAudit, VisitAudit
from starter.bundle import BundleReport, Selection, export_bundle, verify_bundle
from starter.cli.common import (
    BadInput,
    CliContext,
    JsonOut,
    Unreachable,
    console,
    dump,
    event_store,
    fail,
    instant,
    local,
    run,
    temporal_client,
)
from starter.cli.output import state_lines, timeline_table
from starter.cli.plans import print_plan
from starter.history_check import PLANS, HistoryCheck
from starter.history_check import check_history as compare_with_history
from starter.liveness import LivenessReport, check_liveness
from starter.log_check import LogCheckReport, Tables, verify_log
from starter.replay import DEFAULT_QUERY, ReplayReport, replay_files, replay_visits

EXIT_PROBLEMS = 3


class _DefaultShow(TyperGroup):
    """Routes `visits audit ID` to `visits audit show ID`."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["show", *args]
        return super().parse_args(ctx, args)


audit_app = typer.Typer(
    cls=_DefaultShow,
    help="Audit: replay a visit from the log, prove it whole and untampered, export and verify bundles. "
    "`visits audit ID` shows one visit.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _moment(text: str | None, settings: Settings) -> datetime | None:
    """--as-of: an ISO time with offset, or a date meaning the end of that day locally."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return instant(text, "--as-of")
    return datetime.combine(day, time.max, tzinfo=zone(settings.policy.timezone))


def _chain_line(audit: VisitAudit | PlanAudit) -> str:
    chain = audit.chain
    if not chain.ok:
        return f"Log: NOT INTACT at event {chain.first_bad_seq} ({chain.kind}): {chain.problem}"
    anchor = (
        "its head matches the read model"
        if audit.anchored
        else "no read-model head to compare its tail with (deleted newest events would not show)"
    )
    return (
        f"Log: intact, {chain.events_checked} events chained from event 1 to {chain.head_seq} "
        f"(head {chain.head_hash[:12]}…); {anchor}."
    )


def _print_audit(audit: VisitAudit, settings: Settings) -> None:
    out = console()
    tz = audit.state.policy.timezone if audit.state is not None else settings.policy.timezone
    out.print(_chain_line(audit))
    if audit.problem:
        out.print(f"Replay: stopped: {audit.problem}")
    if audit.as_of is not None:
        out.print(f"As of {local(audit.as_of, tz)} ({tz}):")
    if audit.state is None or audit.summary is None:
        out.print(f"Visit {audit.visit_id} had not been submitted yet.")
        return
    for line in state_lines(audit.state, audit.summary):
        out.print(line)
    out.print(timeline_table([step.entry for step in audit.steps], tz, status=True))


@audit_app.command()
def show(
    ctx: typer.Context,
    visit_id: Annotated[str, typer.Argument(metavar="VISIT_ID", help="The visit's id.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="TIME",
            help="Show the visit as it stood then: ISO time with offset, or a date (end of that day).",
        ),
    ] = None,
    check_history: Annotated[
        bool,
        typer.Option("--check-history", help="Also compare the log with the workflow's Temporal history."),
    ] = False,
    as_json: JsonOut = False,
) -> None:
    """Replay a visit from the log: verify its chain, then who did what, when and why, step by step."""

    async def main(cli: CliContext, settings: Settings) -> bool:
        moment = _moment(as_of, settings)
        async with event_store(settings) as store:
            audit = await Auditor(store).audit(visit_id, moment)
            history = None
            if check_history:
                history = await compare_with_history(await temporal_client(settings), store, visit_id)
        return _report(audit, history, as_json, lambda: _print_audit(audit, settings))

    if not run(ctx, main):
        raise typer.Exit(EXIT_PROBLEMS)


def _report(
    audit: VisitAudit | PlanAudit, history: HistoryCheck | None, as_json: bool, show: Callable[[], None]
) -> bool:
    """Print an audit (and its history check) as JSON or with `show`; whether all was intact."""
    if as_json:
        body: dict[str, Any] = audit.model_dump(mode="json")
        body["ok"] = audit.ok
        if history is not None:
            body["history_check"] = history.model_dump(mode="json")
        dump(body)
    else:
        show()
        if history is not None:
            _print_history(history)
    return audit.ok and (history is None or history.ok)


@audit_app.command("plan")
def plan(
    ctx: typer.Context,
    rep_id: Annotated[str, typer.Argument(metavar="REP_ID", help="The rep whose plan it is.")],
    month: Annotated[str, typer.Argument(metavar="MONTH", help="The month it plans, YYYY-MM.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="TIME",
            help="Show the plan as it stood then: ISO time with offset, or a date (end of that day).",
        ),
    ] = None,
    check_history: Annotated[
        bool,
        typer.Option("--check-history", help="Also compare the log with the workflow's Temporal history."),
    ] = False,
    as_json: JsonOut = False,
) -> None:
    """Replay a monthly plan from its log, as `visits audit VISIT_ID` replays a visit."""

    async def main(cli: CliContext, settings: Settings) -> bool:
        moment = _moment(as_of, settings)
        plan_id = _plan_id(f"{rep_id}:{month}", "MONTH")
        async with event_store(settings) as store:
            plans = PlanStore(store.pool)
            audit = await Auditor(store, plans).audit_plan(plan_id, moment)
            history = None
            if check_history:
                client = await temporal_client(settings)
                history = await compare_with_history(client, plans, plan_id, kind=PLANS)
        return _report(audit, history, as_json, lambda: _print_plan_audit(audit, settings))

    if not run(ctx, main):
        raise typer.Exit(EXIT_PROBLEMS)


def _print_plan_audit(audit: PlanAudit, settings: Settings) -> None:
    out = console()
    tz = audit.state.policy.timezone if audit.state is not None else settings.policy.timezone
    out.print(_chain_line(audit))
    if audit.problem:
        out.print(f"Replay: stopped: {audit.problem}")
    if audit.as_of is not None:
        out.print(f"As of {local(audit.as_of, tz)} ({tz}):")
    if audit.state is None:
        out.print(f"Plan {audit.plan_id} had not been opened yet.")
        return
    print_plan(audit.state, [step.entry for step in audit.steps], status=True)


def _counts(check: HistoryCheck) -> str:
    return (
        f"{check.appends_completed} of {check.appends} appends completed, {check.updates_accepted} "
        f"updates accepted, {check.log_rows} rows in the log"
    )


def _print_history(check: HistoryCheck) -> None:
    out = console()
    if check.ok:
        out.print(f"Temporal history: agrees with the log ({_counts(check)}).")
    else:
        out.print(
            f"Temporal history: {len(check.differences)} difference(s) with the log ({_counts(check)}):"
        )
        for d in check.differences:
            out.print(f"  - {d.message}")
    for note in check.notes:
        out.print(f"  note: {note}")


@audit_app.command()
def replay(
    ctx: typer.Context,
    visit_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[VISIT_ID]...", help="Replay these visits' histories.")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every visit workflow Temporal holds (or those --query selects).")
    ] = False,
    query: Annotated[
        str | None, typer.Option("--query", help=f"A Temporal visibility query (default: {DEFAULT_QUERY}).")
    ] = None,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file", help="A history JSON file (temporal workflow show --output json); repeatable."
        ),
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Replay recorded workflow histories against this code, to catch a change that would break
    running visits before it is deployed."""
    if not (visit_ids or everything or query or files):
        fail("say what to replay: visit ids, --all, --query or --file", 2)

    async def main(cli: CliContext, settings: Settings) -> bool:
        if files:
            report = await replay_files(files)
        else:
            client = await temporal_client(settings)
            report = await replay_visits(client, visit_ids or None, None if visit_ids else query)
        if as_json:
            dump(report.model_dump(mode="json"))
        else:
            _print_replay(report)
        return report.ok

    if not run(ctx, main):
        raise typer.Exit(EXIT_PROBLEMS)


def _print_replay(report: ReplayReport) -> None:
    for outcome in report.outcomes:
        if not outcome.ok:
            typer.echo(f"{outcome.workflow_id}: {outcome.problem}: {outcome.reason}")
    verdict = "the current code replays every one" if report.ok else "NOT every history replays"
    typer.echo(
        f"Replayed {report.replayed} histories: {report.passed} passed, {report.failed} failed, "
        f"{report.unavailable} unavailable; {verdict}."
    )


@audit_app.command()
def export(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Argument(metavar="DIR", help="The bundle directory to create (must not exist).")
    ],
    visit_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[VISIT_ID]...", help="Export these visits.")
    ] = None,
    id_from: Annotated[str | None, typer.Option("--id-from", help="Visits with ids from this one…")] = None,
    id_to: Annotated[str | None, typer.Option("--id-to", help="…up to this one (inclusive).")] = None,
    since: Annotated[
        str | None, typer.Option("--from", metavar="TIME", help="Visits with an event at or after this time…")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--to", metavar="TIME", help="…and before this time; logs are cut there."),
    ] = None,
    plans: Annotated[
        list[str] | None,
        typer.Option("--plan", metavar="REP_ID:MONTH", help="Export this monthly plan; repeatable."),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="The whole log: every visit and every monthly plan.")
    ] = False,
    as_json: JsonOut = False,
) -> None:
    """Write part of the logs as JSON Lines plus a manifest (counts, chain heads, its own hash).

    A time range alone (--from/--to) selects visits and monthly plans; visit ids or an id
    range select visits only; --plan selects plans.
    """

    async def main(cli: CliContext, settings: Settings) -> None:
        selection = Selection(
            visit_ids=visit_ids or [],
            id_from=id_from,
            id_to=id_to,
            occurred_from=instant(since, "--from"),
            occurred_to=instant(until, "--to"),
            plan_ids=[_plan_id(text) for text in plans or []],
        )
        if selection == Selection() and not everything:
            raise BadInput(
                "say what to export: visit ids, --id-from/--id-to, --from/--to, --plan REP_ID:MONTH, or --all"
            )
        async with event_store(settings) as store:
            manifest = await export_bundle(store, out, selection)
        if as_json:
            dump(manifest.model_dump(mode="json"))
            return
        broken = [h.visit_id for h in manifest.visits if not h.chain_ok_at_export]
        broken += [h.plan_id for h in manifest.plans if not h.chain_ok_at_export]
        plans_part = (
            f" and {manifest.plan_event_count} events of {manifest.plan_count} monthly plan(s)"
            if manifest.plan_count
            else ""
        )
        typer.echo(
            f"Exported {manifest.event_count} events of {manifest.visit_count} visit(s){plans_part} to {out} "
            f"({selection.describe()})."
        )
        typer.echo(f"Bundle hash: {manifest.bundle_hash}")
        typer.echo(
            "Keep this hash apart from the bundle; `visits audit verify DIR --expect-hash HASH` checks both."
        )
        if broken:
            typer.echo(
                f"Warning: the log of {', '.join(broken)} did not verify at export; the bundle shows it."
            )

    run(ctx, main)


def _plan_id(text: str, what: str = "--plan") -> str:
    """REP_ID:MONTH (the --plan option, or the two arguments of `audit plan`) as the plan's id."""
    rep_id, sep, month = text.rpartition(":")
    if not sep or not rep_id:
        raise BadInput(f"{what} takes REP_ID:MONTH, for example --plan r-wang:2026-12 (got {text!r})")
    try:
        return plan_id_of(rep_id, check_month(month))
    except ValueError as err:
        raise BadInput(f"{what}: {err}") from None


@audit_app.command()
def verify(
    ctx: typer.Context,
    bundle: Annotated[
        Path | None, typer.Argument(metavar="[BUNDLE]", help="A bundle directory to check offline.")
    ] = None,
    everything: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Check every visit's and every monthly plan's chain in the database, with a progress "
            "bar, then that every open visit and plan still has a running workflow.",
        ),
    ] = False,
    no_temporal: Annotated[
        bool,
        typer.Option(
            "--no-temporal", help="With --all: verify the log alone, without asking Temporal about workflows."
        ),
    ] = False,
    expect_hash: Annotated[
        str | None, typer.Option("--expect-hash", help="The bundle hash noted at export.")
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Verify a bundle offline (no database, no Temporal), or the whole log with --all."""
    if (bundle is None) == (not everything):
        fail("give either a BUNDLE directory or --all", 2)
    if bundle is not None:
        ok = run(ctx, lambda cli, settings: _verify_bundle(bundle, expect_hash, as_json))
    else:
        ok = run(ctx, lambda cli, settings: _verify_all(settings, as_json, temporal=not no_temporal))
    if not ok:
        raise typer.Exit(EXIT_PROBLEMS)


async def _verify_bundle(bundle: Path, expect_hash: str | None, as_json: bool) -> bool:
    report = verify_bundle(bundle, expect_hash=expect_hash)
    if as_json:
        dump(report.model_dump(mode="json"))
    else:
        _print_bundle_report(bundle, report)
    return report.ok


def _print_bundle_report(bundle: Path, report: BundleReport) -> None:
    if report.ok:
        plans = (
            f" and {report.plan_event_count} events of {report.plan_count} monthly plan(s)"
            if report.plan_count
            else ""
        )
        typer.echo(
            f"Bundle {bundle}: intact. {report.event_count} events of {report.visit_count} visit(s){plans}; "
            f"every chain verified from its first event and every stream replayed."
        )
        typer.echo(f"Bundle hash: {report.bundle_hash}")
        return
    typer.echo(f"Bundle {bundle}: NOT INTACT ({len(report.problems)} problem(s)):")
    for problem in report.problems:
        typer.echo(f"  - {problem}")


async def _liveness_client(settings: Settings) -> Client:
    """The Temporal client the liveness check needs, connected before the long chain check."""
    try:
        return await temporal_client(settings)
    except (NotConfigured, Unreachable) as err:
        raise Unreachable(
            f"{err} The workflows of open visits and plans cannot be checked; --no-temporal verifies "
            "the log alone."
        ) from None


async def _verify_all(settings: Settings, as_json: bool, *, temporal: bool) -> bool:
    url = database_url(settings)
    client = await _liveness_client(settings) if temporal else None
    async with event_store(settings) as store:
        reports: list[LogCheckReport] = []
        for tables in (VISIT_LOG, PLAN_LOG):
            if as_json:
                reports.append(await verify_log(store.pool, database_url=url, tables=tables))
            else:
                reports.append(await _verify_with_progress(store, url, tables))
                _print_log_report(reports[-1])
        liveness = (
            await check_liveness(client, store, PlanStore(store.pool), timezone=settings.policy.timezone)
            if client is not None
            else None
        )
    report, plans = reports
    ok = report.ok and plans.ok and (liveness is None or liveness.ok)
    if as_json:
        # The visits' report at the top, as before plans were verified; the plans' beside it.
        body: dict[str, Any] = report.model_dump(mode="json")
        body["plans"] = plans.model_dump(mode="json")
        body["liveness"] = liveness.model_dump(mode="json") if liveness is not None else None
        body["ok"] = ok
        dump(body)
    else:
        _print_liveness(liveness)
    return ok


async def _verify_with_progress(store: EventStore, url: str, tables: Tables) -> LogCheckReport:
    columns = (
        TextColumn(f"Verifying the {tables.word}s' log"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeRemainingColumn(),
    )
    # On stderr, and only on a terminal: the summary on stdout stays clean for pipes.
    screen = Console(stderr=True)
    with Progress(*columns, console=screen, transient=True, disable=not screen.is_terminal) as bar:
        task = bar.add_task("verify", total=None)
        return await verify_log(
            store.pool,
            database_url=url,
            tables=tables,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )


def _print_liveness(report: LivenessReport | None) -> None:
    if report is None:
        typer.echo(
            "The liveness of workflows was not checked (--no-temporal): an open visit or plan whose "
            "workflow has ended would not show."
        )
        return
    if not report.visits and not report.plans:
        typer.echo("Workflows: no visit or plan is open, so none needs a running workflow.")
        return
    streams = f"{report.visits} open visit(s) and {report.plans} open plan(s)"
    if report.ok:
        typer.echo(f"Workflows: each of the {streams} has a running workflow.")
        return
    typer.echo(
        f"Workflows: {len(report.unfollowed)} of the {streams} have no running workflow; nothing "
        "follows their deadlines:"
    )
    for finding in report.unfollowed:
        typer.echo(f"  - {finding.message}")


def _print_log_report(report: LogCheckReport) -> None:
    verdict = "every chain intact and anchored" if report.ok else "NOT INTACT"
    what = f"{report.events} events of {report.streams} {_streams(report)}"
    typer.echo(
        f"Verified {what} in {report.elapsed_seconds:.1f} s "
        f"({report.events_per_second:,.0f} events/s): {report.intact} intact; {verdict}."
    )
    for bad in report.bad:
        typer.echo(f"  - {bad.stream_id}: event {bad.first_bad_seq} ({bad.kind}): {bad.problem}")
    for stream_id in report.without_anchor:
        typer.echo(
            f"  - {stream_id}: has events but no read-model head; its newest events cannot be checked."
        )


def _streams(report: LogCheckReport) -> str:
    return "visits" if report.stream == VISIT_LOG.word else "monthly plans"
