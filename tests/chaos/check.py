"""What must hold once the chaos is over and Augur is back, read from Atlas, Prefect and Augur.

Every violation is a line of :attr:`Verdict.violations`; an empty list is the proof:

- every study run ended (Completed, Failed, Crashed or Cancelled);
- nothing is left pending or dead in the outbox;
- a study whose update committed (a ``completed`` in the outbox) has exactly its reference
  rows, and Augur took exactly one distinct ``completed`` key for it: the outbox's, with the
  counts of that committed write (matched = new = the reference's, one run per study), every
  attempt of that key with the same body, and no ``failed``;
- a study whose update did not commit has no rows, and Augur took exactly one ``failed`` for
  its run, under its key;
- no lookup row is duplicated; no key Augur saw has two bodies.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from noctis.augur import failed_key
from tests.chaos.stack import Stack
from tests.support.augur_stub import RecordedRequest

COMPLETED, FAILED = "imagery-finder-study.completed", "imagery-finder-study.failed"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass(frozen=True)
class Study:
    finder: int
    dream: int
    expected: list[int]
    run_id: str = ""


@dataclass
class Verdict:
    violations: list[str] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    committed: int = 0
    failed_announced: int = 0
    requests: int = 0
    resent: int = 0  # requests under a key Augur had already taken (answered 409)
    latencies: list[float] = field(default_factory=list)  # committed -> taken, seconds
    notices: list[float] = field(default_factory=list)  # Crashed/Cancelled -> failed written

    def latency(self) -> str:
        return describe(self.latencies)


def describe(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):.1f} s, p95 {p95:.1f} s, max {ordered[-1]:.1f} s"


def outbox(stack: Stack) -> list[dict[str, Any]]:
    with psycopg.connect(stack.atlas_dsn) as conn:
        cur = conn.execute(
            "SELECT flow_run_id, event, idempotency_key, state, payload, "
            "extract(epoch FROM created_at)::float8 AS created FROM notification_outbox"
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def lookups(stack: Stack) -> tuple[dict[tuple[int, int], list[int]], int]:
    """The lookup rows by (finder, dream), and how many are duplicates."""
    rows: dict[tuple[int, int], list[int]] = defaultdict(list)
    with psycopg.connect(stack.atlas_dsn) as conn:
        for finder, dream, item in conn.execute(
            "SELECT imagery_finder_id, dream_id, archive_item_id FROM archive_lookup_item "
            "ORDER BY 1, 2, 3"
        ):
            rows[(finder, dream)].append(item)
    duplicates = sum(len(v) - len(set(v)) for v in rows.values())
    return rows, duplicates


def verdict(stack: Stack, studies: list[Study], runs: dict[str, dict[str, Any]]) -> Verdict:
    v = Verdict()
    bad = v.violations
    rows = outbox(stack)
    by_run: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_run[row["flow_run_id"]][row["event"]] = row
        if row["state"] != "delivered":
            bad.append(f"outbox row {row['idempotency_key']} is {row['state']}")
    linked, duplicates = lookups(stack)
    if duplicates:
        bad.append(f"{duplicates} duplicated lookup row(s)")
    requests = stack.augur.requests
    v.requests = len(requests)
    v.resent = sum(1 for r in requests if r.status == 409)
    sent: dict[str, list[RecordedRequest]] = defaultdict(list)
    for request in requests:
        sent[request.header("Idempotency-Key") or ""].append(request)
    for key, attempts in sent.items():
        if len({r.body for r in attempts}) > 1:
            bad.append(f"key {key} was sent with {len({r.body for r in attempts})} bodies")
    taken: dict[tuple[str, str], set[str]] = defaultdict(set)  # (run, event) -> keys taken
    first_taken: dict[str, float] = {}
    for request in stack.augur.accepted():
        key = request.header("Idempotency-Key") or ""
        taken[(request.json["flow_run_id"], request.json["event"])].add(key)
        first_taken.setdefault(key, request.wall)

    for study in studies:
        run = runs.get(study.run_id, {})
        state = (run.get("state") or {}).get("type", "MISSING")
        v.states[state] = v.states.get(state, 0) + 1
        name = f"study finder {study.finder} dream {study.dream} (run {study.run_id}, {state})"
        if state not in FINAL:
            bad.append(f"{name} never ended")
        outcome = by_run.get(study.run_id, {})
        completed_keys = taken.get((study.run_id, COMPLETED), set())
        failed_keys = taken.get((study.run_id, FAILED), set())
        rows_now = linked.get((study.finder, study.dream), [])
        if COMPLETED in outcome:
            v.committed += 1
            row = outcome[COMPLETED]
            if rows_now != study.expected:
                bad.append(f"{name}: {len(rows_now)} rows, the reference has "
                           f"{len(study.expected)}")  # fmt: skip
            if completed_keys != {row["idempotency_key"]}:
                bad.append(f"{name}: Augur took completed keys {sorted(completed_keys)}, "
                           f"the outbox has {row['idempotency_key']}")  # fmt: skip
            counts = (row["payload"]["matched_count"], row["payload"]["new_count"])
            if counts != (len(study.expected), len(study.expected)):
                bad.append(f"{name}: counts {counts}, the write was {len(study.expected)}")
            if failed_keys:
                bad.append(f"{name}: committed, yet Augur took failed {sorted(failed_keys)}")
            if row["idempotency_key"] in first_taken:
                v.latencies.append(first_taken[row["idempotency_key"]] - row["created"])
        else:
            if rows_now:
                bad.append(f"{name}: {len(rows_now)} rows but no completed in the outbox")
            if completed_keys:
                bad.append(f"{name}: Augur took completed {sorted(completed_keys)} uncommitted")
            expected_key = failed_key(study.finder, study.dream, study.run_id)
            if state in FINAL and failed_keys != {expected_key}:
                bad.append(f"{name}: did not commit; Augur took failed keys "
                           f"{sorted(failed_keys)}, expected {expected_key}")  # fmt: skip
            v.failed_announced += len(failed_keys)
            failed_row = outcome.get(FAILED)
            if state in {"CRASHED", "CANCELLED"} and failed_row is not None:
                ended = datetime.fromisoformat(run["state"]["timestamp"]).timestamp()
                v.notices.append(failed_row["created"] - ended)
    return v
