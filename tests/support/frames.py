"""A small study for the frames, exports and CLI tests, and the database's own view of it.

The AOI and one footprint are split at the antimeridian (MultiPolygons on ±180); one item has
a collection name full of SQL, one a cloud cover that float4 cannot hold exactly (10.1), one
no cloud cover, gsd or properties. Two items miss (outside the window, outside the AOI).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import shapely
from geoalchemy2 import WKTElement

from noctis.models import ArchiveItem, Dream, ImageryFinder
from noctis.notebook import open_uow
from noctis.settings import Settings
from noctis.study import check_study, link_study
from tests.support.factories import square
from tests.support.studies import admin_dsn

AOI = (
    "MULTIPOLYGON(((178 -2, 180 -2, 180 2, 178 2, 178 -2)),"
    "((-180 -2, -178 -2, -178 2, -180 2, -180 -2)))"
)
SPLIT = (
    "MULTIPOLYGON(((179 -1, 180 -1, 180 1, 179 1, 179 -1)),"
    "((-180 -1, -179 -1, -179 1, -180 1, -180 -1)))"
)
EVIL = "it's'); DROP TABLE dream; --"


@dataclass(frozen=True)
class Seeded:
    finder_id: int
    dream_id: int


def _item(external_id: str, footprint: str, when: datetime, **kwargs: Any) -> ArchiveItem:
    kwargs.setdefault("collection", "sentinel-2-l2a")
    return ArchiveItem(
        external_id=external_id,
        footprint=WKTElement(footprint, srid=4326),
        acquired_at=when,
        **kwargs,
    )


async def seed_study(settings: Settings, *, link: bool = True) -> Seeded:
    """The study above, linked by the product's own use case (check, then link)."""
    june = datetime(2024, 6, 1, 10, 30, tzinfo=UTC)
    async with open_uow(settings) as uow:
        dream = Dream(name="frames")
        finder = ImageryFinder(
            name="antimeridian",
            location=WKTElement(AOI, srid=4326),
            start_date=date(2024, 1, 1),
            end_date=date(2024, 12, 31),
        )
        quoted = {"platform": "sentinel-2a", "note": 'it\'s "quoted"', "orbit": 51}
        uow.session.add_all(
            [
                dream,
                finder,
                _item("split", SPLIT, june, cloud_cover=12.5, gsd=10.0, properties=quoted),
                _item(
                    "east",
                    square(178.5, 0, 0.25),
                    june.replace(day=2),
                    cloud_cover=10.1,
                    gsd=10.0,
                    properties={"platform": "sentinel-2b"},
                ),
                _item(
                    "west",
                    square(-178.5, 0.5, 0.25),
                    june.replace(day=3, microsecond=250),
                    collection=EVIL,
                ),
                _item("late", square(178.5, 0, 0.25), datetime(2025, 1, 1, tzinfo=UTC)),
                _item("far", square(10, 10, 0.5), june),
            ]
        )
        await uow.session.flush()
        ids = Seeded(finder_id=finder.id, dream_id=dream.id)
        await uow.commit()
        if link:
            study = await check_study(uow, finder_id=ids.finder_id, dream_id=ids.dream_id)
            await link_study(uow, study)
    return ids


def database_rows(settings: Settings, seeded: Seeded) -> list[dict[str, Any]]:
    """The study's rows as the database has them (psycopg, written independently)."""
    with psycopg.connect(admin_dsn(settings)) as conn:
        cur = conn.execute(
            "SELECT a.id, a.external_id, a.collection, a.acquired_at, a.cloud_cover, a.gsd,"
            "       l.coverage, a.properties, ST_AsBinary(a.footprint)"
            "  FROM archive_lookup_item l JOIN archive_item a ON a.id = l.archive_item_id"
            " WHERE l.imagery_finder_id = %s AND l.dream_id = %s ORDER BY a.id",
            (seeded.finder_id, seeded.dream_id),
        )
        names = [
            "archive_item_id",
            "external_id",
            "collection",
            "acquired_at",
            "cloud_cover",
            "gsd",
            "coverage",
            "properties",
            "footprint",
        ]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    for row in rows:
        row["footprint"] = shapely.from_wkb(bytes(row["footprint"]))
    return rows


def same_real(a: float | None, b: float | None) -> bool:
    """Equal as float4 (REAL) values: 10.1 and 10.100000381469727 are the same stored value."""
    import numpy as np

    if a is None or b is None:
        return a is None and b is None
    return bool(np.float32(a) == np.float32(b))


def parsed(properties: str | dict[str, Any]) -> dict[str, Any]:
    return json.loads(properties) if isinstance(properties, str) else properties
