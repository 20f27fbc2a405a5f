"""Rows for tests, written through the ORM (WKT in, SRID 4326)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import count

from geoalchemy2 import WKTElement
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.models import ArchiveItem, Dream, ImageryFinder

_ids = count(1)


def square(lon: float, lat: float, half: float) -> str:
    """An axis-aligned square polygon (WKT) centred on (lon, lat)."""
    x0, x1, y0, y1 = lon - half, lon + half, lat - half, lat + half
    return f"POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


def box(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


async def add_dream(session: AsyncSession, name: str = "a study") -> Dream:
    dream = Dream(name=name)
    session.add(dream)
    await session.flush()
    return dream


async def add_finder(
    session: AsyncSession,
    location: str,
    *,
    start: date | None = None,
    end: date | None = None,
    max_cloud_cover: float | None = None,
    collections: list[str] | None = None,
    name: str | None = None,
) -> ImageryFinder:
    finder = ImageryFinder(
        name=name,
        location=WKTElement(location, srid=4326),
        start_date=start,
        end_date=end,
        max_cloud_cover=max_cloud_cover,
        collections=collections,
    )
    session.add(finder)
    await session.flush()
    return finder


async def add_item(
    session: AsyncSession,
    footprint: str,
    acquired_at: datetime = datetime(2024, 6, 1, 10, 30, tzinfo=UTC),
    *,
    external_id: str | None = None,
    collection: str = "sentinel-2-l2a",
    cloud_cover: float | None = 10.0,
) -> ArchiveItem:
    item = ArchiveItem(
        external_id=external_id or f"item-{next(_ids)}",
        collection=collection,
        footprint=WKTElement(footprint, srid=4326),
        acquired_at=acquired_at,
        cloud_cover=cloud_cover,
        gsd=10.0,
    )
    session.add(item)
    await session.flush()
    return item
