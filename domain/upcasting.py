"""Upcasting: stored payloads of old event versions brought up to the current shape, purely.

Stored rows are never rewritten; old versions are translated on the way out. To change an
event's shape:

1. raise the `schema_version` default of its class in `domain/events.py` (say 1 -> 2);
2. register a function that turns a version-1 payload into a version-2 one::

       @upcaster("ReportSubmitted", 1)
       def _report_submitted_1_to_2(payload: dict[str, Any]) -> dict[str, Any]:
           return {**payload, "channel": "app"}

3. test it on a stored JSON payload of version 1.

Upcasters chain: a version-1 row passes 1 -> 2 -> 3 until no upcaster is registered for
its (type, version). Hashes are always verified on the stored row, never the upcast one.
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
