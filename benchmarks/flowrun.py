"""Run the flow worker (:mod:`benchmarks.flow_worker`) in a subprocess and read its results."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from benchmarks.matching import Study
from noctis.db import libpq_dsn

REPO = Path(__file__).resolve().parents[1]


@dataclass
class FlowCase:
    case: str
    matches: int
    matched: list[int]
    seconds: list[float]
    peak_rss_mb: float
    rss_mb: float
    hwm_mb: float = float("nan")
    """Peak RSS since just before the first flow (VmHWM reset then), after this case."""
    steps: list[dict[str, float]] = field(default_factory=list)
    """Per timed run: seconds in each step the flow calls (see flow_worker.instrument)."""

    def step(self, name: str) -> float:
        values = [s.get(name, 0.0) for s in self.steps]
        return statistics.median(values) if values else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def max(self) -> float:
        return max(self.seconds)


@dataclass
class FlowReport:
    size: int
    runs: int
    warmups: int
    cases: list[FlowCase] = field(default_factory=list)
    import_s: float = 0.0
    harness_start_s: float = 0.0
    rss_after_imports_mb: float = 0.0
    rss_before_first_flow_mb: float = 0.0
    peak_rss_before_first_flow_mb: float = 0.0
    """``ru_maxrss``: includes the parent's RSS at fork time (see flow_worker.peak_rss_mb)."""
    hwm_before_first_flow_mb: float = float("nan")
    """VmHWM before the first flow: this process' own peak (imports, the harness' start)."""
    final_peak_rss_mb: float = 0.0
    hwm_reset: bool = False
    log_file: str = ""
    reference: dict[str, list[float]] = field(default_factory=dict)
    """Prefect alone: an empty flow, a flow with 4 no-op tasks (seconds per run)."""

    @staticmethod
    def from_json(data: dict[str, Any]) -> FlowReport:
        cases = [FlowCase(**c) for c in data.pop("cases", [])]
        return FlowReport(cases=cases, **data)


def _log_file(log_dir: Path, size: int) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir / f"flow-worker-{size}.log"


def _prepare(tmp: Path, spec: dict[str, Any]) -> tuple[Path, Path, dict[str, str]]:
    spec_path, out_path = tmp / "spec.json", tmp / "out.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            "PREFECT_HOME": str(tmp / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "NOCTIS_AUGUR_API_URL": "",
        }
    )
    return spec_path, out_path, env


def _read(out_path: Path, log_file: Path, code: int) -> dict[str, Any]:
    if code != 0 or not out_path.exists():
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"the flow worker failed ({code}); its log ends:\n{tail}")
    data: dict[str, Any] = json.loads(out_path.read_text())
    return data


async def run_flows(
    url: URL,
    size: int,
    studies: list[Study],
    *,
    runs: int,
    warmups: int,
    log_dir: Path,
    log: Callable[[str], None],
) -> FlowReport:
    """The flow end to end on each study (fewest matches first), in one worker process."""
    ordered = sorted(studies, key=lambda s: (s.matches, s.case))
    spec = {
        "url": url.render_as_string(hide_password=False),
        "dsn": libpq_dsn(url),
        "runs": runs,
        "warmups": warmups,
        "cases": [
            {
                "key": s.case.key,
                "finder_id": s.finder_id,
                "dream_id": s.dream_id,
                "matches": s.matches,
            }
            for s in ordered
        ],
    }
    log_file = _log_file(log_dir, size)
    with tempfile.TemporaryDirectory(prefix="noctis-bench-flow-") as tmp:
        spec_path, out_path, env = _prepare(Path(tmp), spec)
        with log_file.open("w") as sink:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "benchmarks.flow_worker",
                str(spec_path),
                str(out_path),
                cwd=str(REPO),
                env=env,
                stdout=sink,
                stderr=sink,
            )
            code = await proc.wait()
        data = _read(out_path, log_file, code)
    report = FlowReport.from_json({"size": size, "runs": runs, "warmups": warmups, **data})
    report.log_file = str(log_file)
    for name, seconds in report.reference.items():
        log(f"    {name}: {statistics.median(seconds) * 1000:.1f} ms")
    for c in report.cases:
        log(
            f"    flow {c.case:<16} {c.median * 1000:9.1f} ms"
            f"  link {c.step('link_study') * 1000:.1f} ms"
            f"  peak RSS since the first flow {c.hwm_mb:.0f} MiB"
            f"  (matched {c.matched})"
        )
    return report
