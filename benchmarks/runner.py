"""The whole benchmark: build each archive, measure, write the results (JSON + Markdown)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchmarks import cases as C
from benchmarks.db import (
    build_archive,
    drop_database,
    machine_facts,
    server,
    source_files,
    source_state,
)
from benchmarks.flowrun import run_flows
from benchmarks.matching import Bench, Study, measure_case
from benchmarks.plans import explain_link, index_choice, plan_strategies
from benchmarks.report import render
from benchmarks.results import Config, Results


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


async def _wait_for_quiet(max_s: float, log: Callable[[str], None]) -> None:
    """Other work on a 2-core machine skews every timing: wait (bounded) for it to calm down."""
    if max_s <= 0:
        return
    deadline = time.monotonic() + max_s
    load = _loadavg()
    while load and load[0] >= 1.0 and time.monotonic() < deadline:
        log(f"  waiting for a quieter machine (load average {load})")
        await asyncio.sleep(10)
        load = _loadavg()
    log(f"  load average {load}")


def _config_json(config: Config) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["matrix"] = [c.key for c in config.matrix]
    data["flow_cases"] = [c.key for c in config.flow_cases] if config.flow_cases else None
    data["out_dir"] = str(config.out_dir)
    data["results_md"] = str(config.results_md)
    data["server_url"] = "(given)" if config.server_url else None
    return data


async def run(config: Config, *, log: Callable[[str], None] = print) -> Results:
    """Everything the config asks for; writes ``results-<mode>.json`` and the Markdown."""
    mode = "quick" if config.quick else "full"
    started = time.perf_counter()
    results = Results(
        mode=mode,
        command=config.command,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        config=_config_json(config),
    )
    results.load_average["start"] = _loadavg()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    sizes = sorted(config.sizes)
    largest = sizes[-1]
    candidate_size = config.candidate_size or (1_000_000 if 1_000_000 in sizes else largest)
    with server(config.server_url, durable=config.durable) as srv:
        log(f"PostGIS: {srv.origin}")
        for size in sizes:
            log(f"== archive of {size:,} items")
            build, url = await build_archive(srv.admin_url, size, log=log)
            results.builds.append(build)
            if not results.machine.facts:
                results.machine = await machine_facts(url, srv.origin)
            log(
                f"  built in {build.total_s:.1f} s (COPY {build.copy_s:.1f}, INDEX"
                f" {build.index_s:.1f}, ANALYZE {build.analyze_s:.1f}, VACUUM {build.vacuum_s:.1f})"
            )
            await _wait_for_quiet(config.quiet_wait_s, log)
            bench = Bench(
                url,
                runs=config.runs,
                warmups=config.warmups,
                caps=config.caps,
                max_runs=config.max_runs,
                budget_s=config.group_budget_s,
            )
            await bench.open()
            try:
                studies: dict[str, Study] = {}
                for case in config.matrix_for(size):
                    study = await bench.add_study(case)
                    studies[case.key] = study
                    load = _loadavg()
                    measured = await measure_case(
                        bench,
                        size,
                        study,
                        typical=config.typical,
                        candidates=config.candidates and size == candidate_size,
                        log=log,
                    )
                    for m in measured:
                        m.extra["load"] = [load, _loadavg()]
                    results.measurements += measured
                    results.matches.setdefault(str(size), {})[case.key] = study.matches
                if size == largest:
                    await _largest(config, results, bench, studies, size, url, log)
            finally:
                await bench.close()
            if not config.keep:
                await drop_database(srv.admin_url, build.database)
    results.load_average["end"] = _loadavg()
    end_state = await asyncio.to_thread(source_state)
    before, after = results.machine.source_files, await asyncio.to_thread(source_files)
    changed = sorted(f for f in before.keys() | after.keys() if before.get(f) != after.get(f))
    if changed:
        results.machine.facts["Noctis source at the end"] = (
            f"{end_state}: src/ changed while the benchmarks ran ({', '.join(changed)}); the"
            " measuring process imported Noctis at the start, the flow worker when it started"
        )
    results.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    results.wall_s = time.perf_counter() - started
    (config.out_dir / f"results-{mode}.json").write_text(results.to_json())
    target = config.results_md
    target.write_text(render(results))
    log(f"wrote {target} and {config.out_dir / f'results-{mode}.json'} in {results.wall_s:.0f} s")
    return results


async def _largest(
    config: Config,
    results: Results,
    bench: Bench,
    studies: dict[str, Study],
    size: int,
    url: Any,
    log: Callable[[str], None],
) -> None:
    """What runs on the largest archive only: EXPLAIN, plans, index choice, the flow."""
    results.plan_size = size

    async def study(case: C.Case) -> Study:
        if case.key not in studies:
            s = await bench.add_study(case)
            await bench.truncate()
            s.matches = await bench.link(s.checked)
            await bench.truncate()
            studies[case.key] = s
        return studies[case.key]

    log("  EXPLAIN (ANALYZE, BUFFERS) of the link statement")
    for case in (C.SCALING_CASE, C.Case("country", "5 years")):
        results.explains.append(await explain_link(bench, await study(case)))

    if config.plans:
        log("  plan strategies")
        pairs = (
            (C.Case("point", "5 years"), C.Case("point", "5 years")),
            (C.Case("country", "5 years"), C.Case("country", "5 years")),
            (C.Case("country", "5 years"), C.Case("city", "1 month")),
        )
        for pair in pairs:
            for case in pair:
                await study(case)
        runs, explains = await plan_strategies(
            bench,
            studies,
            pairs,
            executions=config.plan_executions,
            runs=config.runs,
            log=log,
        )
        results.plan_runs += runs
        results.explains += explains
        log("  index choice")
        for case in C.INDEX_CASES:
            await study(case)
        index_runs, builds, explains = await index_choice(
            bench, studies, C.INDEX_CASES, runs=config.runs, warmups=config.warmups, log=log
        )
        results.index_runs += index_runs
        results.index_builds += builds
        results.explains += explains

    if config.flow:
        log("  the flow, end to end (subprocess, Prefect test harness)")
        chosen = config.flow_cases or config.matrix_for(size)
        flow_studies = [await study(c) for c in chosen]
        results.flow = await run_flows(
            url,
            size,
            flow_studies,
            runs=config.runs,
            warmups=config.warmups,
            log_dir=config.out_dir,
            log=log,
        )
