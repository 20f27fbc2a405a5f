"""The stack's Atlas, from the host through its 127.0.0.1 published port: the synthetic archive,
the studies (a dream and a finder each), and the lookup rows checked against the match and
coverage rules written again independently of Noctis' own SQL (noctis.devtools.reference)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from noctis.devtools.reference import reference_coverage_sql, reference_match_sql
from noctis.devtools.synthetic import CITIES, ArchiveSpec, load_archive_url

MATCH_RULE = reference_match_sql("%(finder)s")
COVERAGE = reference_coverage_sql(finder="%(finder)s", dream="%(dream)s")


@dataclass(frozen=True)
class Study:
    finder: int
    dream: int
    label: str

    @property
    def parameters(self) -> dict[str, int]:
        return {"imagery_finder_pk": self.finder, "dream_pk": self.dream}


def load_archive(url: str, size: int) -> int:
    """COPY a synthetic archive of ``size`` items into ``archive_item``; the rows written."""
    return int(asyncio.run(load_archive_url(url, ArchiveSpec(size=size))))


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
        # far from the antimeridian and the poles: small boxes, plain areas
        cities = [c for c in CITIES if abs(c.lon) < 175 and abs(c.lat) < 70]
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

    def coverage_mismatches(self, study: Study) -> list[tuple[int, float | None, float | None]]:
        """(item, recorded, reference) of each lookup row whose coverage is not the rule's."""
        with self.connect() as conn:
            rows = conn.execute(COVERAGE, {"dream": study.dream, "finder": study.finder})
            return [
                (int(item), recorded, expected)
                for item, recorded, expected in rows
                if (recorded is None) != (expected is None)
                or (recorded is not None and abs(recorded - expected) > 1e-6)
            ]

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
