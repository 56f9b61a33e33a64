"""Times from clients: ISO 8601 with an offset only, normalised to UTC (issue 8, defect 7)."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from domain.commands import CheckIn, Reschedule
from domain.events import RecordedEvent
from domain.models import INSTANT_FORMAT
from domain.planning import PlannedVisit
from tests.domain.support import REP, checked_in

RESCHEDULE = {
    "command_id": "cmd-1",
    "actor": {"id": "rep-1", "role": "rep"},
    "reason": "the customer asked for the afternoon",
}


def reschedule(when: Any) -> Reschedule:
    return Reschedule.model_validate({**RESCHEDULE, "scheduled_start": when})


@pytest.mark.parametrize(
    "when",
    [
        1893456000,
        1893456000.5,
        "1893456000",
        "2026-06-01",
        "2026-06-01T10:00",
        "2026-06-01T10:00:00",
        "2026-06-01 10:00+08:00",
        "20260601T1000Z",
        "2026-06-01T10Z",
        "next monday",
        "",
        None,
    ],
    ids=[
        "epoch-number",
        "epoch-float",
        "numeric-string",
        "date-only",
        "naive-text",
        "naive-text-seconds",
        "space-not-T",
        "basic-format",
        "hour-only",
        "words",
        "empty",
        "null",
    ],
)
def test_a_time_in_a_command_that_is_not_iso_8601_with_an_offset_is_refused(when: Any):
    with pytest.raises(ValidationError) as refused:
        reschedule(when)

    (error,) = refused.value.errors()
    assert error["loc"] == ("scheduled_start",)
    assert error["msg"] == INSTANT_FORMAT


def test_an_epoch_number_sent_as_json_by_a_foreign_client_is_refused():
    body = '{"command_id": "cmd-1", "actor": {"id": "rep-1", "role": "rep"}, "reason": "later", '
    with pytest.raises(ValidationError, match="ISO 8601 with its offset"):
        Reschedule.model_validate_json(body + '"scheduled_start": 1893456000}')
    with pytest.raises(ValidationError, match="ISO 8601 with its offset"):
        Reschedule.model_validate_json(body + '"scheduled_start": "1893456000"}')


def test_a_naive_datetime_from_a_python_caller_is_refused():
    with pytest.raises(ValidationError, match="timezone"):
        reschedule(datetime(2026, 6, 1, 10, 0))


@pytest.mark.parametrize(
    ("when", "utc"),
    [
        ("2026-06-01T10:00+08:00", datetime(2026, 6, 1, 2, 0, tzinfo=UTC)),
        ("2026-06-01T10:00+0800", datetime(2026, 6, 1, 2, 0, tzinfo=UTC)),
        ("2026-06-01T02:00:00.123456Z", datetime(2026, 6, 1, 2, 0, 0, 123456, tzinfo=UTC)),
        ("2026-05-31T21:30:15-04:30", datetime(2026, 6, 1, 2, 0, 15, tzinfo=UTC)),
        (
            datetime(2026, 6, 1, 10, 0, tzinfo=timezone(timedelta(hours=8))),
            datetime(2026, 6, 1, 2, 0, tzinfo=UTC),
        ),
    ],
    ids=["colon-offset", "basic-offset", "zulu-microseconds", "negative-offset", "aware-datetime"],
)
def test_an_iso_8601_time_with_an_offset_is_accepted_and_normalised_to_utc(when: Any, utc: datetime):
    start = reschedule(when).scheduled_start

    assert start == utc
    assert start.utcoffset() == timedelta(0)


def test_a_json_command_with_an_offset_reads_as_the_same_instant():
    body = '{"command_id": "c", "actor": {"id": "rep-1", "role": "rep"}, "reason": "later", '
    command = Reschedule.model_validate_json(body + '"scheduled_start": "2026-06-01T10:00+08:00"}')

    assert command.scheduled_start == datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def test_check_in_times_and_planned_visits_take_the_same_rule():
    execution = {"method": "on_site", "started_at": "2026-06-01T10:00+08:00", "ended_at": 1780279200}
    with pytest.raises(ValidationError, match="ISO 8601 with its offset"):
        CheckIn.model_validate({"command_id": "c", "actor": REP.model_dump(), "execution": execution})
    with pytest.raises(ValidationError, match="ISO 8601 with its offset"):
        PlannedVisit.model_validate(
            {"visit_id": "v-1", "customer_id": "c-1", "scheduled_start": "2026-06-01", "purpose": "intro"}
        )


def test_stored_events_read_back_through_the_same_models():
    # The log's payload holds the canonical UTC text; asyncpg gives occurred_at as a datetime.
    for recorded in checked_in().log:
        again = RecordedEvent.model_validate_json(recorded.model_dump_json())
        assert again == recorded
        assert RecordedEvent.model_validate(recorded.model_dump()) == recorded
