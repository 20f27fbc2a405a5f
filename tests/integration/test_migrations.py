"""The migrations on a real PostGIS: one head, up and down, and the models match the DDL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL

from noctis import migrate
from noctis.db import libpq_dsn
from noctis.models import Base
from noctis.settings import Settings
from tests.conftest import _admin, _settings_for

TABLES = {
    "dream",
    "imagery_finder",
    "archive_item",
    "archive_lookup_item",
    "notification_outbox",
    "coverage_plan",
    "coverage_plan_item",
    "standing_study",
    "standing_change",
}


@pytest.fixture
def empty_db(postgis_url: URL) -> Iterator[URL]:
    name = f"m_{uuid.uuid4().hex[:12]}"
    with _admin(postgis_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgis_url.set(database=name)
    finally:
        with _admin(postgis_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(url: URL) -> set[str]:
    engine = create_engine(url.set(drivername="postgresql+psycopg"))
    try:
        return set(inspect(engine).get_table_names()) - {"spatial_ref_sys"}
    finally:
        engine.dispose()


def test_has_a_single_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config(Settings(_env_file=None)))
    assert len(script.get_heads()) == 1


def test_upgrade_on_an_empty_database_creates_exactly_the_schema(empty_db: URL) -> None:
    migrate.upgrade(_settings_for(empty_db))
    assert _tables(empty_db) == TABLES | {"alembic_version"}
    with psycopg.connect(libpq_dsn(empty_db)) as conn:
        extensions = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
        indexes = {
            r[0]
            for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        }
    assert {"postgis", "btree_gist"} <= extensions
    assert "ix_archive_item_footprint_acquired_at" in indexes
    # No duplicate spatial index (the pitfall geoalchemy2's alembic helpers avoid).
    assert not any(i.startswith("idx_") for i in indexes)


def test_downgrade_to_base_leaves_no_table(empty_db: URL) -> None:
    settings = _settings_for(empty_db)
    migrate.upgrade(settings)
    migrate.downgrade(settings, "base")
    assert _tables(empty_db) == {"alembic_version"}


def test_every_revision_goes_up_down_and_up_again(empty_db: URL) -> None:
    settings = _settings_for(empty_db)
    config = migrate.alembic_config(settings)
    revisions = list(ScriptDirectory.from_config(config).walk_revisions("base", "heads"))
    for revision in reversed(revisions):
        command.upgrade(config, revision.revision)
        down = revision.down_revision
        # One line of revisions: a merge revision (a tuple of down revisions) has no single
        # revision to go down to.
        assert down is None or isinstance(down, str), f"{revision.revision} merges {down}"
        command.downgrade(config, down or "base")
        command.upgrade(config, revision.revision)
    assert _tables(empty_db) == TABLES | {"alembic_version"}


def test_models_match_the_migrated_ddl(template_url: URL) -> None:
    engine = create_engine(template_url.set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_object": alembic_helpers.include_object,
                    "compare_type": True,
                    "target_metadata": Base.metadata,
                },
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_constraint_names_match_the_models(template_url: URL) -> None:
    expected = {
        c.name
        for table in Base.metadata.tables.values()
        for c in table.constraints
        if c.name is not None
    }
    engine = create_engine(template_url.set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT conname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
                "WHERE t.relname = ANY(%(tables)s)",
                {"tables": sorted(TABLES)},
            )
            actual = {r[0] for r in rows}
    finally:
        engine.dispose()
    assert actual == expected


def test_0005_recomputes_what_the_geography_rule_stored(empty_db: URL) -> None:
    """A large study linked under 0004 (its coverages and standing area measured as geography)
    gets the equal-area values; a small one keeps its rows untouched."""
    settings = _settings_for(empty_db)
    migrate.upgrade(settings, "0004")
    large = "POLYGON((30 50, 180 50, 180 75, 30 75, 30 50))"
    small = "POLYGON((10 45, 10.5 45, 10.5 45.5, 10 45.5, 10 45))"
    south = "POLYGON((30 50, 180 50, 180 58, 30 58, 30 50))"
    geography = "ST_Area(ST_GeomFromText(%s, 4326)::geography)"
    with psycopg.connect(libpq_dsn(empty_db), autocommit=True) as conn:
        dream = conn.execute("INSERT INTO dream (name) VALUES ('d') RETURNING id").fetchone()
        ids = {}
        for name, wkt in (("large", large), ("small", small)):
            row = conn.execute(
                "INSERT INTO imagery_finder (name, location) VALUES (%s,"
                " ST_GeomFromText(%s, 4326)) RETURNING id",
                (name, wkt),
            ).fetchone()
            assert row is not None and dream is not None
            ids[name] = row[0]
        scene = conn.execute(
            "INSERT INTO archive_item (external_id, collection, footprint, acquired_at)"
            " VALUES ('s', 'c', ST_GeomFromText(%s, 4326), now()) RETURNING id",
            (south,),
        ).fetchone()
        assert scene is not None and dream is not None
        old = conn.execute(
            f"SELECT least(1.0, {geography} / {geography})", (south, large)
        ).fetchone()
        assert old is not None and old[0] == pytest.approx(0.4615, abs=1e-4)  # geography's
        for name in ("large", "small"):
            conn.execute(
                "INSERT INTO archive_lookup_item (dream_id, imagery_finder_id, archive_item_id,"
                " coverage) VALUES (%s, %s, %s, 0.123)",
                (dream[0], ids[name], scene[0]),
            )
        conn.execute(
            "INSERT INTO standing_study (imagery_finder_id, dream_id, location, area_m2)"
            f" VALUES (%s, %s, ST_GeomFromText(%s, 4326), {geography})",
            (ids["large"], dream[0], large, large),
        )
    migrate.upgrade(settings)
    with psycopg.connect(libpq_dsn(empty_db)) as conn:
        coverage: dict[str, float] = dict(
            conn.execute(
                "SELECT f.name, l.coverage FROM archive_lookup_item l"
                " JOIN imagery_finder f ON f.id = l.imagery_finder_id"
            ).fetchall()
        )
        area = conn.execute("SELECT area_m2 FROM standing_study").fetchone()
    assert coverage["large"] == pytest.approx(0.4097, abs=2e-4)  # pyproj: 0.40970
    assert coverage["small"] == 0.123  # under 1°: left as it was
    assert area is not None and area[0] == pytest.approx(21_360_094e6, rel=1e-6)
