"""The customer registry for backends and the `visits customers` commands.

Every record shown to a person passes through `visible`, which applies
`domain.customers.may_see_contacts`; imports are checked by `domain.customers` too. Nothing
here decides a rule.
"""

from dataclasses import dataclass

from activities.customers import CustomersRefused, CustomerStore, UpsertCounts
from domain.actors import Actor
from domain.customer_csv import ParsedCustomers, RowError, parse_bytes, to_csv
from domain.customers import CustomerRecord, check_may_import, may_see_contacts
from domain.errors import RuleViolation
from starter.errors import CommandRefused


class CustomerNotFound(CommandRefused):
    def __init__(self, customer_id: str) -> None:
        super().__init__("customer.unknown", f"There is no customer {customer_id}.")


class CustomerFileInvalid(Exception):
    """A customer file with problems: every one of them, with its line and column. Nothing was loaded."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"The file has {len(errors)} problem(s); nothing was loaded.")
        self.errors = errors


@dataclass(frozen=True)
class Export:
    """A CSV export: its text, how many customers it holds, for how many the contacts are left out."""

    text: str
    customers: int
    contacts_withheld: int


def visible(record: CustomerRecord, actor: Actor) -> CustomerRecord:
    """`record` as `actor` may see it: without its contacts unless `may_see_contacts` allows them."""
    if may_see_contacts(actor, record):
        return record
    return record.model_copy(update={"contacts": []})


def _refused(err: RuleViolation) -> CommandRefused:
    return CommandRefused(err.rule, err.message)


async def import_csv(
    store: CustomerStore, data: bytes, actor: Actor, *, dry_run: bool = False
) -> UpsertCounts:
    """Load a customer CSV file (bytes as read from disk) as `actor`: every row, or none.

    Raises `CommandRefused` when the actor may not import at all, `CustomerFileInvalid` with
    every problem (bad rows, and customers the actor may not change) otherwise.
    """
    try:
        check_may_import(actor)
    except RuleViolation as err:
        raise _refused(err) from None
    parsed = parse_bytes(data)
    if not parsed.ok:
        raise CustomerFileInvalid(list(parsed.errors))
    try:
        return await store.upsert_many(
            parsed.records, keep_contacts=parsed.without_contacts, actor=actor, dry_run=dry_run
        )
    except CustomersRefused as err:
        raise CustomerFileInvalid(_located(err, parsed)) from None


def _located(err: CustomersRefused, parsed: ParsedCustomers) -> list[RowError]:
    errors = [
        RowError(line=parsed.lines.get(r.customer_id, 0), field=r.field, reason=r.reason)
        for r in err.refusals
    ]
    return sorted(errors, key=lambda e: e.line)


async def export_csv(store: CustomerStore, actor: Actor, *, rep_id: str | None = None) -> Export:
    """The registry (or one rep's customers) as CSV, each customer's contacts only if `actor` may see them."""
    records = await store.list(owner_rep_id=rep_id)
    shown = [visible(r, actor) for r in records]
    # Counted whether or not a customer has contacts, so the count tells nothing about them.
    withheld = sum(1 for r in records if not may_see_contacts(actor, r))
    return Export(text=to_csv(shown, with_contacts=True), customers=len(records), contacts_withheld=withheld)


async def show(store: CustomerStore, customer_id: str, actor: Actor) -> CustomerRecord:
    """One customer as `actor` may see it; `CustomerNotFound` when there is none."""
    record = await store.get(customer_id)
    if record is None:
        raise CustomerNotFound(customer_id)
    return visible(record, actor)
