"""The coverage plan's base: the union of a study's footprints, in Python (no database).

::

    uv run python -m benchmarks.plan_union                 # 5M items, 7 runs
    uv run python -m benchmarks.plan_union --size 1M --write

A plan's target is a share of what all the study's scenes cover, so every plan first measures
the union of the study's distinct footprints within the AOI
(:func:`noctis.cover.areas.union_area`). The scenes of each polygon case come from the
synthetic archive of ``--size`` items (generated here, in acquisition order, the same rows as
the benchmarks' databases; a scene is a candidate where its footprint intersects the AOI and
its time falls in the window: the match rule's rows), then go through
:meth:`noctis.cover.areas.Pieces.of`. Two forms take turns on the same pieces:

- **each large one**: Noctis until 2026-12-01: the 512 largest footprints (those at least 1/8
  of the largest) each ask an STRtree which footprints they cover; the rest are unioned;
- **sieve**: Noctis now: the ``SIEVE`` largest are unioned, every footprint their union covers
  is left out, the next largest (twice as many each round) are added, until none is left.

Reported: the median of ``--runs`` timed runs (after one warm-up), their ratio, and the areas'
relative difference (both are the area of the same union: 0 up to the order of a union's
floating point). Also the whole plan (:func:`noctis.cover.make_plan`, default options), once.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from benchmarks.cases import WINDOWS, aoi
from benchmarks.db import parse_size, size_label
from benchmarks.sections import replace_section
from noctis.cover import PlanOptions, make_plan
from noctis.cover.areas import SIEVE, Objects, Pieces, union_area
from noctis.cover.plan import Scenes
from noctis.devtools.synthetic.scenes import generate
from noctis.devtools.synthetic.spec import ArchiveSpec

RESULTS: Final = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- plan-union:begin -->", "<!-- plan-union:end -->"
CASES: Final = (
    "city/1 year",
    "region/1 year",
    "region/5 years",
    "country/1 month",
    "country/1 year",
    "country/5 years",
)


def each_large_one(shapes: Objects, area_of: BaseGeometry) -> float:
    """The form of Noctis until 2026-12-01 (module doc), kept here as the baseline."""
    shapes = shapes[~shapely.is_empty(shapes)]
    if not len(shapes):
        return 0.0
    areas = shapely.area(shapes)
    order = np.argsort(-areas, kind="stable")
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    big = order[:512]
    big = big[areas[big] >= areas[order[0]] / 8.0]
    tree = shapely.STRtree(shapes)
    keep = np.ones(len(shapes), dtype=bool)
    for i in big:
        if keep[i]:
            covered = tree.query(shapes[i], predicate="covers")
            keep[covered[rank[covered] > rank[i]]] = False
    return float(shapely.area(shapely.intersection(shapely.union_all(shapes[keep]), area_of)))


FORMS: Final[dict[str, Callable[[Objects, BaseGeometry], float]]] = {
    "each large one": each_large_one,
    "sieve": union_area,
}


@dataclass
class Study:
    key: str
    acquired_s: list[float]
    cloud: list[float | None]
    footprints: list[bytes]


def candidates(size: int) -> list[Study]:
    """Each case's scenes in the synthetic archive of ``size`` items (module doc)."""
    studies = {k: Study(k, [], [], []) for k in CASES}
    shapes = {k: aoi(k.partition("/")[0]) for k in CASES}
    for shape in shapes.values():
        shapely.prepare(shape)
    windows = {}
    for k in CASES:
        first, last = WINDOWS[k.partition("/")[2]]
        start = datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp()
        windows[k] = (start, datetime(last.year, last.month, last.day, tzinfo=UTC).timestamp())
    for batch in generate(ArchiveSpec(size=size)):
        geoms = batch.geometries()
        at = np.array([datetime.fromisoformat(s).timestamp() for s in batch.acquired_at])
        for k, study in studies.items():
            start, last_day = windows[k]
            inside = np.flatnonzero((at >= start) & (at < last_day + 86_400))
            for i in inside[shapely.intersects(shapes[k], geoms[inside])]:
                study.acquired_s.append(float(at[i]))
                cloud = float(batch.cloud_cover[i])
                study.cloud.append(None if np.isnan(cloud) else cloud)
                study.footprints.append(bytes(shapely.to_wkb(geoms[i])))
    return list(studies.values())


@dataclass
class Row:
    key: str
    scenes: int
    distinct: int
    medians: dict[str, float]
    difference: float
    plan_s: float


def measure(study: Study, runs: int) -> Row:
    area_of = aoi(study.key.partition("/")[0])
    pieces = Pieces.of(study.footprints, area_of)
    times: dict[str, list[float]] = {name: [] for name in FORMS}
    values: dict[str, float] = {}
    names = list(FORMS)
    for i in range(runs + 1):  # the first round warms up
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            gc.collect()
            started = time.perf_counter()
            values[name] = FORMS[name](pieces.footprints, pieces.aoi)
            if i:
                times[name].append(time.perf_counter() - started)
    base = values[names[0]]
    started = time.perf_counter()
    window = WINDOWS[study.key.partition("/")[2]]
    keys = list(range(len(study.footprints)))
    make_plan(
        Scenes(keys, study.acquired_s, study.cloud, study.footprints),
        area_of,
        window,
        PlanOptions(),
    )
    return Row(
        key=study.key,
        scenes=len(study.footprints),
        distinct=len(pieces.shapes),
        medians={name: statistics.median(t) for name, t in times.items()},
        difference=max(abs(v - base) / base for v in values.values()) if base else 0.0,
        plan_s=time.perf_counter() - started,
    )


def render(size: int, runs: int, rows: list[Row], started: datetime) -> str:
    names = list(FORMS)
    lines = [
        BEGIN,
        f"## The coverage plan's union, {size_label(size)} items (`benchmarks/plan_union.py`)",
        "",
        f"`uv run python -m benchmarks.plan_union --size {size_label(size)} --runs {runs}`, "
        f"{started:%Y-%m-%d %H:%M} UTC, Python {sys.version.split()[0]}, shapely "
        f"{shapely.__version__} (GEOS {shapely.geos_version_string}); no database. The union of "
        f"a study's distinct footprints within the AOI, the base of every plan's target: the "
        f"two forms take turns on the same pieces, median of {runs} runs; *sieve* is Noctis' "
        f"(SIEVE = {SIEVE}), *each large one* the form before it. *Plan*: the whole "
        "`make_plan` (default options, one slice), once, with the sieve.",
        "",
        "| Case | Scenes (distinct) | " + " | ".join(names) + " | sieve / each large one "
        "| Areas differ by | Plan |",
        "|---|---:|" + "---:|" * len(names) + "---:|---:|---:|",
    ]
    for r in rows:
        ratio = r.medians["sieve"] / r.medians["each large one"]
        cells = " | ".join(f"{r.medians[n] * 1000:,.1f} ms" for n in names)
        lines.append(
            f"| {r.key} | {r.scenes:,} ({r.distinct:,}) | {cells} | {ratio:.2f}x "
            f"| {r.difference:.1e} | {r.plan_s * 1000:,.0f} ms |"
        )
    lines += ["", END, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan_union", description=__doc__)
    parser.add_argument("--size", default="5M")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="replace its section of RESULTS.md")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    started = datetime.now(UTC)
    print(f"generating the {size_label(size)} archive's candidates ...", file=sys.stderr)
    studies = candidates(size)
    rows = [measure(s, args.runs) for s in studies]
    section = render(size, args.runs, rows, started)
    print(section)
    if args.write:
        replace_section(RESULTS, BEGIN, END, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
