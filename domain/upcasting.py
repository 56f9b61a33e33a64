"""Upcasting: stored payloads of old event versions brought up to the current shape, purely.

Stored rows are never rewritten; old versions are translated on the way out, by every
reader (the auditor's replay, bundle verification, the read-model rebuild). Hashes are
always verified on the stored row, never on the upcast one.

How to change an event's shape (the steps this module's own upcasters followed):

1. raise the `schema_version` default of its class in `domain/events.py` (say 1 -> 2) and
   change its fields; say in the class docstring what the older version held;
2. register here a function that turns a version-1 payload into a version-2 one, with the
   payload as its only input (it must not need the envelope or other events)::

       @upcaster("ReportSubmitted", 1)
       def _report_submitted_1_to_2(payload: Payload) -> Payload:
           return {**payload, "channel": "app"}

3. test it on stored payloads of the old version: `tests/fixtures/bundle-v1` holds a log
   exported before the first change; keep such a bundle for each version retired;
4. run `visits audit replay --all` against production histories before deploying: running
   visits replay their old events through the new code. The workflow chains each append
   from the head hash the log reports, so a changed stored form never breaks a chain.

Upcasters chain: a version-1 row passes 1 -> 2 -> 3 until no upcaster is registered for
its (type, version).
"""

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""(event type, version it reads) -> function returning the payload of the next version."""


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register the function that lifts `event_type` payloads from `from_version` by one."""

    def register(fn: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in UPCASTERS:
            raise ValueError(f"an upcaster for {event_type} version {from_version} already exists")
        UPCASTERS[key] = fn
        return fn

    return register


def upcast(event_type: str, version: int, payload: Payload) -> tuple[int, Payload]:
    """The payload brought to the newest version reachable, and that version."""
    while (step := UPCASTERS.get((event_type, version))) is not None:
        # A copy, so an upcaster that edits in place cannot touch the caller's row.
        payload = step(dict(payload))
        version += 1
    return version, payload


# --- the upcasters ------------------------------------------------------------------------


def _recipient_as_actor(payload: Payload) -> Payload:
    """Version 1 named the recipient in two fields; version 2 as one actor, like the envelope."""
    body = dict(payload)
    body["recipient"] = {"id": body.pop("recipient_id"), "role": body.pop("recipient_role")}
    return body


upcaster("ReminderSent", 1)(_recipient_as_actor)
upcaster("Escalated", 1)(_recipient_as_actor)


def _first_of_its_kind(payload: Payload) -> Payload:
    """Version 2 reminders and escalations were never repeats; version 3 counts them."""
    return {**payload, "repeat": 0}


upcaster("ReminderSent", 2)(_first_of_its_kind)
upcaster("Escalated", 2)(_first_of_its_kind)
upcaster("MonthPlanReminderSent", 1)(_first_of_its_kind)
upcaster("MonthPlanEscalated", 1)(_first_of_its_kind)
