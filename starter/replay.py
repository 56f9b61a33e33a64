"""Replay recorded visit histories against the current workflow code, before deploy.

Temporal re-runs a workflow's code over its history whenever a worker picks it up again;
code that would now make other decisions than the history records (a new timer, another
activity, a different order) fails every running visit with a nondeterminism error.
`replay_visits` fetches the histories of real visits from Temporal (by visit id, or all
that a visibility query finds) and `replay_files` reads exported ones, so a pipeline can
check them without a server. Each workflow is reported ok or failed with the reason.

The replay is quiet: a failing history makes the SDK say so twice more, in its core's
log (a WARN line per failed workflow task, written to stdout by default) and in Python's
(`Failed activation on workflow ...` with a traceback). The outcome already carries the
reason, so the replayer runs on a runtime of its own whose core logs below ERROR are
dropped (those left go to Python logging, never to stdout), and the SDK's Python records
of replayed workflows, told apart by the replayer's own namespace, are dropped too. A
worker running in the same process keeps its logs.
"""

import base64
import functools
import json
import logging
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from google.protobuf.json_format import ParseError
from pydantic import BaseModel, computed_field
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from workflows.contract import WORKFLOW_TYPE, workflow_id
from workflows.month_plan import MonthPlanWorkflow
from workflows.plan_contract import PLAN_WORKFLOW_TYPE, plan_workflow_id
from workflows.visit import VisitWorkflow

DEFAULT_QUERY = f"WorkflowType = '{WORKFLOW_TYPE}' OR WorkflowType = '{PLAN_WORKFLOW_TYPE}'"
"""Every visit and monthly plan workflow in the namespace, running or closed (within retention)."""

ENGINE_WORKFLOWS: tuple[type, ...] = (VisitWorkflow, MonthPlanWorkflow)
"""Every workflow the worker runs: a history of either replays against its current code."""

REPLAY_NAMESPACE = "visitflow-replay"
"""The namespace replayed workflows believe they run in; it marks their log records."""

_SDK_LOGGERS = ("temporalio.workflow", "temporalio.worker._workflow_instance")
"""The Python loggers that report on a workflow (its own logger, a failed activation)."""


class ReplayProblem(StrEnum):
    nondeterminism = "nondeterminism"  # the code no longer makes the recorded decisions
    error = "error"  # the replay stopped for another reason
    unavailable = "unavailable"  # no history to replay (unknown visit, retention, bad file)


class ReplayOutcome(BaseModel):
    """How one workflow's history replayed."""

    workflow_id: str
    run_id: str = ""
    source: str  # "temporal", or the file the history was read from
    ok: bool
    problem: ReplayProblem | None = None
    reason: str | None = None  # one line: the nondeterminism, or why there was nothing to replay
    detail: str | None = None  # the replayer's full report


class ReplayReport(BaseModel):
    """Every workflow replayed, with totals."""

    outcomes: list[ReplayOutcome]

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented way to serialise it
    @property
    def replayed(self) -> int:
        return sum(o.problem is not ReplayProblem.unavailable for o in self.outcomes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> int:
        return sum(o.ok for o in self.outcomes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failed(self) -> int:
        """Histories that did not replay (nondeterminism or another error)."""
        return sum(not o.ok and o.problem is not ReplayProblem.unavailable for o in self.outcomes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def unavailable(self) -> int:
        """Workflows or files asked for that had no history to replay."""
        return sum(o.problem is ReplayProblem.unavailable for o in self.outcomes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """Every history asked for replayed against the current code."""
        return all(o.ok for o in self.outcomes)


class _NotReplayed(logging.Filter):
    """Drops the records the SDK writes about a workflow being replayed here."""

    def filter(self, record: logging.LogRecord) -> bool:
        details = getattr(record, "temporal_workflow", None)
        return not (isinstance(details, Mapping) and details.get("namespace") == REPLAY_NAMESPACE)


@functools.cache
def _quiet_runtime() -> Runtime:
    """A runtime for replays: core logs at ERROR only, forwarded to Python logging.

    Made once: each runtime starts threads of its own. The filters go on the SDK's loggers
    here too, so they are added once, and only by a program that replays.
    """
    for name in _SDK_LOGGERS:
        logging.getLogger(name).addFilter(_NotReplayed())
    core = LoggingConfig(
        filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger(f"{__name__}.core")),
    )
    # No heartbeat: a replayer talks to no server.
    return Runtime(telemetry=TelemetryConfig(logging=core), worker_heartbeat_interval=None)


def visit_replayer(
    workflows: Sequence[type] = ENGINE_WORKFLOWS, data_converter: DataConverter = pydantic_data_converter
) -> Replayer:
    """A replayer set up as the worker is (same workflows, default sandbox, pydantic payloads),
    that reports failures in its outcomes only (see the module docstring)."""
    return Replayer(
        workflows=list(workflows),
        data_converter=data_converter,
        namespace=REPLAY_NAMESPACE,
        runtime=_quiet_runtime(),
    )


# The SDK core reports a failed replay as a debug dump around the failure's own message.
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')


def _reason(error: Exception) -> dict[str, Any]:
    """The outcome fields of a failed replay: what kind, the message, and the full text."""
    detail = str(error) or type(error).__name__
    found = _CORE_MESSAGE.search(detail)
    return {
        "problem": (
            ReplayProblem.nondeterminism if isinstance(error, NondeterminismError) else ReplayProblem.error
        ),
        "reason": found.group(1).replace('\\"', '"') if found else detail,
        "detail": detail,
    }


def _run_id(history: WorkflowHistory) -> str:
    try:
        return history.run_id
    except RuntimeError:  # no start event: the replay itself reports what is wrong
        return ""


Item = tuple[WorkflowHistory, str] | ReplayOutcome
"""A history to replay with where it came from, or the outcome of one there was none for."""


async def _replay(replayer: Replayer, items: AsyncIterator[Item]) -> list[ReplayOutcome]:
    """Replay each history in turn, in order; a failure is recorded and the next one goes on."""
    outcomes: list[ReplayOutcome] = []
    sources: dict[int, str] = {}

    async def histories() -> AsyncIterator[WorkflowHistory]:
        async for item in items:
            if isinstance(item, ReplayOutcome):
                outcomes.append(item)  # histories replay one at a time, so order is kept
                continue
            history, source = item
            sources[id(history)] = source
            yield history

    # The iterator form of `replay_workflows(..., raise_on_replay_failure=False)`: it keeps
    # going after a failure too, and tells which history each result belongs to.
    async with replayer.workflow_replay_iterator(histories()) as results:
        async for result in results:
            history = result.history
            outcome = ReplayOutcome(
                workflow_id=history.workflow_id,
                run_id=_run_id(history),
                source=sources.pop(id(history), ""),
                ok=result.replay_failure is None,
            )
            if result.replay_failure is not None:
                outcome = outcome.model_copy(update=_reason(result.replay_failure))
            outcomes.append(outcome)
    return outcomes


def _unavailable(workflow: str, source: str, reason: str) -> ReplayOutcome:
    return ReplayOutcome(
        workflow_id=workflow, source=source, ok=False, problem=ReplayProblem.unavailable, reason=reason
    )


async def replay_visits(
    client: Client,
    visit_ids: Sequence[str] | None = None,
    query: str | None = None,
    *,
    limit: int | None = None,
    workflows: Sequence[type] = ENGINE_WORKFLOWS,
) -> ReplayReport:
    """Replay the histories of the given visits, or of every workflow `query` finds.

    With neither, every visit and monthly plan workflow (`DEFAULT_QUERY`). A visit whose history Temporal no
    longer has is reported as unavailable. Payloads are decoded with the client's converter.
    """
    if visit_ids is not None and query is not None:
        raise ValueError("Give visit ids or a query, not both.")

    async def fetch(wid: str, run_id: str | None = None) -> Item:
        try:
            return await client.get_workflow_handle(wid, run_id=run_id).fetch_history(), "temporal"
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            return _unavailable(
                wid,
                "temporal",
                f"Temporal has no history of workflow {wid}: the visit was never started, or its "
                "history was deleted after the namespace's retention period.",
            )

    async def items() -> AsyncIterator[Item]:
        if visit_ids is not None:
            for visit_id in visit_ids:
                yield await fetch(workflow_id(visit_id))
            return
        # Listed lazily, page by page, so a large namespace is never held in memory at once.
        async for execution in client.list_workflows(query or DEFAULT_QUERY, limit=limit):
            yield await fetch(execution.id, execution.run_id)

    return ReplayReport(outcomes=await _replay(visit_replayer(workflows, client.data_converter), items()))


def opened_workflow_id(history: Mapping[str, Any]) -> str | None:
    """The workflow id an exported history ran under, read from its opening command.

    Exports (`temporal workflow show --output json`) do not name their workflow, and the
    workflows check that they run under the id their opening command names; the engine's
    ids derive from that command (a visit's id, a plan's rep and month). None when the
    history is not one of the engine's or its input cannot be read as plain JSON.
    """
    try:
        started = history["events"][0]["workflowExecutionStartedEventAttributes"]
        kind = started["workflowType"]["name"]
        opening = json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))
        if kind == WORKFLOW_TYPE:
            return workflow_id(opening["visit_id"])
        if kind == PLAN_WORKFLOW_TYPE:
            return plan_workflow_id(opening["rep_id"], opening["month"])
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    return None


def history_from_json(text: str, fallback_id: str) -> WorkflowHistory:
    """An exported history, under the workflow id it ran with (`fallback_id` when unknown)."""
    parsed = json.loads(text)
    found = opened_workflow_id(parsed) if isinstance(parsed, dict) else None
    return WorkflowHistory.from_json(found or fallback_id, parsed)


def _read_file(path: Path) -> Item:
    try:
        history = history_from_json(path.read_text(encoding="utf-8"), path.stem)
    except (OSError, UnicodeDecodeError, ValueError, ParseError) as err:
        # json.JSONDecodeError is a ValueError; ParseError covers protobuf's field checks.
        return _unavailable(path.stem, str(path), f"Not a readable history: {err}")
    if not history.events:
        return _unavailable(path.stem, str(path), "The history has no events.")
    return history, str(path)


async def replay_files(
    paths: Iterable[Path | str],
    *,
    workflows: Sequence[type] = ENGINE_WORKFLOWS,
    data_converter: DataConverter = pydantic_data_converter,
) -> ReplayReport:
    """Replay histories exported as JSON (`temporal workflow show --output json`, the web UI,
    or `WorkflowHistory.to_json()`); a file that is not a history is reported unavailable."""

    async def items() -> AsyncIterator[Item]:
        for path in paths:
            yield _read_file(Path(path))

    return ReplayReport(outcomes=await _replay(visit_replayer(workflows, data_converter), items()))
