"""Concurrent runs: one set of rows, no error, consistent counts in every notification.

Flows run under Prefect's harness, 16 at once in one event loop (``asyncio.gather`` of direct
flow calls): each has its own flow run, engine and Augur client, exactly as 16 runs a worker
(or 16 workers) would start. Atlas sees 16 concurrent transactions.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import psycopg
import pytest

from noctis.settings import Settings
from tests.support.augur_stub import AugurStub
from tests.support.factories import box
from tests.support.studies import (
    add_dream,
    add_finder,
    duplicate_rows,
    linked_ids,
    reference_ids,
    run_study,
    seed_grid,
)

pytestmark = pytest.mark.reliability


RUNS = 16


async def test_16_runs_of_one_study_record_one_set_of_rows(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    await seed_grid(admin, n=2_000)
    dream = await add_dream(admin)
    finder = await add_finder(
        admin,
        box(10.5, 44.5, 11.5, 45.5),
        start="2024-01-01",
        end="2024-12-31",
        max_cloud_cover=60,
    )
    expected = await reference_ids(admin, finder)
    assert len(expected) > 100

    states = await asyncio.gather(*(run_study(finder, dream) for _ in range(RUNS)))

    assert [s.type.value for s in states] == ["COMPLETED"] * RUNS, [s.message for s in states]
    results = [await s.aresult() for s in states]
    assert await linked_ids(admin, finder, dream) == expected
    assert await duplicate_rows(admin) == 0
    assert sum(r.new_count for r in results) == len(expected)
    assert {r.matched_count for r in results} == {len(expected)}
    assert sorted(r.new_count for r in results)[-1] == len(expected)  # one run did all the work

    notes = [r.json for r in augur_stub.requests]
    assert len(notes) == RUNS
    assert {n["event"] for n in notes} == {"imagery-finder-study.completed"}
    assert sum(n["new_count"] for n in notes) == len(expected)
    assert {n["matched_count"] for n in notes} == {len(expected)}
    keys = Counter(r.header("Idempotency-Key") for r in augur_stub.requests)
    assert len(keys) == RUNS and set(keys.values()) == {1}  # one notification per run


async def test_16_different_studies_at_once_are_each_correct(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:

    await seed_grid(admin, n=2_000)
    dream = await add_dream(admin)
    other_dream = await add_dream(admin, "another study")
    studies = []
    for i in range(RUNS):
        x, y = 10.0 + (i % 4) * 0.5, 44.0 + (i // 4) * 0.5
        finder = await add_finder(
            admin,
            box(x, y, x + 0.6, y + 0.6),
            start="2024-01-01" if i % 2 else None,
            end="2024-03-31" if i % 3 else None,
            max_cloud_cover=None if i % 4 else 50,
            collections=["sentinel-2-l2a"] if i % 5 == 0 else None,
        )
        studies.append((finder, dream if i % 2 else other_dream))

    states = await asyncio.gather(*(run_study(f, d) for f, d in studies))

    assert [s.type.value for s in states] == ["COMPLETED"] * RUNS, [s.message for s in states]
    for (finder, dream_id), state in zip(studies, states, strict=True):
        result = await state.aresult()
        expected = await reference_ids(admin, finder)
        assert await linked_ids(admin, finder, dream_id) == expected
        assert (result.matched_count, result.new_count) == (len(expected), len(expected))
    assert await duplicate_rows(admin) == 0
    assert len(augur_stub.requests) == RUNS
