"""The command log each stream's workflow holds: the one way a command becomes recorded events.

Composition, not a base class: a workflow (a visit, a monthly plan) makes one `CommandLog`
in its `__init__` and hands it its updates, its validators and its main loop. The log:

- decodes every input in the workflow (`decode`): a payload that is not JSON, not an object,
  or not the command's shape is refused as `command.invalid`, never left to fail the
  workflow task or come back as a retryable decoding error;
- opens the stream (`open_stream`): the opening command is decoded, checked against the
  workflow's id, decided and recorded; a refused opening ends the run as failed, so that the
  id can be used again;
- validates (`validate`, for update validators, no side effects) and executes (`execute`)
  commands: under one lock, a repeated command id gets its first result, every alarm whose
  time has come is recorded first (a deadline that passed while no worker ran must not be
  swallowed by the command that resolves it), then the command is decided and recorded;
- follows the deadlines (`follow_deadlines`): sleeps until the next alarm, fires it;
- records (`record`): seals the events (ids and time minted here), appends them through
  the stream's activity, and moves the state forward from the head the log reports.
"""

import asyncio
import hashlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.models import DeputyCheck
    from activities.visit_activities import VisitActivities
    from domain.actors import CommandBase
    from domain.alarms import Alarm
    from domain.errors import RuleViolation
    from domain.stream import Recorded, Stream

S = TypeVar("S")
R = TypeVar("R", bound=Recorded)
C = TypeVar("C", bound=CommandBase)
Res = TypeVar("Res", bound=BaseModel)

APPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    # Only a log that disagrees with the workflow is final; outages are waited out.
    non_retryable_error_types=["SequenceConflict", "AppendRefused", "ReviewFailed"],
)
"""The retry policy of every activity a stream's workflow runs."""

ALARMS_BEFORE_COMMANDS = "alarms-before-commands"
"""Patch id: histories recorded before due alarms were fired ahead of a command replay as they ran."""


@dataclass(frozen=True)
class Decided:
    """A command's events with how to record them: at `occurred_at` (default: now), and
    `extra` fields for its result (a plan submission's findings)."""

    events: list[Any]
    occurred_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Decision = Callable[[S, datetime], list[Any] | Decided | Awaitable[list[Any] | Decided]]
"""How a command is decided under the lock, given the state and the time (may run activities)."""


def refusal(violation: RuleViolation) -> ApplicationError:
    """A refused command as the error clients see: the sentence, typed by its rule."""
    return ApplicationError(violation.message, type=violation.rule, non_retryable=True)


def invalid(message: str) -> ApplicationError:
    """The refusal of input that cannot be read as a command."""
    return ApplicationError(message, type="command.invalid", non_retryable=True)


def parse_command(model: type[C], raw: dict[str, Any]) -> C:
    """Validate a command's JSON in the workflow, so a malformed one is refused in one clear line."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "command"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise invalid(f"The command is malformed: {where}: {first['msg']}{more}.") from None


def fingerprint(command: BaseModel) -> str:
    """What tells a repeated command from another one sent under the same command id."""
    return hashlib.sha256(command.model_dump_json().encode()).hexdigest()


def decode(model: type[C], raw: Any) -> C:
    """The command in `raw` (a payload as received, or a decoded value), or `command.invalid`."""
    value = raw
    if isinstance(raw, RawValue):
        try:
            value = workflow.payload_converter().from_payloads([raw.payload])[0]
        except (KeyError, RuntimeError, ValueError):
            raise invalid("The command is malformed: its payload is not JSON.") from None
    if not isinstance(value, dict):
        raise invalid(f"The command is malformed: expected a JSON object, got {_json_kind(value)}.")
    return parse_command(model, value)


NULL = RawValue(Payload(metadata={"encoding": b"binary/null"}))
"""A payload holding null: the default of an optional argument taken raw (a raw argument's
type hint must be `RawValue` itself, so `RawValue | None` would not do)."""


def decode_optional_text(raw: RawValue, what: str) -> str | None:
    """A JSON string or null argument (such as the `opened` update's command id), or `command.invalid`."""
    try:
        value = workflow.payload_converter().from_payloads([raw.payload])[0]
    except (KeyError, RuntimeError, ValueError):
        raise invalid(f"The {what} is malformed: its payload is not JSON.") from None
    if value is not None and not isinstance(value, str):
        raise invalid(f"The {what} is malformed: expected a string or null, got {_json_kind(value)}.")
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


class CommandLog(Generic[S, R, Res]):
    """One stream's state and the order of its appends, inside its workflow.

    `append` is the stream's append activity (a method reference); `request` builds its
    input from the stream id, the sealed events and the state after them; `result` builds
    the answer to a command (`**extra` passes stream-specific fields, such as a plan's
    findings); `not_open` is the sentence for a stream not recorded yet.
    """

    def __init__(
        self,
        stream: Stream[S, R],
        *,
        append: Callable[..., Awaitable[Any]],
        request: Callable[[str, list[R], S], BaseModel],
        result: Callable[..., Res],
        not_open: str,
    ) -> None:
        self.stream = stream
        self.stream_id = ""
        self.state: S | None = None
        self.lock = asyncio.Lock()
        self._append = append
        self._request = request
        self._result = result
        self._not_open = not_open
        self._version = 0  # bumped on every append; the deadline loop waits on it
        self._results: dict[str, tuple[str, Res]] = {}
        self._opened: Res | None = None
        self._open_refusal: ApplicationError | None = None
        self._opened_acknowledged = False

    # --- state ---------------------------------------------------------------------------

    def current(self) -> S:
        """The state so far; refused as `<stream>.not_open` before the opening is recorded."""
        if self.state is None:
            raise ApplicationError(self._not_open, type=f"{self.stream.name}.not_open")
        return self.state

    # --- opening -------------------------------------------------------------------------

    async def open_stream(
        self,
        raw: Any,
        model: type[C],
        *,
        identify: Callable[[C], str],
        workflow_id_of: Callable[[str], str],
        decide: Callable[[C], Awaitable[list[Any]]],
    ) -> C:
        """Decode, check, decide and record the opening command; return it.

        `identify` names the stream the command opens, `workflow_id_of` that stream's
        workflow id. A refusal (malformed input, a workflow id of another stream, a rule) is
        kept for the `opened` update, then raised once every handler has finished: the run
        fails, and a corrected opening may use the id again.
        """
        try:
            async with self.lock:
                command = decode(model, raw)
                stream_id = identify(command)
                expected, actual = workflow_id_of(stream_id), workflow.info().workflow_id
                if actual != expected:
                    raise invalid(
                        f"The command opens {self.stream.name} {stream_id}, whose workflow id is "
                        f"{expected}, but it was sent to workflow {actual}; open it under its own id."
                    )
                self.stream_id = stream_id
                try:
                    events = await decide(command)
                except RuleViolation as violation:
                    raise refusal(violation) from None
                self._opened = await self._record_opening(command, events)
                return command
        except ApplicationError as refused:
            self._open_refusal = refused
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise

    async def _record_opening(self, command: CommandBase, events: list[Any]) -> Res:
        try:
            return await self.record(command, events)
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "SequenceConflict":
                # The log already holds this stream: a start of its id from outside the
                # engine's clients (they never reuse an id) must not fail with a store error.
                raise refusal(
                    RuleViolation(
                        f"{self.stream.name}.exists",
                        f"The log already holds {self.stream.name} {self.stream_id}; it cannot be "
                        "opened again.",
                    )
                ) from None
            raise

    async def opened(self, raw_command_id: RawValue) -> Res:
        """The `opened` update: wait for the opening and return its result.

        With a command id, a different opening command is refused: the stream exists.
        """
        command_id = decode_optional_text(raw_command_id, "opening command id")
        await workflow.wait_condition(lambda: self._opened is not None or self._open_refusal is not None)
        if self._open_refusal is not None or self._opened is None:
            raise self._open_refusal or ApplicationError("not opened", type=f"{self.stream.name}.not_open")
        first = self._opened
        opening_id, name = getattr(first, "command_id", None), self.stream.name
        if command_id is not None and command_id != opening_id:
            raise refusal(
                RuleViolation(
                    f"{name}.exists",
                    f"{name.capitalize()} {self.stream_id} already exists, opened by command {opening_id}; "
                    f"send changes as commands to that {name}.",
                )
            )
        repeat = self._opened_acknowledged
        self._opened_acknowledged = True
        return first.model_copy(update={"duplicate": True}) if repeat else first

    # --- commands ------------------------------------------------------------------------

    def known(self, command: CommandBase) -> Res | None:
        """The first result of a command sent again; a different command under its id is refused."""
        known = self._results.get(command.command_id)
        if known is None:
            return None
        if known[0] != fingerprint(command):
            raise ApplicationError(
                f"Command id {command.command_id} was already used for a different command on this "
                f"{self.stream.name}; use a new id for a new command.",
                type="command.id_reused",
                non_retryable=True,
            )
        return known[1].model_copy(update={"duplicate": True})

    def validate(self, command: C, judge: Callable[[S, datetime], object]) -> None:
        """For an update's validator: refuse before the command enters history, change nothing."""
        if self.known(command) is not None:
            return
        try:
            judge(self.current(), workflow.now())
        except RuleViolation as violation:
            raise refusal(violation) from None

    async def execute(self, command: C, decide: Decision[S]) -> Res:
        """Record `command` once: due alarms first, then its events, under the lock."""
        async with self.lock:
            # Checked under the lock: the same command sent twice at once runs once.
            known = self.known(command)
            if known is not None:
                return known
            await self.fire_due_alarms()
            if command.on_behalf_of is not None:
                await self._check_deputy(command)
            try:
                decision = decide(self.current(), workflow.now())
                decided = await decision if inspect.isawaitable(decision) else decision
            except RuleViolation as violation:
                raise refusal(violation) from None
            if isinstance(decided, Decided):
                return await self.record(
                    command, decided.events, occurred_at=decided.occurred_at, **decided.extra
                )
            return await self.record(command, decided)

    async def _check_deputy(self, command: CommandBase) -> None:
        """A deputy acts only while the directory says so: asked before the command is decided."""
        try:
            await workflow.execute_activity_method(
                VisitActivities.check_deputy,
                DeputyCheck(
                    deputy_id=command.actor.id, absent_id=command.on_behalf_of or "", at=workflow.now()
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=APPEND_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "role.deputy":
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from None
            raise

    async def fire_due_alarms(self) -> None:
        """Record every alarm whose time has come, in time order (hold the lock).

        A timer and a late command can reach the workflow together (no worker ran across the
        deadline): the command must not resolve the concern before its alarm is on record.
        """
        while (alarm := self.stream.due_alarm(self.current(), workflow.now())) is not None:
            # Histories recorded before this rule replay as they ran (without the marker).
            if not workflow.patched(ALARMS_BEFORE_COMMANDS) or not await self.fire(alarm):
                return

    # --- deadlines -----------------------------------------------------------------------

    async def follow_deadlines(self, until: Callable[[S], bool]) -> None:
        """Sleep until the next reminder or escalation, send it; repeat until `until(state)`."""
        while not until(self.current()):
            alarm = self.stream.next_alarm(self.current(), workflow.now())
            if alarm is None:
                await self._wait_for_change(None)
                continue
            delay = alarm.at - workflow.now()
            if delay > timedelta(0) and await self._wait_for_change(delay):
                continue  # the stream moved on; the next alarm may differ
            async with self.lock:
                # A command may have landed (and fired this alarm) while this waited.
                if self.stream.next_alarm(self.current(), workflow.now()) != alarm:
                    continue
                if not await self.fire(alarm):
                    await self._wait_for_change(None)

    async def _wait_for_change(self, limit: timedelta | None) -> bool:
        """Wait for the next append (True) or for `limit` to pass (False)."""
        seen = self._version
        try:
            await workflow.wait_condition(lambda: self._version != seen, timeout=limit)
        except TimeoutError:
            return False
        return True

    async def fire(self, alarm: Alarm) -> bool:
        """Record the engine's command for `alarm`; False when the rules refuse it."""
        command = alarm.command()
        try:
            events = self.stream.decide_alarm(self.current(), alarm, workflow.now())
        except RuleViolation as violation:
            # Should not happen: next_alarm and the rules share the deadlines. The caller
            # waits for the next change rather than spin, keeping the stream open and visible.
            workflow.logger.warning("timer refused: %s (%s)", violation.message, violation.rule)
            return False
        await self.record(command, events)
        workflow.logger.info("%s %s level %s", alarm.kind, alarm.concern, alarm.level)
        return True

    # --- the log -------------------------------------------------------------------------

    async def record(
        self, command: CommandBase, events: list[Any], *, occurred_at: datetime | None = None, **extra: Any
    ) -> Res:
        """Seal and commit `events`, then move the state forward; the command's result."""
        state = self.state
        recorded = self.stream.seal(
            events,
            stream_id=self.stream_id,
            last_seq=getattr(state, "last_seq", 0),
            head_hash=getattr(state, "head_hash", ""),
            actor=command.actor,
            command_id=command.command_id,
            occurred_at=occurred_at or workflow.now(),
            # Minted here, not in the activity: a retried append carries the same ids.
            event_ids=[str(workflow.uuid4()) for _ in events],
        )
        after = self.stream.fold(recorded, state)
        if after is None:
            raise ApplicationError("nothing to record", type="AppendRefused", non_retryable=True)
        stored = await workflow.execute_activity_method(
            self._append,
            self._request(self.stream_id, recorded, after),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=APPEND_RETRY,
        )
        # Chain the next append from the head the log reports, not the one computed here:
        # replayed after an upgrade that changed an event's stored form (a new schema
        # version), this code computes other hashes than those the log holds.
        self.state = after.model_copy(update={"head_hash": stored.head_hash})  # type: ignore[attr-defined]
        self._version += 1
        result = self._result(command, self.state, recorded, **extra)
        self._results[command.command_id] = (fingerprint(command), result)
        return result
