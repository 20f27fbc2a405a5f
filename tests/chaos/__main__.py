"""``python -m tests.chaos [--studies 200] [--outage-seconds 600] ...``: the full chaos run.

It starts its own PostGIS as the tests do (tests/support/postgis.py), prints the fault counts,
the delivery latency and every violation, and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.chaos.run import Config, chaos_run, report
from tests.support import postgis


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    defaults = Config()
    parser.add_argument("--studies", type=int, default=defaults.studies)
    parser.add_argument("--dispatch-seconds", type=int, default=defaults.dispatch_seconds)
    parser.add_argument("--outage-seconds", type=float, default=defaults.outage_seconds)
    parser.add_argument("--outage-studies", type=int, default=defaults.outage_studies)
    parser.add_argument(
        "--augur-down", type=float, nargs=2, default=defaults.pace.augur_down,
        metavar=("MIN", "MAX"), help="seconds of an Augur fault episode",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    pace = dataclasses.replace(defaults.pace, augur_down=tuple(args.augur_down))
    config = dataclasses.replace(
        defaults,
        studies=args.studies,
        dispatch_seconds=args.dispatch_seconds,
        outage_seconds=args.outage_seconds,
        outage_studies=args.outage_studies,
        pace=pace,
        seed=args.seed,
    )

    lock = threading.Lock()  # the driver's threads say things too: one line at a time

    def say(line: str) -> None:
        with lock:
            sys.stdout.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            sys.stdout.flush()

    with postgis.postgis_server() as (url, origin), tempfile.TemporaryDirectory() as tmp:
        say(f"PostGIS: {origin}; {config}")
        outcome = chaos_run(config, url, Path(tmp), say)
    print(report(outcome))
    return 1 if outcome.verdict.violations or outcome.driver_errors else 0


if __name__ == "__main__":
    sys.exit(main())
