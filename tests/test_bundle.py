"""Audit bundles: exported from a real log, verified offline, every kind of tampering caught."""

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from activities.store import EventStore
from domain.chain import HASHED_FIELDS, link_hash, row_content
from starter.bundle import (
    EVENTS_FILE,
    MANIFEST_FILE,
    BundleError,
    Manifest,
    Selection,
    export_bundle,
    read_manifest,
    verify_bundle,
)
from tests import tamper
from tests.stories import at, story

pytestmark = pytest.mark.store

ONE_VISIT_EVENTS = 11


def lines(bundle: Path) -> list[str]:
    return (bundle / EVENTS_FILE).read_text(encoding="utf-8").splitlines(keepends=True)


def rewrite(bundle: Path, new_lines: list[str]) -> None:
    (bundle / EVENTS_FILE).write_text("".join(new_lines), encoding="utf-8")


async def two_visit_bundle(store: EventStore, tmp_path: Path) -> tuple[Path, list[str]]:
    ids = [(await story(store, f"v-{n}")).visit_id for n in (1, 2)]
    bundle = tmp_path / "bundle"
    await export_bundle(store, bundle, Selection(visit_ids=ids))
    return bundle, ids


async def test_an_exported_bundle_verifies_and_names_its_contents(own_pool, tmp_path):
    store = EventStore(own_pool)
    bundle, ids = await two_visit_bundle(store, tmp_path)
    manifest = read_manifest(bundle)
    assert (manifest.visit_count, manifest.event_count) == (2, 2 * ONE_VISIT_EVENTS)
    assert [h.visit_id for h in manifest.visits] == ids
    assert all(
        h.chain_ok_at_export and h.log_last_seq == h.last_seq == ONE_VISIT_EVENTS for h in manifest.visits
    )
    assert manifest.first_occurred_at == "2026-11-16T02:00:00.000000Z"  # 10:00 in Shanghai
    assert manifest.last_occurred_at == "2026-11-27T02:00:00.000000Z"
    report = verify_bundle(bundle, expect_hash=manifest.bundle_hash)
    assert report.ok, report.problems
    assert [v.status for v in report.visits] == ["closed", "closed"]
    assert len(lines(bundle)) == 2 * ONE_VISIT_EVENTS


async def test_a_bundle_verifies_with_nothing_but_the_project(own_pool, tmp_path):
    store = EventStore(own_pool)
    bundle, _ = await two_visit_bundle(store, tmp_path)
    # No database, no Temporal, no settings, no `visits dev` data directory nearby.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISITFLOW_")}
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    visits = Path(sys.executable).with_name("visits")
    noted = read_manifest(bundle).bundle_hash
    ran = await asyncio.to_thread(
        subprocess.run,
        [str(visits), "audit", "verify", str(bundle), "--expect-hash", noted],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert f"Bundle {bundle}: intact. {2 * ONE_VISIT_EVENTS} events of 2 visit(s)" in ran.stdout

    rewrite(bundle, lines(bundle)[:-1])
    ran = await asyncio.to_thread(
        subprocess.run,
        [str(visits), "audit", "verify", str(bundle)],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 3
    assert "NOT INTACT" in ran.stdout


async def test_a_changed_line_is_located(own_pool, tmp_path):
    bundle, ids = await two_visit_bundle(EventStore(own_pool), tmp_path)
    rows = lines(bundle)
    row = json.loads(rows[ONE_VISIT_EVENTS + 1])  # visit 2, event 2: the approval
    row["actor_id"] = "dir-zhao"
    rows[ONE_VISIT_EVENTS + 1] = json.dumps(row, ensure_ascii=False) + "\n"
    rewrite(bundle, rows)
    report = verify_bundle(bundle)
    assert not report.ok
    bad = [v for v in report.visits if not v.ok]
    assert [(v.stream_id, v.chain.first_bad_seq, v.chain.kind) for v in bad] == [
        (ids[1], 2, "content_changed")
    ]
    assert any("events.jsonl was changed after export" in p for p in report.problems)


@pytest.mark.parametrize(
    ("edit", "seq", "kind"),
    [
        ("delete_middle", 5, "missing"),
        ("delete_last", 11, "tail_mismatch"),
        ("swap", 6, None),
        ("duplicate", 3, "inserted_or_reordered"),
    ],
)
async def test_removed_moved_or_copied_lines_are_located(own_pool, tmp_path, edit, seq, kind):
    bundle, ids = await two_visit_bundle(EventStore(own_pool), tmp_path)
    rows = lines(bundle)
    if edit == "delete_middle":
        del rows[4]
    elif edit == "delete_last":
        del rows[ONE_VISIT_EVENTS - 1]
    elif edit == "swap":
        rows[5], rows[6] = rows[6], rows[5]
    else:
        rows.insert(3, rows[2])
    rewrite(bundle, rows)
    report = verify_bundle(bundle)
    assert not report.ok
    first = report.visits[0]
    assert first.stream_id == ids[0] and first.chain.first_bad_seq == seq
    if kind is not None:
        assert first.chain.kind == kind
    assert report.visits[1].ok


async def test_a_changed_manifest_and_a_wholesale_rewrite_are_caught(own_pool, tmp_path):
    bundle, _ = await two_visit_bundle(EventStore(own_pool), tmp_path)
    noted = read_manifest(bundle).bundle_hash
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    manifest["visits"] = manifest["visits"][:1]  # hide a visit
    manifest["visit_count"], manifest["event_count"] = 1, ONE_VISIT_EVENTS
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))
    report = verify_bundle(bundle)
    assert any("manifest was changed after export" in p for p in report.problems)
    assert any("not in the manifest" in p for p in report.problems)

    # A forger who recomputes every hash gets a bundle that verifies on its own...
    forged = Manifest.model_validate(manifest)
    forged = forged.model_copy(update={"bundle_hash": forged.computed_hash()})
    rewrite(bundle, lines(bundle)[:ONE_VISIT_EVENTS])
    digest = hashlib.sha256((bundle / EVENTS_FILE).read_bytes()).hexdigest()
    forged = forged.model_copy(update={"events_sha256": digest})
    forged = forged.model_copy(update={"bundle_hash": forged.computed_hash()})
    (bundle / MANIFEST_FILE).write_text(forged.model_dump_json())
    assert verify_bundle(bundle).ok
    # ...but not the hash noted at export.
    report = verify_bundle(bundle, expect_hash=noted)
    assert not report.ok and report.problems == [
        f"This is not the bundle expected: its hash is {forged.bundle_hash}, not {noted}."
    ]


async def test_a_date_range_exports_whole_chains_as_they_stood_at_its_end(own_pool, tmp_path):
    store = EventStore(own_pool)
    driver = await story(store)
    bundle = tmp_path / "november-week"
    manifest = await export_bundle(
        store, bundle, Selection(occurred_from=at("2026-11-24 00:00"), occurred_to=at("2026-11-26 00:00"))
    )
    # Events 4-7 occurred in the period; the chain is exported from its first event.
    assert [(h.visit_id, h.events, h.last_seq, h.log_last_seq) for h in manifest.visits] == [
        (driver.visit_id, 7, 7, 11)
    ]
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    assert report.visits[0].status == "report_returned"


async def test_a_tampered_log_exports_with_a_warning_and_the_bundle_shows_where(own_pool, tmp_path):
    store = EventStore(own_pool)
    driver = await story(store)
    await tamper.change_payload(own_pool, driver.visit_id, 2, comment="Approved by phone")
    manifest = await export_bundle(store, tmp_path / "b", Selection(visit_ids=[driver.visit_id]))
    assert manifest.visits[0].chain_ok_at_export is False
    report = verify_bundle(tmp_path / "b")
    assert report.visits[0].chain.first_bad_seq == 2


async def test_a_log_longer_than_its_head_exports_with_a_warning_and_does_not_verify(own_pool, tmp_path):
    store = EventStore(own_pool)
    driver = await story(store)
    # Written past the append path: it chains, but the read model's head never moved.
    seq = await tamper.append_chained(own_pool, driver.visit_id, "ReportAccepted", 1, {"comment": "again"})
    manifest = await export_bundle(store, tmp_path / "b", Selection(visit_ids=[driver.visit_id]))
    head = manifest.visits[0]
    assert (head.last_seq, head.log_last_seq, head.chain_ok_at_export) == (seq, seq - 1, False)
    report = verify_bundle(tmp_path / "b", expect_hash=manifest.bundle_hash)
    assert not report.ok
    assert (report.visits[0].chain.kind, report.visits[0].chain.first_bad_seq) == ("tail_mismatch", seq)
    assert any(f"event {seq} was appended outside the engine" in p for p in report.problems)


async def test_a_chained_line_after_the_manifest_head_is_located(own_pool, tmp_path):
    bundle, ids = await two_visit_bundle(EventStore(own_pool), tmp_path)
    rows = lines(bundle)
    last = json.loads(rows[ONE_VISIT_EVENTS - 1])
    extra = {
        **last,
        "seq": last["seq"] + 1,
        "event_id": str(uuid.uuid4()),
        "type": "ReportAccepted",
        "payload": {"comment": "again"},
        "prev_hash": last["hash"],
    }
    fields = {name: extra[name] for name in HASHED_FIELDS}
    fields["occurred_at"] = datetime.fromisoformat(fields["occurred_at"])
    extra["hash"] = link_hash(extra["prev_hash"], row_content(**fields))
    rows.insert(ONE_VISIT_EVENTS, json.dumps(extra, ensure_ascii=False) + "\n")
    rewrite(bundle, rows)
    report = verify_bundle(bundle)
    first = report.visits[0]
    assert first.stream_id == ids[0] and not first.ok
    assert (first.chain.kind, first.chain.first_bad_seq) == ("tail_mismatch", ONE_VISIT_EVENTS + 1)
    assert report.visits[1].ok


async def test_an_event_after_the_visit_closed_does_not_replay_offline(own_pool, tmp_path):
    store = EventStore(own_pool)
    driver = await story(store)
    seq = await tamper.append_chained(
        own_pool, driver.visit_id, "ReportAccepted", 1, {"comment": "again"}, move_head=True
    )
    manifest = await export_bundle(store, tmp_path / "b", Selection(visit_ids=[driver.visit_id]))
    assert manifest.visits[0].chain_ok_at_export  # the head was moved onto it: only the fold can tell
    report = verify_bundle(tmp_path / "b")
    assert not report.ok and report.visits[0].chain.ok
    assert report.visits[0].fold_problem is not None
    assert f"event {seq}" in report.visits[0].fold_problem and "closed" in report.visits[0].fold_problem


async def test_export_refuses_an_existing_directory_or_an_empty_selection(own_pool, tmp_path):
    store = EventStore(own_pool)
    await story(store, "v-1")
    with pytest.raises(BundleError, match="already exists"):
        await export_bundle(store, tmp_path, Selection(visit_ids=["v-1"]))
    with pytest.raises(BundleError, match="No logged event matches visits v-9; nothing was written"):
        await export_bundle(store, tmp_path / "none", Selection(visit_ids=["v-9"]))
    assert not (tmp_path / "none").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_directory_without_a_manifest_is_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="is not an audit bundle"):
        verify_bundle(tmp_path)


def test_the_standalone_checker_agrees_with_the_chain_definition(tmp_path):
    # examples/check_bundle_chains.py recomputes every hash with the standard library only.
    checker = Path(__file__).resolve().parent.parent / "examples" / "check_bundle_chains.py"
    fixture = Path(__file__).parent / "fixtures" / "bundle-v1"
    ran = subprocess.run([sys.executable, str(checker), str(fixture)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.splitlines() == [
        "v-2026-11-0001: intact (11 events verified)",
        "v-2026-11-0002: intact (4 events verified)",
    ]
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / MANIFEST_FILE).write_bytes((fixture / MANIFEST_FILE).read_bytes())
    rows = lines(fixture)
    rows[2] = rows[2].replace("Shanghai, Minhang", "Suzhou")  # where the rep says they were
    rewrite(copy, rows)
    ran = subprocess.run([sys.executable, str(checker), str(copy)], capture_output=True, text=True)
    assert ran.returncode == 1
    assert ran.stdout.splitlines()[0] == "v-2026-11-0001: broken at event 3 (2 events verified)"
