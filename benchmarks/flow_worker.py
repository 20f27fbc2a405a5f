"""The flow, run end to end in its own process: ``python -m benchmarks.flow_worker SPEC OUT``.

SPEC is a JSON file: ``{"url", "dsn", "runs", "warmups", "cases": [{"key", "finder_id",
"dream_id", "matches"}, ...]}``. The worker points Noctis at the database
(``ATLAS_DB_URL``, Augur off), starts Prefect's test harness (a temporary
server in a subprocess of its own, so its memory is not ours), and calls the
flow function directly, case by case in the order given (fewest matches
first), each run on an empty ``archive_lookup_item`` (TRUNCATE, untimed). After
each case it records the peak RSS so far (``ru_maxrss``) and the current RSS,
so a growth with the number of matches would show. Results go to OUT as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import os
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    """``ru_maxrss`` (Linux reports KiB). Not this process' own peak: Linux carries the
    high-water mark of the parent at fork time across exec, so it is at least the RSS the
    benchmark process had when it started this one. :func:`hwm_mb` is this process' own."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS of this process (VmHWM): ``echo 5 > /proc/self/clear_refs``."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def hwm_mb() -> float:
    """Peak RSS since the last :func:`reset_peak_rss` (VmHWM), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return float("nan")


TIMINGS: dict[str, float] = {}


def _timed(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            TIMINGS[name] = TIMINGS.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def instrument() -> None:
    """Time the steps the flow calls (its module's globals), to split the flow's wall time.

    ``check_study`` includes the first connection of the run's new engine; ``link`` is
    ``LookupRepository.link``, the link step proper, within ``link_study``.
    """
    import noctis.flows.imagery_finder_study as flow_module
    from noctis.repositories.lookups import LookupRepository

    namespace = vars(flow_module)  # the flow's globals: what its tasks look up at call time
    for name in ("check_study", "link_study", "summarise_study", "_publish"):
        namespace[name] = _timed(name, namespace[name])
    # The link step proper (the one INSERT … SELECT), inside link_study, which also takes the
    # study's lock, computes the union coverage and the plan, writes the outbox and commits.
    LookupRepository.link = _timed("link", LookupRepository.link)  # type: ignore[method-assign,assignment]
    open_runtime = namespace["open_runtime"]

    @contextlib.asynccontextmanager
    async def timed_runtime(settings: Any) -> AsyncIterator[Any]:
        started = time.perf_counter()
        manager = open_runtime(settings)
        runtime = await manager.__aenter__()
        TIMINGS["open_runtime"] = time.perf_counter() - started
        try:
            yield runtime
        except BaseException as e:
            if not await manager.__aexit__(type(e), e, e.__traceback__):
                raise
        else:
            started = time.perf_counter()
            await manager.__aexit__(None, None, None)
            TIMINGS["close_runtime"] = time.perf_counter() - started

    namespace["open_runtime"] = timed_runtime


def current_rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reference_flows() -> dict[str, Callable[[], Awaitable[Any]]]:
    """What Prefect alone costs here: a flow that does nothing, and one that runs 4 no-op tasks
    (the study flow runs 4 tasks), declared like the study's."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    @task(name="bench-noop", cache_policy=NO_CACHE)
    async def noop(i: int) -> int:
        return i

    @flow(name="bench-empty", validate_parameters=True, log_prints=False)
    async def empty(imagery_finder_pk: int, dream_pk: int) -> int:
        return imagery_finder_pk + dream_pk

    @flow(name="bench-four-tasks", validate_parameters=True, log_prints=False)
    async def four_tasks(imagery_finder_pk: int, dream_pk: int) -> int:
        total = 0
        for i in range(4):
            total += await noop(i)
        return total

    return {
        "empty flow": lambda: empty(imagery_finder_pk=1, dream_pk=1),
        "flow with 4 no-op tasks": lambda: four_tasks(imagery_finder_pk=1, dream_pk=1),
    }


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncpg

    from noctis.flows.imagery_finder_study import imagery_finder_study

    reference: dict[str, list[float]] = {}
    for name, call in _reference_flows().items():
        reference[name] = []
        for i in range(int(spec["warmups"]) + int(spec["runs"])):
            gc.collect()
            started = time.perf_counter()
            await call()
            if i >= int(spec["warmups"]):
                reference[name].append(time.perf_counter() - started)

    conn = await asyncpg.connect(str(spec["dsn"]))
    out: dict[str, Any] = {"cases": [], "reference": reference}
    try:
        out["rss_before_first_flow_mb"] = current_rss_mb()
        out["peak_rss_before_first_flow_mb"] = peak_rss_mb()
        out["hwm_before_first_flow_mb"] = hwm_mb()  # this process' own peak since exec
        out["hwm_reset"] = reset_peak_rss()
        for case in spec["cases"]:
            seconds: list[float] = []
            steps: list[dict[str, float]] = []
            matched: set[int] = set()
            for i in range(int(spec["warmups"]) + int(spec["runs"])):
                await conn.execute("TRUNCATE archive_lookup_item CASCADE")
                gc.collect()
                TIMINGS.clear()
                started = time.perf_counter()
                result = await imagery_finder_study(
                    imagery_finder_pk=int(case["finder_id"]), dream_pk=int(case["dream_id"])
                )
                elapsed = time.perf_counter() - started
                matched.add(result.matched_count)
                if i >= int(spec["warmups"]):
                    seconds.append(elapsed)
                    steps.append(dict(TIMINGS))
            out["cases"].append(
                {
                    "case": case["key"],
                    "matches": int(case["matches"]),
                    "matched": sorted(matched),
                    "seconds": seconds,
                    "steps": steps,
                    "peak_rss_mb": peak_rss_mb(),
                    "hwm_mb": hwm_mb(),
                    "rss_mb": current_rss_mb(),
                }
            )
            print(
                f"flow {case['key']}: {sorted(matched)} matched,"
                f" median {sorted(seconds)[len(seconds) // 2] * 1000:.0f} ms,"
                f" peak RSS since the first flow {hwm_mb():.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
        await conn.execute("TRUNCATE archive_lookup_item CASCADE")
    finally:
        await conn.close()
    return out


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    os.environ["ATLAS_DB_URL"] = str(spec["url"])
    os.environ["NOCTIS_AUGUR_API_URL"] = ""
    started = time.perf_counter()

    from prefect.testing.utilities import prefect_test_harness

    from noctis.settings import get_settings

    get_settings.cache_clear()
    instrument()

    imported = time.perf_counter()
    rss_after_imports = current_rss_mb()
    with prefect_test_harness(server_startup_timeout=120):
        harness = time.perf_counter()
        result = asyncio.run(_run(spec))
    result.update(
        {
            "import_s": imported - started,
            "harness_start_s": harness - imported,
            "rss_after_imports_mb": rss_after_imports,
            "final_peak_rss_mb": peak_rss_mb(),
        }
    )
    out_path.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
