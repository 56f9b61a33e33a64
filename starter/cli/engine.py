"""`visits dev`, `visits worker` and `visits relay`: run the engine itself, until Ctrl-C."""

import asyncio
import signal
from typing import Annotated

import typer

from logs import configure_logging
from settings import Settings
from starter.cli.common import EXIT_REFUSED, CliContext, fail, load_settings, run

engine_app = typer.Typer()
"""The engine commands; the root app takes them in as its own (no sub-command name)."""


@engine_app.command()
def dev(ctx: typer.Context) -> None:
    """Run embedded PostgreSQL, the Temporal dev server (with web UI) and a worker."""
    from starter.dev import DevError, run_dev

    _, settings = load_settings(ctx)
    configure_logging(settings.log_format, settings.log_level)

    async def main() -> None:
        await run_dev(settings, _stop_on_signals())

    try:
        asyncio.run(main())
    except DevError as err:
        fail(str(err), EXIT_REFUSED)


@engine_app.command("worker")
def worker_command(ctx: typer.Context) -> None:
    """Run a worker against the configured (or `visits dev`) servers until Ctrl-C."""
    import worker

    _, settings = load_settings(ctx)
    configure_logging(settings.log_format, settings.log_level)

    async def main(_: CliContext, s: Settings) -> None:
        await worker.serve(s, _stop_on_signals())

    run(ctx, main)


@engine_app.command("relay")
def relay_command(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, print what happened, and exit.")
    ] = False,
) -> None:
    """Run the notification relay alone (no worker), for deployments that scale it apart."""
    import worker

    _, settings = load_settings(ctx)
    configure_logging(settings.log_format, settings.log_level)

    async def main(_: CliContext, s: Settings) -> None:
        report = await worker.serve_relay(s, None if once else _stop_on_signals(), once=once)
        if report is not None:
            typer.echo(
                f"{report.delivered} delivered, {report.retry} to retry, {report.postponed} postponed "
                f"(quiet hours), {report.dead} dead; {report.sends} message(s) sent"
            )

    run(ctx, main)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
