"""The entry command.

::

    uv run python -m benchmarks run                 # full: 100k, 1M, 5M -> RESULTS.md
    uv run python -m benchmarks run --quick         # CI: 100k, a few cases -> out/
    uv run python -m benchmarks run --sizes 1M --runs 7
    uv run python -m benchmarks report benchmarks/out/results-full.json

Full runs write ``benchmarks/RESULTS.md`` and ``benchmarks/out/results-full.json``;
quick runs write only under ``benchmarks/out/`` (git-ignored), never RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from pathlib import Path

from benchmarks import cases as C
from benchmarks.db import parse_size
from benchmarks.report import render
from benchmarks.results import OUT_DIR, RESULTS_MD, Config, Results
from benchmarks.runner import run

FULL_SIZES = [100_000, 1_000_000, 5_000_000]
FLOW_CASES = tuple(
    C.Case.parse(k)
    for k in ("point/1 month", "city/1 year", "region/1 year", "country/1 year", "country/5 years")
)
"""The flow at the largest size: the smallest case, the scaling case, and the largest."""


def quick_config(
    *,
    out_dir: Path = OUT_DIR,
    server_url: str | None = None,
    runs: int = 3,
    durable: bool = True,
) -> Config:
    """CI: the 100k archive, a handful of cases, the flow on one; no plan or index study."""
    return Config(
        sizes=[100_000],
        runs=runs,
        warmups=1,
        quick=True,
        out_dir=out_dir,
        results_md=out_dir / "RESULTS-quick.md",
        server_url=server_url,
        durable=durable,
        matrix=C.QUICK_CASES,
        typical=True,
        candidates=False,
        flow=True,
        flow_cases=(C.SCALING_CASE,),
        plans=False,
        group_budget_s=2.0,
        max_runs=10,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="build the archives and measure")
    r.add_argument("--quick", action="store_true", help="CI mode: 100k, a few cases, 3 runs")
    r.add_argument("--sizes", help="archive sizes, e.g. 100k,1M,5M (default: all three)")
    r.add_argument("--runs", type=int, help="timed runs per measurement (default 5; quick 3)")
    r.add_argument("--warmups", type=int, default=1, help="untimed runs first (default 1)")
    r.add_argument("--cases", help="comma-separated <aoi>/<window> (default: all 12)")
    r.add_argument(
        "--server-url", help="use this PostGIS server (admin URL) instead of a private one"
    )
    r.add_argument("--fast", action="store_true", help="private cluster with fsync off")
    r.add_argument("--out", type=Path, default=OUT_DIR, help="directory for JSON, logs")
    r.add_argument("--results", type=Path, help="Markdown to write (default: RESULTS.md)")
    r.add_argument("--no-flow", action="store_true", help="skip the end-to-end flow")
    r.add_argument("--no-plans", action="store_true", help="skip plan strategies, index choice")
    r.add_argument("--no-typical", action="store_true", help="skip per-row, ORM, executemany")
    r.add_argument("--no-candidates", action="store_true", help="skip the candidate statements")
    r.add_argument("--keep", action="store_true", help="keep the databases (given server)")
    rep = sub.add_parser("report", help="render the Markdown again from a results JSON")
    rep.add_argument("json", type=Path)
    rep.add_argument("--results", type=Path, help="Markdown to write (default: by mode)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = "uv run python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.command == "report":
        results = Results.from_json(args.json.read_text())
        target = args.results or (
            RESULTS_MD if results.mode == "full" else args.json.parent / "RESULTS-quick.md"
        )
        target.write_text(render(results))
        print(f"wrote {target}")
        return 0

    if args.quick:
        config = quick_config(out_dir=args.out, server_url=args.server_url, durable=not args.fast)
        if args.runs:
            config.runs = args.runs
    else:
        config = Config(
            sizes=FULL_SIZES,
            runs=args.runs or 5,
            out_dir=args.out,
            results_md=args.results or RESULTS_MD,
            server_url=args.server_url,
            durable=not args.fast,
            quiet_wait_s=30.0,
            flow_cases=FLOW_CASES,
        )
    if args.sizes:
        config.sizes = [parse_size(s) for s in args.sizes.split(",")]
    if args.cases:
        config.matrix = tuple(C.Case.parse(k.strip()) for k in args.cases.split(","))
    if args.results and args.quick:
        config.results_md = args.results
    config.warmups = args.warmups
    config.flow = config.flow and not args.no_flow
    config.plans = config.plans and not args.no_plans
    config.typical = config.typical and not args.no_typical
    config.candidates = config.candidates and not args.no_candidates
    config.keep = args.keep
    config.command = command
    asyncio.run(run(config))
    return 0
