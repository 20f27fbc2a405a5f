"""Load: many sequential runs leak neither memory nor database connections.

CI runs ``NOCTIS_LOAD_RUNS`` (default 60) runs; the full proof is by hand::

    NOCTIS_LOAD_RUNS=500 uv run pytest tests/flows/test_load.py -s

Each run is a whole flow (Prefect harness, PostGIS, the Augur stub): it opens its engine and
Augur client and must close both. Between runs Noctis must hold no connection to Atlas; during
a run at most one (its tasks run one after the other). The resident set size is measured after
a warm-up (imports, caches, the first engines) and must then stay flat.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time

import psycopg
import pytest

from noctis.settings import Settings
from tests.support.augur_stub import AugurStub
from tests.support.factories import box
from tests.support.studies import (
    add_dream,
    add_finder,
    admin_dsn,
    noctis_backends,
    reference_ids,
    rss_bytes,
    run_study,
    seed_grid,
)

pytestmark = pytest.mark.reliability


RUNS = int(os.environ.get("NOCTIS_LOAD_RUNS", "60"))
WARM_UP = max(10, RUNS // 6)
MB = 1024 * 1024


async def test_sequential_runs_leak_no_memory_and_no_connection(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    capsys: pytest.CaptureFixture[str],
) -> None:

    await seed_grid(admin, n=2_000)
    dream = await add_dream(admin)
    finders = [
        await add_finder(admin, box(10 + i * 0.3, 44 + i * 0.2, 10.5 + i * 0.3, 44.5 + i * 0.2))
        for i in range(5)
    ]
    expected = {f: len(await reference_ids(admin, f)) for f in finders}

    peak = 0
    sampling = True

    async def sample() -> None:  # Noctis' connections, while the runs go on
        nonlocal peak
        async with await psycopg.AsyncConnection.connect(
            admin_dsn(study_env), autocommit=True
        ) as conn:
            while sampling:
                peak = max(peak, await noctis_backends(conn))
                await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    between: list[int] = []
    rss: list[tuple[int, int]] = []
    started = time.monotonic()
    try:
        for i in range(RUNS):
            finder = finders[i % len(finders)]
            state = await run_study(finder, dream)
            assert state.is_completed(), state.message
            assert (await state.aresult()).matched_count == expected[finder]
            between.append(await noctis_backends(admin))
            if i + 1 == WARM_UP or (i + 1) % max(1, RUNS // 10) == 0 or i + 1 == RUNS:
                gc.collect()
                rss.append((i + 1, rss_bytes()))
    finally:
        sampling = False
        await sampler
    elapsed = time.monotonic() - started

    warm = next(value for n, value in rss if n == WARM_UP)
    last = rss[-1][1]
    growth = last - warm
    with capsys.disabled():
        print(
            f"\n[load] {RUNS} runs in {elapsed:.1f} s ({elapsed / RUNS * 1000:.0f} ms/run); "
            f"Noctis connections: between runs max {max(between)}, during runs peak {peak}; "
            f"RSS after {WARM_UP} runs {warm / MB:.1f} MB, after {RUNS} {last / MB:.1f} MB "
            f"({growth / MB:+.1f} MB, {growth / max(1, RUNS - WARM_UP) / 1024:+.1f} KB/run); "
            "RSS by run: " + ", ".join(f"{n}:{v / MB:.1f}" for n, v in rss)
        )
    assert max(between) == 0  # every run closed its connections
    assert 1 <= peak <= 2  # one at a time (the pool would allow 7)
    assert len(augur_stub.requests) == RUNS
    assert growth < 20 * MB, f"RSS grew {growth / MB:.1f} MB after the warm-up"
