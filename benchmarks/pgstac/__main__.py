"""``python -m benchmarks.pgstac``: see :mod:`benchmarks.pgstac`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from benchmarks import pgstac
from benchmarks.db import parse_size
from benchmarks.pgstac.measure import run
from benchmarks.pgstac.queries import SEARCH_SETS
from benchmarks.pgstac.report import command_line, from_json, report, to_json, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pgstac", description=pgstac.__doc__)
    parser.add_argument("--size", default="100k", help="synthetic archive items (e.g. 20k, 100k)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server-url", help="a PostGIS server to use instead of a private one")
    parser.add_argument(
        "--searches",
        choices=tuple(SEARCH_SETS),
        default="all",
        help="the pgstac modes run: all (the default one and nohydrate), or nohydrate only "
        "(the default mode skipped: about an hour at 5M); with --from-json, the file's",
    )
    parser.add_argument("--write", action="store_true", help="replace the section in RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--from-json", type=Path, help="measure nothing: render the report of a --json file"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.from_json:
        result = from_json(json.loads(args.from_json.read_text()))
    else:
        size = parse_size(args.size)
        result = asyncio.run(
            run(
                size,
                runs=args.runs,
                server_url=args.server_url,
                searches=SEARCH_SETS[args.searches],
            )
        )
    section = report(result, command=command_line(result, write=True))
    print(section)
    if args.json:
        args.json.write_text(json.dumps(to_json(result), indent=1, default=str))
    if args.write:
        write(section, result.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
