"""`visits relay --once` and `visits notifications list|show|retry`, run as a person runs them,
against a real PostgreSQL and a real SMTP server (aiosmtpd) on 127.0.0.1."""

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from activities.people import PeopleStore
from settings import NotifySettings, Settings
from starter.cli import app
from starter.cli.common import CliContext
from tests.test_relay import DIRECTOR, MANAGER, REP, late_visit

pytestmark = pytest.mark.store


async def visits(settings: Settings, *args: str) -> tuple[int, str, str]:
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), obj=CliContext(settings=settings))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


async def test_the_relay_delivers_once_and_the_dead_letter_is_shown_and_sent_again(
    own_database, own_pool, smtp_server, tmp_path: Path
):
    smtp = await smtp_server()
    # The rep is missing from the directory: their reminder is a dead letter at first.
    await PeopleStore(own_pool).upsert_many([DIRECTOR, MANAGER])
    driver, ids = await late_visit(own_pool, alarms=2)
    notify = NotifySettings(
        smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False, smtp_password="never-shown"
    )
    settings = Settings(
        database_url=own_database, data_dir=tmp_path / "data", notify=notify, log_level="WARNING"
    )

    code, out, err = await visits(settings, "relay", "--once")
    assert code == 0, err
    assert out.strip() == "1 delivered, 0 to retry, 0 postponed (quiet hours), 1 dead; 1 message(s) sent"
    assert "never-shown" not in out + err

    code, out, _ = await visits(settings, "notifications", "list", "--status", "dead")
    assert code == 0 and ids[0] in out and "rep-wang is not in the directory" in out
    code, out, _ = await visits(settings, "notifications", "list", "--stream", "visit", "--json")
    listed = {row["id"]: row for row in json.loads(out)}
    assert listed[ids[0]]["status"] == "dead" and listed[ids[1]]["status"] == "delivered"
    assert listed[ids[1]]["channel"] == "email" and listed[ids[1]]["resolution"]["person_ids"] == ["mgr-li"]
    code, out, _ = await visits(settings, "notifications", "list", "--stream", "plan")
    assert (code, out.strip()) == (0, "No notifications match.")

    code, out, _ = await visits(settings, "notifications", "show", ids[1][:8])
    assert code == 0
    assert f"Notification {ids[1]} (visit {driver.visit_id}, event #5)" in out
    assert "Status      delivered after 1 attempt(s)" in out and "Resolved    on " in out
    assert "delivered email mgr-li" in out
    code, out, _ = await visits(settings, "notifications", "show", ids[0], "--json")
    shown = json.loads(out)
    assert shown["status"] == "dead" and shown["history"][0]["outcome"] == "dead"

    # A delivered notification is not sent again; a dead one is, once the directory knows the rep.
    code, _, err = await visits(settings, "notifications", "retry", ids[1])
    assert code == 1 and "is delivered; only pending and dead notifications are sent again" in err
    await PeopleStore(own_pool).upsert_many([REP])
    code, out, _ = await visits(settings, "notifications", "retry", "--dead")
    assert code == 0 and f"{ids[0]} (visit): pending, sent again from now" in out
    code, out, _ = await visits(settings, "relay", "--once")
    assert out.startswith("1 delivered")
    assert sorted(m["to"][0] for m in smtp.messages) == ["li@example.com", "wang@example.com"]


async def test_notifications_refuse_bad_input_and_unknown_ids(own_database, tmp_path: Path):
    settings = Settings(database_url=own_database, data_dir=tmp_path / "data")
    code, _, err = await visits(settings, "notifications", "retry")
    assert code == 2 and "or --dead for every dead one" in err
    code, _, err = await visits(settings, "notifications", "show", "0000aaaa")
    assert code == 1 and err.strip() == "No notification has the id 0000aaaa."
    code, _, err = await visits(settings, "notifications", "show", "V1")
    assert code == 1 and "is not a notification id" in err
    code, _, err = await visits(settings, "notifications", "list", "--status", "lost")
    assert code == 2
