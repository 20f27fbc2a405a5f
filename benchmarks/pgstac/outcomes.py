"""What a run measured: each case, the search taken apart, the run as a whole."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from benchmarks.db import (
    Build,
)
from benchmarks.pgstac.load import PgstacLoad
from benchmarks.pgstac.queries import NOHYDRATE, PGSTAC


@dataclass
class Outcome:
    key: str
    rows: int
    """Noctis' matches."""
    link_rows: int = 0
    found: dict[str, int] = field(default_factory=dict)
    """Ids each pgstac mode returned."""
    equal: dict[str, bool] = field(default_factory=dict)
    only_noctis: dict[str, list[str]] = field(default_factory=dict)
    only_pgstac: dict[str, list[str]] = field(default_factory=dict)
    forms: dict[str, int] = field(default_factory=dict)
    """Ids returned (nohydrate: the same WHERE, cheaper) by the other spellings of the window."""
    forms_equal: dict[str, bool] = field(default_factory=dict)
    wall: dict[str, list[float]] = field(default_factory=dict)
    server: dict[str, list[float]] = field(default_factory=dict)

    def median(self, approach: str, *, server: bool = False) -> float:
        return statistics.median((self.server if server else self.wall)[approach])

    @staticmethod
    def from_json(data: dict[str, Any]) -> Outcome:
        return Outcome(**data)


@dataclass
class Explained:
    key: str
    search: dict[str, Any]
    plan: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    """ms: parse and record the search, fetch the rows, the whole search."""
    rows: int = 0
    readonly_wall: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per case: wall seconds of the search with pgstac.readonly off (the default) and on."""
    rows_plan: str = ""
    nested: list[tuple[float, str]] = field(default_factory=list)
    """(ms, first lines of the plan) of the nested statements over NESTED_MIN_MS."""
    default_limit_returned: int = 0
    mode: str = PGSTAC
    """The pgstac mode taken apart: the default one, or nohydrate (with ``pgstac.readonly`` on,
    as it is timed) when the default mode was not run."""


@dataclass
class Run:
    size: int
    runs: int
    build: Build
    load: PgstacLoad
    outcomes: list[Outcome]
    explained: Explained
    probes: dict[str, list[str]] = field(default_factory=dict)
    """Which of the window-edge probe scenes each rule matched."""
    server_version: str = ""
    postgis: str = ""
    boundary_items: int = 0
    """Archive items acquired at exactly 00:00:00 UTC (where an inclusive end bites)."""
    load_average: tuple[float, float] = (0.0, 0.0)
    day: str = ""
    """The day it ran (YYYY-MM-DD)."""
    searches: tuple[str, ...] = (PGSTAC, NOHYDRATE)
    """The pgstac modes timed, compared and taken apart (``--searches``; JSON written before
    the option: both)."""
