"""What a benchmark run is asked to do (:class:`Config`) and what it found (:class:`Results`).

The data every other module reads: the runner fills a :class:`Results`, the report,
the findings and the targets read one. It imports none of them, so the modules form
a DAG: cli -> runner -> report -> findings -> targets -> results.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import cases as C
from benchmarks.db import Build, Machine
from benchmarks.flowrun import FlowReport
from benchmarks.matching import Caps
from benchmarks.plans import Explain, IndexBuild, IndexRun, PlanRun
from benchmarks.stats import Measurement

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
RESULTS_MD = BENCH_DIR / "RESULTS.md"


@dataclass
class Config:
    sizes: list[int]
    runs: int = 5
    warmups: int = 1
    quick: bool = False
    out_dir: Path = OUT_DIR
    results_md: Path = RESULTS_MD
    server_url: str | None = None
    durable: bool = True
    matrix: tuple[C.Case, ...] = C.ALL_CASES
    typical: bool = True
    candidates: bool = True
    candidate_size: int | None = None
    """Where the candidate statements run: None = 1M if measured, else the largest size."""
    flow: bool = True
    flow_cases: tuple[C.Case, ...] | None = None
    """None: the flow runs on every matrix case at the largest size."""
    plans: bool = True
    plan_executions: int = 10
    caps: Caps = field(default_factory=Caps)
    keep: bool = False
    command: str = ""
    max_runs: int = 20
    """Cheap groups get more timed runs: as many as fit in ``group_budget_s``, up to this."""
    group_budget_s: float = 6.0
    quiet_wait_s: float = 0.0
    """Before each archive, wait up to this long for the 1-minute load average to drop < 1."""

    def matrix_for(self, size: int) -> tuple[C.Case, ...]:
        """The full matrix at 1M items and more (and when only one size runs);
        below that, the scaling case alone."""
        if size >= 1_000_000 or len(self.sizes) == 1:
            return self.matrix
        return (C.SCALING_CASE,)


@dataclass
class Results:
    mode: str
    command: str
    started_at: str
    finished_at: str = ""
    wall_s: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    machine: Machine = field(default_factory=Machine)
    load_average: dict[str, list[float]] = field(default_factory=dict)
    builds: list[Build] = field(default_factory=list)
    matches: dict[str, dict[str, int]] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    explains: list[Explain] = field(default_factory=list)
    plan_runs: list[PlanRun] = field(default_factory=list)
    index_runs: list[IndexRun] = field(default_factory=list)
    index_builds: list[IndexBuild] = field(default_factory=list)
    flow: FlowReport | None = None
    plan_size: int | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, default=str)

    @staticmethod
    def from_json(text: str) -> Results:
        data = json.loads(text)
        return Results(
            mode=data["mode"],
            command=data["command"],
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            wall_s=data["wall_s"],
            config=data["config"],
            machine=Machine(**data["machine"]),
            load_average=data.get("load_average", {}),
            builds=[Build.from_json(b) for b in data["builds"]],
            matches=data["matches"],
            measurements=[Measurement.from_json(m) for m in data["measurements"]],
            explains=[Explain.from_json(e) for e in data["explains"]],
            plan_runs=[PlanRun.from_json(p) for p in data["plan_runs"]],
            index_runs=[IndexRun.from_json(i) for i in data["index_runs"]],
            index_builds=[IndexBuild.from_json(i) for i in data["index_builds"]],
            flow=FlowReport.from_json(data["flow"]) if data.get("flow") else None,
            plan_size=data.get("plan_size"),
        )

    # Lookups used by the report and the quick test.
    def get(self, size: int, case: str, approach: str) -> Measurement | None:
        for m in self.measurements:
            if m.size == size and m.case == case and m.approach == approach:
                return m
        return None
