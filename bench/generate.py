"""Realistic visit logs for the benchmark, made by the real rules and re-stamped cheaply.

`template(seed)` plays one visit through `domain.decide` the way the engine would: a rep
plans, a manager approves, returns or rejects, timers remind and escalate when people are
late, the rep checks in and reports promises, which are kept (or not). `restamp` copies a
template under a new visit id with new event ids and recomputes its hash chain with
`domain.chain`, so a million events cost a few hundred stories plus hashing.
"""

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from domain.actors import SYSTEM, Actor, Role
from domain.alarms import AlarmKind
from domain.chain import link_hash, row_content
from domain.commands import (
    AcceptReport,
    ApprovePlan,
    CancelVisit,
    CheckIn,
    Command,
    CompleteItem,
    Escalate,
    RejectPlan,
    Remind,
    Reschedule,
    ReturnPlan,
    ReturnReport,
    RevisePlan,
    SubmitPlan,
    SubmitReport,
    WaiveReport,
)
from domain.deadlines import next_alarm
from domain.decide import decide
from domain.errors import RuleViolation
from domain.events import GENESIS_HASH, RecordedEvent
from domain.models import Customer, CustomerTier, Execution, Plan, PromisedItemIn, Report, VisitMethod
from domain.policy import Policy
from domain.state import VisitState, evolve
from domain.summary import VisitSummary, summarize
from domain.visit import VISITS

SHANGHAI = ZoneInfo("Asia/Shanghai")
TEMPLATE_VISIT_ID = "template"

CUSTOMERS = [
    ("C-1001", "华东五金 East China Hardware", CustomerTier.core),
    ("C-1002", "Acme Trading", CustomerTier.potential),
    ("C-1003", "苏州精密机械有限公司", CustomerTier.regular),
    ("C-1004", "Café Lumière SARL", CustomerTier.assist),
    ("C-1005", "深圳云端科技 Cloudtop", CustomerTier.core),
    ("C-1006", "Nordic Supply AB", CustomerTier.regular),
]
OUTCOMES = [
    "Customer will trial the new line next quarter",
    "客户同意试用新产品线，下月下单 ✅",
    "Price list accepted; waiting for the purchasing committee",
    "交货太慢，希望苏州仓直发 🚚",
]
PROMISES = ["Send samples", "寄送样品 📦", "Quote for 500 units", "安排技术培训", "Fix invoice address"]


@dataclass
class Template:
    """One visit's recorded events and its read-model row, under `TEMPLATE_VISIT_ID`."""

    events: list[RecordedEvent]
    summary: VisitSummary


class _Story:
    """A visit moved forward by commands; the engine's due timers fire before each one."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.state: VisitState | None = None
        self.log: list[RecordedEvent] = []

    def _record(self, command: Command, at: datetime) -> None:
        policy = self.state.policy if self.state else Policy()
        events = decide(self.state, command, at, policy)
        recorded = VISITS.seal(
            events,
            stream_id=TEMPLATE_VISIT_ID,
            last_seq=self.state.last_seq if self.state else 0,
            head_hash=self.state.head_hash if self.state else "",
            actor=command.actor,
            command_id=command.command_id,
            occurred_at=at,
            event_ids=[str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in events],
        )
        for one in recorded:
            self.state = evolve(self.state, one)
        self.log.extend(recorded)

    def timers_until(self, until: datetime) -> None:
        """Fire every reminder and escalation due before `until`, at its instant."""
        while self.state is not None:
            alarm = next_alarm(self.state, self.state.updated_at)
            if alarm is None or alarm.at >= until:
                return
            command: Command
            if alarm.kind is AlarmKind.remind:
                command = Remind(command_id=alarm.command_id, actor=SYSTEM, concern=alarm.concern)
            else:
                command = Escalate(
                    command_id=alarm.command_id, actor=SYSTEM, concern=alarm.concern, level=alarm.level
                )
            self._record(command, max(alarm.at, self.state.updated_at))

    def send(self, command: Command, at: datetime) -> bool:
        """Apply `command` at `at` after the timers due before it; False when the rules refuse."""
        self.timers_until(at)
        try:
            self._record(command, at)
        except RuleViolation:
            return False
        return True


def _cid(rng: random.Random) -> str:
    return f"cmd-{rng.getrandbits(48):012x}"


def _working_day_at(day: datetime, hour: int) -> datetime:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0)


def template(seed: int) -> Template:
    """The log of one visit whose path through its lifecycle is chosen by `seed`."""
    rng = random.Random(seed)
    rep = Actor(id=f"rep-{rng.randint(1, 40):03d}", role=Role.rep)
    manager = Actor(id=f"mgr-{rng.randint(1, 8):02d}", role=Role.manager)
    director = Actor(id="dir-zhao", role=Role.director)
    story = _Story(rng)
    day0 = datetime(2026, 1, 5, tzinfo=SHANGHAI) + timedelta(days=rng.randint(0, 300))
    planned_at = _working_day_at(day0, rng.randint(9, 17))
    start = _working_day_at(planned_at + timedelta(days=rng.randint(2, 12)), rng.randint(9, 16))
    customer_id, customer_name, tier = rng.choice(CUSTOMERS)

    def plan(at: datetime) -> Plan:
        return Plan(
            customer=Customer(id=customer_id, name=customer_name, tier=tier),
            scheduled_start=at,
            duration_minutes=rng.choice([30, 45, 60, 90]),
            method=rng.choice(list(VisitMethod)),
            purpose=rng.choice(["Quarterly review", "新品推介 New product pitch", "Complaint follow-up"]),
            agenda=rng.choice(["", "Orders, complaints, competitor pricing", "合同续签；回款计划"]),
            participants=rng.sample(["张伟", "Li Na", "Chen Jie", "王芳"], rng.randint(0, 2)),
            expenses=[{"description": "Lunch 午餐", "amount": f"{rng.randint(50, 900)}.00"}]
            if rng.random() < 0.4
            else [],
        )

    pre_approved = rng.random() < 0.1
    story.send(
        SubmitPlan(
            command_id=_cid(rng),
            actor=rep,
            visit_id=TEMPLATE_VISIT_ID,
            rep_id=rep.id,
            manager_id=manager.id,
            director_id=director.id if rng.random() < 0.9 else None,
            plan=plan(start),
            approved_by=manager if pre_approved else None,
            approval_comment="已电话确认" if pre_approved else "",
        ),
        planned_at,
    )
    now = planned_at
    if not pre_approved:
        path = rng.random()
        if path < 0.05:
            story.send(
                RejectPlan(command_id=_cid(rng), actor=manager, reason="由大客户部跟进"),
                now + timedelta(hours=3),
            )
            return _done(story)
        if path < 0.1:
            story.send(
                CancelVisit(command_id=_cid(rng), actor=rep, reason="Customer closed for inventory"),
                now + timedelta(hours=20),
            )
            return _done(story)
        if path < 0.25:
            now += timedelta(hours=2)
            story.send(
                ReturnPlan(command_id=_cid(rng), actor=manager, reason="请补充议程 add the agenda"), now
            )
            now += timedelta(hours=3)
            story.send(
                RevisePlan(command_id=_cid(rng), actor=rep, plan=plan(start), note="agenda added"), now
            )
        now += timedelta(hours=rng.choice([1, 2, 5, 20]))
        story.send(
            ApprovePlan(command_id=_cid(rng), actor=manager, comment=rng.choice(["", "ok", "带上新目录"])),
            now,
        )
    if rng.random() < 0.1:
        now += timedelta(hours=4)
        start = _working_day_at(start + timedelta(days=2), rng.randint(9, 16))
        story.send(
            Reschedule(command_id=_cid(rng), actor=rep, scheduled_start=start, reason="客户要求改期"), now
        )
        now += timedelta(hours=2)
        story.send(ApprovePlan(command_id=_cid(rng), actor=manager), now)
    if rng.random() < 0.05:
        return _done(story)  # still waiting for the visit day

    assert story.state is not None
    start = story.state.plan.scheduled_start
    end = start + timedelta(minutes=rng.choice([25, 40, 60, 80]))
    late_check_in = rng.random() < 0.15
    now = end + timedelta(hours=rng.choice([30, 50]) if late_check_in else rng.uniform(0.2, 1.5))
    story.send(
        CheckIn(
            command_id=_cid(rng),
            actor=rep,
            execution=Execution(
                method=VisitMethod.on_site,
                started_at=start,
                ended_at=end,
                location=rng.choice([None, "Shanghai, Minhang", "苏州工业园区"]),
                notes=rng.choice(["", "Met the purchasing manager", "客户很满意"]),
            ),
        ),
        now,
    )
    if rng.random() < 0.05:
        return _done(story)  # the report is still owed

    lateness = rng.random()
    now += timedelta(
        hours=rng.uniform(2, 20)
        if lateness < 0.7
        else rng.uniform(30, 47)
        if lateness < 0.9
        else rng.uniform(50, 100)
    )
    items = [
        PromisedItemIn(
            item_id=f"item-{n}",
            description=rng.choice(PROMISES),
            owner_id=rep.id,
            due_at=now + timedelta(days=rng.randint(2, 10)),
        )
        for n in range(1, rng.choice([0, 0, 1, 1, 2, 3]) + 1)
    ]

    def report() -> SubmitReport:
        return SubmitReport(
            command_id=_cid(rng),
            actor=rep,
            report=Report(
                outcome=rng.choice(OUTCOMES),
                customer_feedback=rng.choice(["", "Delivery is slow", "价格偏高"]),
                competitor_notes=rng.choice(["", "Competitor offers 3% discount"]),
                next_steps=rng.choice(["", "Send samples", "下周电话回访"]),
                promised_items=items,
            ),
        )

    review = rng.random()
    if review < 0.08:
        story.send(WaiveReport(command_id=_cid(rng), actor=manager, reason="rep on sick leave 病假"), now)
    else:
        story.send(report(), now)
        if review < 0.2:
            now += timedelta(hours=5)
            story.send(
                ReturnReport(command_id=_cid(rng), actor=manager, reason="add the competitor prices"), now
            )
            now += timedelta(hours=rng.uniform(3, 60))
            story.send(report(), now)
        now += timedelta(hours=rng.uniform(1, 30))
        story.send(
            AcceptReport(command_id=_cid(rng), actor=manager, comment=rng.choice(["", "Good visit"])), now
        )
    for item in items:
        if rng.random() < 0.1:
            continue  # never kept: it stays open, reminded and escalated
        now = max(now, item.due_at + timedelta(hours=rng.uniform(-60, 40)))
        story.send(
            CompleteItem(
                command_id=_cid(rng),
                actor=rep,
                item_id=item.item_id or "",
                resolution=rng.choice(["Samples delivered", "已发送报价单"]),
                customer_reply=rng.choice(["", "Customer confirmed receipt"]),
            ),
            now,
        )
    story.timers_until(now + timedelta(days=3))
    return _done(story)


def _done(story: _Story) -> Template:
    assert story.state is not None
    return Template(events=story.log, summary=summarize(story.state))


def templates(count: int, seed: int = 7) -> list[Template]:
    """`count` distinct visit stories."""
    return [template(seed * 1_000_003 + n) for n in range(count)]


@dataclass(frozen=True)
class _Row:
    """A template event's stored fields, computed once; only ids and hashes change per copy."""

    seq: int
    type: str
    schema_version: int
    occurred_at: datetime
    actor_id: str
    actor_role: str
    command_id: str
    payload: dict[str, Any]
    names_visit: bool


def _rows_of(t: Template) -> list[_Row]:
    return [
        _Row(
            seq=e.seq,
            type=e.type,
            schema_version=e.event.schema_version,
            occurred_at=e.occurred_at,
            actor_id=e.actor.id,
            actor_role=e.actor.role.value,
            command_id=e.command_id,
            payload=e.payload(),
            names_visit="visit_id" in e.payload(),
        )
        for e in t.events
    ]


EVENT_COPY_COLUMNS = (
    "visit_id",
    "seq",
    "event_id",
    "type",
    "schema_version",
    "occurred_at",
    "actor_id",
    "actor_role",
    "command_id",
    "payload",
    "prev_hash",
    "hash",
)
VISIT_COPY_COLUMNS = tuple(VisitSummary.model_fields)


class Restamper:
    """Copies of the templates under new visit ids, as rows for COPY into the log and `visits`."""

    def __init__(self, count: int, seed: int = 7) -> None:
        self._templates = templates(count, seed)
        self._rows = [_rows_of(t) for t in self._templates]
        self._rng = random.Random(seed)

    @property
    def mean_events(self) -> float:
        return sum(len(r) for r in self._rows) / len(self._rows)

    def visit(self, visit_id: str) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
        """The log rows and the read-model row of a new visit copied from a random template."""
        pick = self._rng.randrange(len(self._rows))
        rows: list[tuple[Any, ...]] = []
        prev = GENESIS_HASH
        for r in self._rows[pick]:
            payload = {**r.payload, "visit_id": visit_id} if r.names_visit else r.payload
            event_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            content = row_content(
                visit_id=visit_id,
                seq=r.seq,
                event_id=event_id,
                type=r.type,
                schema_version=r.schema_version,
                occurred_at=r.occurred_at,
                actor_id=r.actor_id,
                actor_role=r.actor_role,
                command_id=r.command_id,
                payload=payload,
            )
            digest = link_hash(prev, content)
            rows.append(
                (
                    visit_id,
                    r.seq,
                    uuid.UUID(event_id),
                    r.type,
                    r.schema_version,
                    r.occurred_at.astimezone(UTC),
                    r.actor_id,
                    r.actor_role,
                    r.command_id,
                    json.dumps(payload, ensure_ascii=False),
                    prev,
                    digest,
                )
            )
            prev = digest
        summary = self._templates[pick].summary.model_copy(update={"visit_id": visit_id, "head_hash": prev})
        visit_row = tuple(
            v.value if isinstance(v, Enum) else v for v in (getattr(summary, c) for c in VISIT_COPY_COLUMNS)
        )
        return rows, visit_row

    def batches(
        self, events: int, batch_events: int = 50_000
    ) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        """Batches of (log rows, visit rows) adding up to at least `events` events."""
        made = 0
        number = 0
        while made < events:
            log: list[tuple[Any, ...]] = []
            visits: list[tuple[Any, ...]] = []
            while len(log) < batch_events and made + len(log) < events:
                number += 1
                rows, visit_row = self.visit(f"V{number:08d}")
                log.extend(rows)
                visits.append(visit_row)
            made += len(log)
            yield log, visits
