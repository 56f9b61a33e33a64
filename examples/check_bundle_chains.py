"""Recompute every hash of an audit bundle with the Python standard library only.

For auditors who trust no one's code, visitflow's included: this file is the hash chain's
whole definition (docs/event-log.md, "How the chain is computed"). Usage:

    python examples/check_bundle_chains.py BUNDLE_DIR

It prints one line per visit (and per monthly plan, whose rows name `plan_id` where a
visit's name `visit_id`) and exits 1 if any chain is broken. It checks only the chains;
`visits audit verify BUNDLE` also checks the manifest and replays every stream.
"""

import hashlib
import json
import sys
from itertools import groupby
from pathlib import Path

HASHED = (
    "seq", "event_id", "type", "schema_version",
    "occurred_at", "actor_id", "actor_role", "command_id", "payload",
)  # fmt: skip
"""Hashed with the stream's id column: `visit_id` in events.jsonl, `plan_id` in plan_events.jsonl."""


def link(prev_hash: str, row: dict, key: str) -> str:
    content = {name: row[name] for name in (key, *HASHED)}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + "\n" + canonical).encode("utf-8")).hexdigest()


def check(bundle: Path) -> bool:
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    intact = check_file(bundle / "events.jsonl", manifest["visits"], "visit_id")
    if manifest.get("plan_events_file"):
        intact &= check_file(bundle / manifest["plan_events_file"], manifest["plans"], "plan_id")
    return intact


def check_file(path: Path, listed: list[dict], key: str) -> bool:
    heads = {v[key]: (v["last_seq"], v["head_hash"]) for v in listed}
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    intact = True
    for stream_id, group in groupby(rows, key=lambda r: r[key]):
        prev, seq, verdict = "0" * 64, 0, "intact"
        for row in group:
            if row["seq"] != seq + 1 or row["prev_hash"] != prev or link(prev, row, key) != row["hash"]:
                verdict = f"broken at event {row['seq']}"
                break
            prev, seq = row["hash"], row["seq"]
        if verdict == "intact" and heads.get(stream_id) != (seq, prev):
            verdict = f"ends at event {seq}, not at the manifest's head"
        intact &= verdict == "intact"
        print(f"{stream_id}: {verdict} ({seq} events verified)")
    return intact


if __name__ == "__main__":
    sys.exit(0 if check(Path(sys.argv[1])) else 1)
