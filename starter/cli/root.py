"""The root `visits` command: its global options, with every command group assembled under it.

Only this module imports the sub-command modules; they import `common` and `output`,
never this one, so the tool has no import circle.
"""

from typing import Annotated

import typer

from logs import configure_logging
from starter.cli.audit import audit_app
from starter.cli.common import DEFAULT_TIMEOUT, CliContext
from starter.cli.customers import customers_app
from starter.cli.engine import engine_app
from starter.cli.kpi import kpi_app
from starter.cli.notifications import notifications_app
from starter.cli.people import people_app
from starter.cli.plans import plan_app
from starter.cli.visits import visits_app

app = typer.Typer(
    name="visits",
    help="Customer-visit lifecycles: plans, approvals, check-ins, reports, promised items, escalations.",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks with locals would print settings (database passwords); errors get one line.
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    ctx: typer.Context,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the engine's answer.", min=1)
    ] = DEFAULT_TIMEOUT,
) -> None:
    """Customer-visit lifecycles on Temporal, with every event in PostgreSQL.

    Servers come from VISITFLOW_* settings, or from a running `visits dev`.
    """
    cli = ctx.ensure_object(CliContext)
    cli.timeout = timeout


# Unnamed groups lend their commands to the root; this order is the order `visits --help` lists.
app.add_typer(engine_app)
app.add_typer(visits_app)
app.add_typer(kpi_app)
app.add_typer(audit_app, name="audit")
app.add_typer(customers_app, name="customers")
app.add_typer(people_app, name="people")
app.add_typer(plan_app, name="plan")
app.add_typer(notifications_app, name="notifications")


def main() -> None:
    """The `visits` console script."""
    # Client commands stay quiet; `dev` and `worker` reconfigure with VISITFLOW_LOG_LEVEL.
    configure_logging("auto", "WARNING")
    app()
