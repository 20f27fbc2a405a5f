"""The stack's Atlas, from the host through its 127.0.0.1 published port: the synthetic archive,
the studies (a dream and a finder each), the lookup rows and the match rule written again,
independently of Noctis' own SQL."""

from __future__ import annotations

import asyncio
import importlib
import math
from dataclasses import dataclass
from datetime import date
from types import ModuleType
from typing import Any

import psycopg

# The match rule of the README, written as plainly as possible: a join and a WHERE clause per
# condition, nothing shared with src/noctis/repositories. A null date leaves that side open;
# dates are whole UTC days, both inclusive; an item of unknown cloud cover never passes a
# max_cloud_cover; collections, when set, must contain the item's.
MATCH_RULE = """
SELECT a.id
FROM archive_item AS a
JOIN imagery_finder AS f ON f.id = %(finder)s
WHERE ST_Intersects(a.footprint, f.location)
  AND (f.start_date IS NULL OR a.acquired_at >= (f.start_date::timestamp AT TIME ZONE 'UTC'))
  AND (f.end_date IS NULL OR a.acquired_at < ((f.end_date + 1)::timestamp AT TIME ZONE 'UTC'))
  AND (f.max_cloud_cover IS NULL
       OR (a.cloud_cover IS NOT NULL AND a.cloud_cover <= f.max_cloud_cover))
  AND (f.collections IS NULL OR a.collection = ANY (f.collections))
ORDER BY a.id
"""

# Coverage of one lookup row, again from the README: area(footprint ∩ AOI) / area(AOI) on the
# spheroid (the AOIs here are small boxes, far from the antimeridian), capped at 1.
COVERAGE_MISMATCHES = """
SELECT count(*)
FROM archive_lookup_item AS l
JOIN archive_item AS a ON a.id = l.archive_item_id
JOIN imagery_finder AS f ON f.id = l.imagery_finder_id
WHERE l.dream_id = %(dream)s AND l.imagery_finder_id = %(finder)s
  AND abs(l.coverage - least(1.0,
        ST_Area(ST_Intersection(ST_MakeValid(a.footprint), f.location)::geography)
        / ST_Area(f.location::geography))) > 1e-6
"""


# Used only if the synthetic module stops exposing its CITIES: places it has always clustered
# scenes around.
_FALLBACK_CITIES = (
    ("Paris", 2.3522, 48.8566),
    ("London", -0.1278, 51.5074),
    ("Berlin", 13.4050, 52.5200),
    ("Madrid", -3.7038, 40.4168),
    ("Rome", 12.4964, 41.9028),
    ("Tokyo", 139.6917, 35.6895),
    ("Delhi", 77.2090, 28.6139),
    ("Cairo", 31.2357, 30.0444),
    ("Lagos", 3.3792, 6.5244),
    ("New York", -74.0060, 40.7128),
    ("Mexico City", -99.1332, 19.4326),
    ("Sydney", 151.2093, -33.8688),
)


@dataclass(frozen=True)
class City:
    name: str
    lon: float
    lat: float


@dataclass(frozen=True)
class Study:
    finder: int
    dream: int
    label: str

    @property
    def parameters(self) -> dict[str, int]:
        return {"imagery_finder_pk": self.finder, "dream_pk": self.dream}


def synthetic() -> ModuleType:
    """The synthetic archive module, wherever the source tree keeps it."""
    for name in ("noctis.devtools.synthetic", "noctis.synthetic"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or not name.startswith(e.name):
                raise
    raise ModuleNotFoundError("no noctis.devtools.synthetic nor noctis.synthetic")


def load_archive(url: str, size: int) -> int:
    """COPY a synthetic archive of ``size`` items into ``archive_item``; the rows written."""
    module = synthetic()
    return int(asyncio.run(module.load_archive_url(url, module.ArchiveSpec(size=size))))


class Atlas:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        with self.connect() as conn:
            row = conn.execute(sql, params).fetchone()
        assert row is not None
        return row[0]

    def analyze(self) -> None:
        with self.connect() as conn:
            conn.execute("ANALYZE archive_item")

    def create_studies(self, count: int, *, prefix: str) -> list[Study]:
        """``count`` studies: city boxes of 20-60 km with a mix of windows, cloud and
        collection filters, each with its own dream, on cities the archive clusters around."""
        known = getattr(synthetic(), "CITIES", None) or ()
        cities = [
            c
            for c in [City(c.name, c.lon, c.lat) for c in known]
            or [City(*row) for row in _FALLBACK_CITIES]
            if abs(c.lon) < 175 and abs(c.lat) < 70  # far from the antimeridian and the poles
        ]
        windows: list[tuple[date | None, date | None]] = [
            (None, None),
            (date(2021, 1, 1), date(2023, 12, 31)),
            (date(2019, 6, 1), None),
            (None, date(2022, 6, 30)),
        ]
        studies = []
        with self.connect() as conn:
            for n in range(count):
                city = cities[(n * 7) % len(cities)]
                km = 20 + 10 * (n % 5)
                half_lat = km / 2 / 111.32
                half_lon = km / 2 / (111.32 * math.cos(math.radians(city.lat)))
                start, end = windows[n % len(windows)]
                cloud = 40.0 if n % 3 == 1 else None
                collections = (
                    ["sentinel-2-l2a"] if n % 5 == 2 else ["maxar-wv3", "planet-skysat"]
                    if n % 5 == 4 else None
                )  # fmt: skip
                dream = conn.execute(
                    "INSERT INTO dream (name) VALUES (%s) RETURNING id", (f"{prefix} {n}",)
                ).fetchone()
                finder = conn.execute(
                    "INSERT INTO imagery_finder "
                    "(name, location, start_date, end_date, max_cloud_cover, collections) "
                    "VALUES (%s, ST_MakeEnvelope(%s, %s, %s, %s, 4326), %s, %s, %s, %s) "
                    "RETURNING id",
                    (
                        f"{prefix} {n}: {city.name} {km} km",
                        round(city.lon - half_lon, 6),
                        round(city.lat - half_lat, 6),
                        round(city.lon + half_lon, 6),
                        round(city.lat + half_lat, 6),
                        start,
                        end,
                        cloud,
                        collections,
                    ),
                ).fetchone()
                assert dream is not None and finder is not None
                studies.append(Study(int(finder[0]), int(dream[0]), f"{prefix} {n} ({city.name})"))
        return studies

    def expected(self, study: Study) -> list[int]:
        """The archive items the match rule selects for the study's finder."""
        with self.connect() as conn:
            return [int(r[0]) for r in conn.execute(MATCH_RULE, {"finder": study.finder})]

    def lookups(self, study: Study) -> list[int]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT archive_item_id FROM archive_lookup_item "
                "WHERE dream_id = %(dream)s AND imagery_finder_id = %(finder)s "
                "ORDER BY archive_item_id",
                {"dream": study.dream, "finder": study.finder},
            )
            return [int(r[0]) for r in rows]

    def lookups_all(self) -> list[tuple[int, int, int, float | None]]:
        """Every lookup row: (dream, finder, item, coverage)."""
        with self.connect() as conn:
            return [
                (int(d), int(f), int(i), c)
                for d, f, i, c in conn.execute(
                    "SELECT dream_id, imagery_finder_id, archive_item_id, coverage "
                    "FROM archive_lookup_item"
                )
            ]

    def coverage_mismatches(self, study: Study) -> int:
        return int(self.scalar(COVERAGE_MISMATCHES, {"dream": study.dream, "finder": study.finder}))

    def duplicate_lookups(self) -> int:
        """Lookup rows beyond the first of each (dream, finder, item): always 0 if all is well."""
        return int(
            self.scalar(
                "SELECT count(*) - count(DISTINCT (dream_id, imagery_finder_id, archive_item_id)) "
                "FROM archive_lookup_item"
            )
        )

    def counts(self) -> dict[str, int]:
        with self.connect() as conn:
            return {
                table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
                for table in ("archive_item", "dream", "imagery_finder", "archive_lookup_item")
            }
