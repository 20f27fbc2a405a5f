"""The building blocks the flow-level proofs rely on: which driver errors are transient (and so
retried by the tasks' ``retry_condition_fn``), what their messages say, the widest-edge check,
and the area and coverage expressions, compared with plain PostGIS on a real database."""

from __future__ import annotations

import asyncpg
import psycopg
import pytest
import shapely
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import is_transient, translate
from noctis.errors import DatabaseError, DatabaseUnavailable
from noctis.models import ArchiveItem
from noctis.repositories.geo import clipped_area, spheroid_area
from noctis.repositories.studies import widest_edge
from tests.reliability.support import seed_grid


class _Orig(Exception):
    """What SQLAlchemy's asyncpg adapter wraps: the driver's error is its ``__cause__``."""


def _wrapped(cause: BaseException, *, invalidated: bool = False) -> DBAPIError:
    orig = _Orig(str(cause))
    orig.__cause__ = cause
    return DBAPIError("SELECT 1", {}, orig, connection_invalidated=invalidated)


def _pg(cls: type[asyncpg.PostgresError], message: str) -> asyncpg.PostgresError:
    return cls(message)


TRANSIENT = [
    pytest.param(
        _pg(
            asyncpg.ConnectionDoesNotExistError, "connection was closed in the middle of operation"
        ),
        id="connection-does-not-exist",
    ),
    pytest.param(
        _wrapped(_pg(asyncpg.ConnectionDoesNotExistError, "closed"), invalidated=True),
        id="sqlalchemy-invalidated",
    ),
    pytest.param(_wrapped(_pg(asyncpg.AdminShutdownError, "terminating connection")), id="57P01"),
    pytest.param(_wrapped(_pg(asyncpg.SerializationError, "could not serialize")), id="40001"),
    pytest.param(_wrapped(_pg(asyncpg.DeadlockDetectedError, "deadlock detected")), id="40P01"),
    pytest.param(_wrapped(_pg(asyncpg.TooManyConnectionsError, "too many")), id="53300"),
    pytest.param(_wrapped(_pg(asyncpg.CannotConnectNowError, "starting up")), id="57P03"),
    pytest.param(ConnectionRefusedError(111, "Connect call failed"), id="refused"),
    pytest.param(TimeoutError(), id="connect-timeout"),
    pytest.param(PoolTimeout("QueuePool limit of size 2 overflow 5 reached"), id="pool-timeout"),
    pytest.param(DatabaseUnavailable("already translated"), id="translated"),
]

NOT_TRANSIENT = [
    pytest.param(
        _wrapped(_pg(asyncpg.QueryCanceledError, "canceling statement due to statement timeout")),
        id="statement-timeout",
    ),
    pytest.param(
        _wrapped(_pg(asyncpg.InsufficientPrivilegeError, "permission denied")), id="privilege"
    ),
    pytest.param(
        _wrapped(_pg(asyncpg.InvalidCatalogNameError, 'database "x" does not exist')),
        id="no-database",
    ),
    pytest.param(_wrapped(_pg(asyncpg.UniqueViolationError, "duplicate key")), id="unique"),
    pytest.param(
        _wrapped(_pg(asyncpg.InternalServerError, "GEOS Error: TopologyException")), id="XX000"
    ),
    pytest.param(DatabaseError("already translated"), id="translated"),
]


@pytest.mark.parametrize("error", TRANSIENT)
def test_transient_errors_are_retried(error: BaseException) -> None:
    assert is_transient(error)
    assert isinstance(translate(error, doing="linking"), DatabaseUnavailable)


@pytest.mark.parametrize("error", NOT_TRANSIENT)
def test_other_errors_are_not(error: BaseException) -> None:
    assert not is_transient(error)
    translated = translate(error, doing="linking")
    assert isinstance(translated, DatabaseError) and not translated.retryable


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            _wrapped(
                _pg(asyncpg.QueryCanceledError, "canceling statement due to statement timeout")
            ),
            "Atlas database error while linking: QueryCanceledError: canceling statement due to"
            " statement timeout"
            " (the statement ran longer than ATLAS_DB_STATEMENT_TIMEOUT_MS allows)",
        ),
        (
            TimeoutError(),
            "Atlas database unavailable while linking: TimeoutError: no answer in time "
            "(connecting is limited by ATLAS_DB_CONNECT_TIMEOUT)",
        ),
        (
            _wrapped(_pg(asyncpg.ConnectionDoesNotExistError, "connection was closed")),
            "Atlas database unavailable while linking: ConnectionDoesNotExistError: "
            "connection was closed",
        ),
    ],
    ids=["statement-timeout", "connect-timeout", "lost-connection"],
)
def test_messages_name_atlas_the_operation_and_the_reason(
    error: BaseException, message: str
) -> None:
    assert str(translate(error, doing="linking")) == message


# ----------------------------------------------------------------------------- widest edge


@pytest.mark.parametrize(
    ("wkt", "edge"),
    [
        ("POLYGON((170 -10, -170 -10, -170 10, 170 10, 170 -10))", (170.0, -170.0)),
        ("POLYGON((-100 0, 100 0, 100 1, -100 1, -100 0))", (-100.0, 100.0)),
        ("MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((-179 0,179 0,179 1,-179 0)))", (-179.0, 179.0)),
        ("POLYGON((0 0, 10 0, 10 10, 0 10, 0 0), (1 1, 2 1, 2 2, 1 1))", None),
        ("POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))", None),  # the world
        ("POLYGON((-180 -10, 180 -10, 180 10, -180 10, -180 -10))", None),  # a band
        ("POLYGON((-100 -5, 0 -5, 100 -5, 100 5, 0 5, -100 5, -100 -5))", None),  # densified
        ("POLYGON((-90 0, 90 0, 90 1, -90 1, -90 0))", None),  # exactly 180°: unambiguous
        (
            "MULTIPOLYGON(((170 -10, 180 -10, 180 10, 170 10, 170 -10)),"
            "((-180 -10, -170 -10, -170 10, -180 10, -180 -10)))",
            None,
        ),
    ],
    ids=[
        "antimeridian-unsplit",
        "200-degree-edge",
        "in-a-multipolygon",
        "with-a-hole",
        "world",
        "band",
        "densified-200-degrees",
        "exactly-180",
        "split-at-180",
    ],
)
def test_widest_edge(wkt: str, edge: tuple[float, float] | None) -> None:
    assert widest_edge(shapely.to_wkb(shapely.from_wkt(wkt))) == edge


# ----------------------------------------------------------------------------- areas


async def _one(session: AsyncSession, expr: object) -> float:
    return float((await session.execute(select(expr))).scalar_one())


def _geom(wkt: str) -> object:
    return func.ST_GeomFromText(wkt, 4326)


@pytest.mark.parametrize(
    "wkt",
    [
        "POLYGON((10 44.5, 11 44.5, 11 45.5, 10 45.5, 10 44.5))",
        "POLYGON((-60 -40, 100 -40, 100 70, -60 70, -60 -40))",  # 160° wide
        "MULTIPOLYGON(((0 0, 1 0, 1 1, 0 1, 0 0)), ((5 5, 6 5, 6 6, 5 6, 5 5)))",
    ],
    ids=["box", "160-degrees", "multipolygon"],
)
async def test_spheroid_area_is_the_geography_area_below_180_degrees(
    session: AsyncSession, wkt: str
) -> None:
    geography = func.ST_Area(func.geography(_geom(wkt)))
    assert await _one(session, spheroid_area(_geom(wkt))) == await _one(session, geography)


async def test_spheroid_area_of_the_world_is_the_wgs84_surface(session: AsyncSession) -> None:
    world = _geom("POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))")
    assert await _one(session, spheroid_area(world)) == pytest.approx(510_065_621.7e6, rel=1e-6)


async def test_geography_alone_fails_on_the_world(session: AsyncSession) -> None:
    world = _geom("POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))")
    with pytest.raises(DBAPIError, match="Antipodal"):
        await _one(session, func.ST_Area(func.geography(world)))


async def test_clipped_area_equals_the_plain_expression_on_valid_footprints(
    session: AsyncSession, atlas_settings: object
) -> None:
    from tests.reliability.support import admin_dsn

    async with await psycopg.AsyncConnection.connect(
        admin_dsn(atlas_settings),
        autocommit=True,  # type: ignore[arg-type]
    ) as admin:
        await seed_grid(admin, n=400)
    aoi = _geom("POLYGON((10.2 44.3, 11.1 44.3, 11.4 45.6, 10.1 45.2, 10.2 44.3))")
    footprint = ArchiveItem.footprint
    plain = func.ST_Area(func.geography(func.ST_Intersection(footprint, aoi)))
    stmt = select(func.max(func.abs(clipped_area(footprint, aoi) - plain)), func.count()).where(
        func.ST_Intersects(footprint, aoi)
    )
    difference, matches = (await session.execute(stmt)).one()
    assert matches > 100
    assert difference == 0.0


async def test_clipped_area_of_an_invalid_footprint_is_its_repair(session: AsyncSession) -> None:
    bow_tie = _geom("POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))")
    aoi = _geom("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))")
    with pytest.raises(DBAPIError, match="TopologyException"):
        await _one(session, func.ST_Area(func.geography(func.ST_Intersection(bow_tie, aoi))))
    await session.rollback()
    area = await _one(session, clipped_area(bow_tie, aoi))
    square = await _one(session, func.ST_Area(func.geography(aoi)))
    assert area == pytest.approx(square / 2, rel=1e-3)  # two triangles, half the square


async def test_clipped_area_shortcuts_agree_with_the_overlay(
    session: AsyncSession, atlas_settings: object
) -> None:
    """With the AOI's area, ST_Covers skips the overlay; the areas must not change."""
    from tests.reliability.support import admin_dsn

    async with await psycopg.AsyncConnection.connect(
        admin_dsn(atlas_settings),
        autocommit=True,  # type: ignore[arg-type]
    ) as admin:
        await seed_grid(admin, n=400)
    wkt = "POLYGON((10.2 44.3, 11.1 44.3, 11.4 45.6, 10.1 45.2, 10.2 44.3))"
    aoi = _geom(wkt)
    aoi_area = float(await _one(session, func.ST_Area(func.geography(aoi))))
    footprint = ArchiveItem.footprint
    plain = func.ST_Area(func.geography(func.ST_Intersection(footprint, aoi)))
    shortcut = clipped_area(footprint, aoi, aoi_area=aoi_area)
    stmt = select(
        func.max(func.abs(shortcut - plain) / aoi_area),
        func.count(),
        func.count().filter(func.ST_Covers(aoi, footprint)),
    ).where(func.ST_Intersects(footprint, aoi))
    difference, matches, inside = (await session.execute(stmt)).one()
    assert matches > 100
    assert inside > 0, "no footprint inside the AOI: the shortcut was not exercised"
    assert difference < 1e-9
