"""The SQL text of bulk reads: the match rule with every value rendered by Noctis, not pasted."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import shapely
from geoalchemy2 import WKBElement
from sqlalchemy import literal, select

from noctis.models import ArchiveItem
from noctis.repositories import MatchCriteria, bulk, match_conditions

EVIL = "x') OR 1=1; DROP TABLE dream; --"
AOI = WKBElement(shapely.box(0, 0, 1, 1).wkb, srid=4326)


def _criteria(**kwargs: object) -> MatchCriteria:
    base: dict[str, object] = {
        "finder_id": 7,
        "location": AOI,
        "start": datetime(2024, 1, 1, tzinfo=UTC),
        "end": datetime(2025, 1, 1, tzinfo=UTC),
    }
    return MatchCriteria(**{**base, **kwargs})  # type: ignore[arg-type]


def test_the_match_sql_is_the_match_rule_with_its_values_inlined() -> None:
    sql = bulk.matches_sql(_criteria(max_cloud_cover=20.0, collections=("s2", EVIL)), limit=5)
    assert "ST_Intersects(archive_item.footprint, ST_SetSRID(ST_GeomFromEWKB(decode('" in sql
    assert f"decode('{bytes(AOI.data).hex()}', 'hex')" in sql
    assert "archive_item.acquired_at >= CAST('2024-01-01T00:00:00+00:00' AS TIMESTAMP" in sql
    assert "archive_item.acquired_at < CAST('2025-01-01T00:00:00+00:00' AS TIMESTAMP" in sql
    assert "archive_item.cloud_cover <= CAST(20.0 AS DOUBLE PRECISION)" in sql
    assert "LIMIT 5" in sql
    assert ":" + "aoi" not in sql and "%(" not in sql and "POSTCOMPILE" not in sql


def test_strings_reach_the_sql_only_as_hex() -> None:
    sql = bulk.matches_sql(_criteria(collections=(EVIL,)))
    assert EVIL not in sql and "DROP" not in sql
    assert f"convert_from(decode('{EVIL.encode().hex()}', 'hex'), 'UTF8')" in sql
    # Outside the fixed SQL, the only quoted literals are hex, ISO dates and encoding names
    # (and the fixed 'Infinity' of the finiteness test, geo.finite).
    for quoted in re.findall(r"'([^']*)'", sql):
        assert re.fullmatch(r"[0-9a-f]*|hex|UTF8|[0-9T:+-]+|Infinity", quoted), quoted


def test_the_match_sql_and_the_link_step_share_the_conditions() -> None:
    criteria = _criteria(max_cloud_cover=20.0)
    ours = bulk.render(select(ArchiveItem.id).where(*match_conditions(criteria)))
    sql = bulk.matches_sql(criteria)
    assert ours.split("WHERE", 1)[1].strip() in sql


def test_the_study_sql_pages_by_archive_item_id() -> None:
    sql = bulk.study_sql(finder_id=7, dream_id=3, after_item_id=100, limit=1000)
    assert "archive_lookup_item.dream_id = 3" in sql
    assert "archive_lookup_item.imagery_finder_id = 7" in sql
    assert "archive_lookup_item.archive_item_id > 100" in sql
    assert "ORDER BY archive_lookup_item.archive_item_id" in sql and "LIMIT 1000" in sql
    # A footprint with a non-finite coordinate is read as NULL (geo.finite).
    assert "THEN ST_AsBinary(archive_item.footprint) END AS footprint" in sql


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (datetime(2024, 1, 1), "naive datetime"),
        (float("nan"), "non-finite float"),
        (object(), "cannot render a object"),
    ],
)
def test_values_it_cannot_render_safely_are_refused(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        bulk.render(select(literal(value)))


def test_none_is_a_typed_null() -> None:
    assert "CAST(NULL AS REAL)" in bulk.render(select(literal(None, type_=ArchiveItem.gsd.type)))
