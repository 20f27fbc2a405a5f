"""``noctis db check-indexes`` as a shell runs it: a sound database passes; rows that the
PostgreSQL GiST bug (docs/postgres-gist-bug.md) removed from ``archive_item``'s or
``standing_study``'s index are named, with exit code 1 and the REINDEX that repairs them, and
the repair passes; a check that cannot run exits 2."""

from __future__ import annotations

import asyncio
import json

import psycopg
from typer.testing import CliRunner

from noctis.cli import app
from noctis.db import libpq_dsn
from noctis.settings import Settings
from tests.support.gist_bug import Recipe, run_recipe

runner = CliRunner()
INDEX = "ix_archive_item_footprint_acquired_at"
SCENES = Recipe(
    index=INDEX,
    setup=(
        # Out of key order, so that the root's split moves entries to other offsets.
        "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) "
        "SELECT 'g' || i, 'sentinel-2-l2a', "
        "ST_MakeEnvelope(i * 0.01, 0, i * 0.01 + 0.005, 0.005, 4326), '2024-06-01T10:00Z' "
        "FROM generate_series(1, 100) AS i ORDER BY (i * 37) % 101",
        "DELETE FROM archive_item WHERE substr(external_id, 2)::int % 3 = 0",
    ),
    loop=(
        "SELECT o.n, a.id FROM (VALUES (1, ST_MakeEnvelope(-1, -1, 2, 1, 4326)), "
        "(2, ST_MakeEnvelope(-1, -1, 2, 1, 4326)), (3, ST_MakeEnvelope(-1, -1, 2, 1, 4326))) "
        "AS o(n, g) JOIN archive_item a ON a.footprint && o.g"
    ),
    first=67,
    add=lambda k: (
        "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) VALUES "
        "(%s, 'sentinel-2-l2a', ST_MakeEnvelope(%s, 0, %s + 0.005, 0.005, 4326), "
        "'2024-06-01T10:00Z')",
        (f"extra-{k}", (k * 7.3) % 100 * 0.01, (k * 7.3) % 100 * 0.01),
    ),
)


ENVELOPE = "ST_MakeEnvelope(-1, -1, 2, 1, 4326)"
STUDIES = Recipe(
    index="ix_standing_study_location",
    setup=(
        "INSERT INTO dream (name) SELECT 'd' || g FROM generate_series(1, 400) AS g",
        "INSERT INTO imagery_finder (name, location) SELECT 'f' || g, "
        "ST_MakeEnvelope(g * 0.001, 0, g * 0.001 + 0.0005, 0.0005, 4326) "
        "FROM generate_series(1, 400) AS g",
        "INSERT INTO standing_study (imagery_finder_id, dream_id, location) "
        "SELECT i, i, ST_MakeEnvelope(i * 0.01, 0, i * 0.01 + 0.005, 0.005, 4326) "
        "FROM generate_series(1, 100) AS i ORDER BY (i * 37) % 101",
        "DELETE FROM standing_study WHERE imagery_finder_id % 3 = 0",
    ),
    loop=(
        f"SELECT o.n, s.imagery_finder_id FROM (VALUES (1, {ENVELOPE}), (2, {ENVELOPE}), "
        f"(3, {ENVELOPE})) AS o(n, g) JOIN standing_study s ON s.location && o.g"
    ),
    first=67,
    add=lambda k: (
        "INSERT INTO standing_study (imagery_finder_id, dream_id, location) VALUES "
        "(%s, %s, ST_MakeEnvelope(%s, 0, %s + 0.005, 0.005, 4326))",
        (100 + k, 100 + k, (k * 7.3) % 100 * 0.01, (k * 7.3) % 100 * 0.01),
    ),
)


def _checks() -> list[dict[str, object]]:
    outcome = runner.invoke(app, ["db", "check-indexes", "--json"])
    assert outcome.exit_code in (0, 1), outcome.output
    checks: list[dict[str, object]] = json.loads(outcome.stdout)
    assert (outcome.exit_code == 0) == all(c["sound"] for c in checks)
    return checks


def test_a_sound_database_passes(env: Settings) -> None:
    with psycopg.connect(libpq_dsn(env.atlas_url), autocommit=True) as conn:
        for statement in SCENES.setup:
            conn.execute(statement)
    outcome = runner.invoke(app, ["db", "check-indexes"])
    assert outcome.exit_code == 0, outcome.output
    assert f"archive_item: 67 rows; {INDEX} finds them all" in outcome.output
    assert "standing_study: 0 rows; ix_standing_study_location finds them all" in outcome.output
    assert [(c["table"], c["rows"], c["found"], c["missing"], c["repair"]) for c in _checks()] == [
        ("archive_item", 67, 67, [], None),
        ("standing_study", 0, 0, [], None),
    ]


def test_rows_the_gist_lost_are_named_with_the_repair(env: Settings) -> None:
    dsn = libpq_dsn(env.atlas_url)
    asyncio.run(run_recipe(dsn, SCENES, plain_index_scans=True))
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM archive_item").fetchone()
    assert rows is not None
    outcome = runner.invoke(app, ["db", "check-indexes"])
    assert outcome.exit_code == 1, outcome.output
    assert f"REINDEX INDEX CONCURRENTLY {INDEX};" in outcome.output
    archive = _checks()[0]
    assert archive["repair"] == f"REINDEX INDEX CONCURRENTLY {INDEX};"
    assert archive["rows"] == rows[0] and isinstance(archive["found"], int)
    lost = rows[0] - archive["found"]
    assert lost > 0 and archive["missing"] and len(archive["missing"]) == min(lost, 20)  # type: ignore[arg-type]
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Each named row is in the table, and a search through the index misses it.
        for key in archive["missing"]:  # type: ignore[attr-defined]
            conn.execute("SET enable_seqscan = off")
            through = conn.execute(
                "SELECT count(*) FROM archive_item a WHERE footprint && "
                "(SELECT footprint FROM archive_item WHERE id = %s) AND id + 0 = %s",
                (key["id"], key["id"]),
            ).fetchone()
            assert through == (0,), key
        conn.execute(f"REINDEX INDEX CONCURRENTLY {INDEX}")
    outcome = runner.invoke(app, ["db", "check-indexes"])
    assert outcome.exit_code == 0, outcome.output
    assert f"archive_item: {rows[0]} rows; {INDEX} finds them all" in outcome.output


def test_lost_standing_studies_are_named_by_finder_and_dream(env: Settings) -> None:
    dsn = libpq_dsn(env.atlas_url)
    asyncio.run(run_recipe(dsn, STUDIES, plain_index_scans=True))
    outcome = runner.invoke(app, ["db", "check-indexes"])
    assert outcome.exit_code == 1, outcome.output
    assert "lost, by imagery_finder_id/dream_id: " in outcome.output
    studies = _checks()[1]
    assert studies["table"] == "standing_study" and not studies["sound"]
    assert studies["repair"] == "REINDEX INDEX CONCURRENTLY ix_standing_study_location;"
    missing = studies["missing"]
    assert isinstance(missing, list) and missing
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        for key in missing:
            assert set(key) == {"imagery_finder_id", "dream_id"}
            through = conn.execute(
                "SELECT count(*) FROM standing_study WHERE location && (SELECT location FROM "
                "standing_study WHERE imagery_finder_id = %(imagery_finder_id)s AND dream_id = "
                "%(dream_id)s) AND imagery_finder_id + 0 = %(imagery_finder_id)s",
                key,
            ).fetchone()
            assert through == (0,), key  # in the table, not through the index
        conn.execute("REINDEX INDEX CONCURRENTLY ix_standing_study_location")
    assert runner.invoke(app, ["db", "check-indexes"]).exit_code == 0


def test_a_check_that_cannot_run_exits_2(env: Settings) -> None:
    with psycopg.connect(libpq_dsn(env.atlas_url), autocommit=True) as conn:
        conn.execute("DROP INDEX ix_standing_study_location")
    outcome = runner.invoke(app, ["db", "check-indexes"])
    assert outcome.exit_code == 2, outcome.output
    assert "Could not check the indexes: standing_study cannot be checked: no plain index scan" in (
        " ".join(outcome.output.split())
    )
