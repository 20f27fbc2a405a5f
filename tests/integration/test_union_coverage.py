"""The union coverage of a study (the flow's summary) on PostGIS, against the earlier form of
the same area: the union of every match clipped to the AOI one by one.

Noctis unions each distinct footprint once (revisits of a tile repeat its footprint); a repeated
footprint, valid or needing repair, must not change the area, and another shape with the same
bounding box is a footprint of its own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from noctis.unit_of_work import UnitOfWork
from tests.support.factories import add_dream, add_finder, add_item, box
from tests.support.plans import linked

Factory = async_sessionmaker[AsyncSession]
AOI = box(10.0, 45.0, 11.0, 46.0)
BOWTIE = "POLYGON((10.6 45.6, 10.9 45.9, 10.9 45.6, 10.6 45.9, 10.6 45.6))"
# Every match of the study, each clipped to the AOI (repaired first when invalid), then unioned:
# the form Noctis used before it took each footprint once.
EVERY_MATCH = """
SELECT least(1.0, coalesce(ST_Area(ST_Transform(ST_Segmentize(ST_Union(ST_Intersection(
         CASE WHEN ST_IsValid(a.footprint) THEN a.footprint
              ELSE ST_CollectionExtract(ST_MakeValid(a.footprint), 3) END,
         f.location)), 0.25), 6933)), 0)
       / min(ST_Area(ST_Transform(ST_Segmentize(f.location, 0.25), 6933))))
FROM archive_lookup_item l JOIN archive_item a ON a.id = l.archive_item_id
JOIN imagery_finder f ON f.id = l.imagery_finder_id
WHERE l.imagery_finder_id = :finder AND l.dream_id = :dream
"""


async def _union(factory: Factory, finder: int, dream: int) -> float | None:
    study = await linked(factory, finder, dream)
    async with UnitOfWork(factory) as uow:
        return await uow.lookups.union_coverage(criteria=study.criteria, dream_id=dream)


async def test_repeated_footprints_count_once_and_near_copies_on_their_own(
    session: AsyncSession, session_factory: Factory
) -> None:
    dream = await add_dream(session, "union")
    finder = await add_finder(session, AOI, start=date(2024, 1, 1), end=date(2024, 12, 31))
    june = datetime(2024, 6, 1, 10, tzinfo=UTC)
    lower = "POLYGON((9.5 44.5, 10.5 44.5, 9.5 45.5, 9.5 44.5))"  # its AOI part: 1/8 of it
    for day in range(5):  # five revisits of one footprint
        await add_item(session, lower, june + timedelta(days=day))
    # The other half of the same bounding box: a footprint of its own (told apart by shape).
    await add_item(session, "POLYGON((10.5 44.5, 10.5 45.5, 9.5 45.5, 10.5 44.5))", june)
    await add_item(session, box(10.3, 45.3, 10.7, 45.7), june)  # overlaps the tile
    for day in range(3):  # an invalid footprint, repeated: repaired, counted once
        await add_item(session, BOWTIE, june + timedelta(days=day))
    await add_item(session, box(10.8, 45.0, 11.2, 45.2), june + timedelta(days=400))  # outside
    await session.commit()

    union = await _union(session_factory, finder.id, dream.id)
    reference = (
        await session.execute(text(EVERY_MATCH), {"finder": finder.id, "dream": dream.id})
    ).scalar_one()
    assert union is not None
    assert union == pytest.approx(float(reference), rel=1e-9)
    # The two halves: 0.5° x 0.5° of the AOI's 1° x 1°; the box inside adds 0.16 less its
    # overlap (0.04), the bowtie its two triangles (0.045): about 0.415 (spheroid areas).
    assert union == pytest.approx(0.415, abs=0.01)


async def test_a_study_without_matches_covers_nothing(
    session: AsyncSession, session_factory: Factory
) -> None:
    dream = await add_dream(session, "empty union")
    finder = await add_finder(session, AOI, start=date(2024, 1, 1), end=date(2024, 12, 31))
    await session.commit()
    assert await _union(session_factory, finder.id, dream.id) == 0.0


async def test_one_footprint_covering_the_aoi_settles_it_and_only_the_studys_own(
    session: AsyncSession, session_factory: Factory
) -> None:
    """A tile larger than the AOI covers it all: 1.0 without the union. The shortcut reads the
    study's own items: a covering footprint linked to another study does not count, nor
    does one that covers the AOI's bounding box but not the AOI."""
    triangle = "POLYGON((10 45, 11 45, 10 46, 10 45))"  # the AOI: half of its bounding box
    dream = await add_dream(session, "covered")
    finder = await add_finder(session, triangle, start=date(2024, 1, 1), end=date(2024, 12, 31))
    june = datetime(2024, 6, 1, 10, tzinfo=UTC)
    await add_item(session, box(10.0, 45.0, 10.4, 45.4), june)  # inside the AOI
    # Covers the AOI, but a year later: the study of the same AOI over 2025 links it, this
    # one does not.
    await add_item(session, box(9.0, 44.0, 12.0, 47.0), june + timedelta(days=400))
    later = await add_finder(session, triangle, start=date(2025, 1, 1), end=date(2025, 12, 31))
    # Covers the AOI's bounding box but not the AOI: a frame with a hole inside the AOI.
    frame = (
        "POLYGON((9 44, 12 44, 12 47, 9 47, 9 44),"
        "(10.6 45.1, 10.7 45.1, 10.7 45.2, 10.6 45.2, 10.6 45.1))"
    )
    await add_item(session, frame, june)
    await session.commit()
    await linked(session_factory, later.id, dream.id)

    partial = await _union(session_factory, finder.id, dream.id)
    # The frame covers all but its hole, which lies inside the AOI and outside the inner box.
    # (Not EVERY_MATCH: clipping first adds vertices on the AOI's diagonal, which the chords of
    # the equal-area reading meet at other points, so the same shape measures slightly apart.)
    hole = "POLYGON((10.6 45.1, 10.7 45.1, 10.7 45.2, 10.6 45.2, 10.6 45.1))"
    reference = await session.scalar(
        text(
            "SELECT 1 - ST_Area(ST_Transform(ST_Segmentize(ST_GeomFromText(:hole, 4326), 0.25),"
            " 6933)) / ST_Area(ST_Transform(ST_Segmentize(ST_GeomFromText(:aoi, 4326), 0.25),"
            " 6933))"
        ),
        {"hole": hole, "aoi": triangle},
    )
    assert partial is not None and partial < 1.0
    assert partial == pytest.approx(float(reference), rel=1e-9)

    await add_item(session, box(9.5, 44.5, 11.5, 46.5), june + timedelta(days=1))  # covers it
    await session.commit()
    assert await _union(session_factory, finder.id, dream.id) == 1.0


# The union of every distinct footprint (repaired when invalid, none when non-finite), clipped
# once: the same union the sieve must give, built without it.
EVERY_FOOTPRINT = """
SELECT ST_Intersection(x.u, f.location) FROM imagery_finder f, (
  SELECT ST_Union(CASE WHEN ST_IsValid(d.footprint) THEN d.footprint
           WHEN ST_IsValidReason(d.footprint) LIKE 'Invalid Coordinate%' THEN NULL
           ELSE ST_CollectionExtract(ST_MakeValid(d.footprint), 3) END) AS u
  FROM (SELECT DISTINCT a.footprint FROM archive_lookup_item l
        JOIN archive_item a ON a.id = l.archive_item_id
        WHERE l.imagery_finder_id = :finder AND l.dream_id = :dream) d) x
WHERE f.id = :finder
"""


@pytest.mark.parametrize("sieve", [(1,), (2,), (64,), (1, 1), (1, 2), (64, 448)])
async def test_the_sieve_drops_only_what_the_largest_footprints_cover(
    session: AsyncSession,
    session_factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
    sieve: tuple[int, ...],
) -> None:
    """The largest footprints are unioned first and what they cover is left out of the rest,
    in rounds: the union is the same whatever their number and sizes. With (2,) or (1, 1) the
    two tiles are the sieve; a scene inside a tile is dropped, and the scenes that stick out of
    both (one half inside them, one not touching them, a bow-tie, a footprint with an infinite
    vertex) are kept."""
    monkeypatch.setattr("noctis.repositories.union.SIEVE", sieve)
    dream = await add_dream(session, f"sieve {sieve!r}")
    finder = await add_finder(session, AOI, start=date(2024, 1, 1), end=date(2024, 12, 31))
    june = datetime(2024, 6, 1, 10, tzinfo=UTC)
    await add_item(session, box(9.8, 44.8, 10.6, 46.2), june)  # a tile over the AOI's west
    await add_item(session, box(10.5, 44.8, 11.2, 45.5), june)  # a tile over its south-east
    for day in range(3):
        await add_item(session, box(10.1, 45.1, 10.3, 45.3), june + timedelta(days=day))
    await add_item(session, box(10.55, 45.4, 10.9, 45.9), june)  # half inside the tiles
    await add_item(session, box(10.92, 45.7, 10.98, 45.95), june)  # outside both
    await add_item(session, BOWTIE, june)
    await session.commit()
    await session.execute(
        text(
            "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) SELECT "
            "'non-finite', 's2', ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY["
            "ST_MakePoint(10.7, 45.1), ST_MakePoint(10.8, 45.1), ST_MakePoint('Infinity', 45.2),"
            " ST_MakePoint(10.7, 45.2), ST_MakePoint(10.7, 45.1)])), 4326), '2024-06-01T10:00Z'"
        )
    )
    await session.commit()

    union = await _union(session_factory, finder.id, dream.id)
    ids = {"finder": finder.id, "dream": dream.id}
    reference = (
        await session.execute(
            text(
                "SELECT ST_Area(ST_Transform(ST_Segmentize(u, 0.25), 6933))"
                " / ST_Area(ST_Transform(ST_Segmentize(location, 0.25), 6933)), ST_Area(u)"
                f" FROM ({EVERY_FOOTPRINT}) r(u), imagery_finder WHERE id = :finder"
            ),
            ids,
        )
    ).one()
    assert union is not None
    # The same shape, measured the same way; the two unions may split an edge at different
    # points: a relative 1e-9 apart at most.
    assert union == pytest.approx(float(reference[0]), rel=1e-9)
    # In square degrees: the tiles cover 0.6 + 0.25 of the AOI, less their 0.05 overlap; the
    # half-inside scene adds 0.12 and the one outside them 0.015, what a sieve that dropped
    # them would lose; the bow-tie lies inside the half-inside scene.
    assert float(reference[1]) == pytest.approx(0.8 + 0.12 + 0.015, abs=1e-9)
