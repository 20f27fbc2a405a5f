"""libpq's connection parameters in ATLAS_DB_URL reach a real server through both engines."""

from __future__ import annotations

from sqlalchemy import text

from noctis.db import make_engine, sync_session
from noctis.settings import Settings, load_settings

QUERY = (
    "connect_timeout=3&application_name=etl"
    "&options=-c%20work_mem%3D7MB%20-c%20search_path%3Dpublic,%5C%20topology"
)


def _with_query(settings: Settings) -> Settings:
    url = settings.atlas_libpq_url.render_as_string(hide_password=False)
    return load_settings(_env_file=None, atlas_db_url=f"{url}?{QUERY}", noctis_augur_api_url="")


async def test_the_async_engine_takes_them(atlas_settings: Settings) -> None:
    engine = make_engine(_with_query(atlas_settings))
    try:
        async with engine.connect() as conn:
            name = (await conn.execute(text("SHOW application_name"))).scalar_one()
            memory = (await conn.execute(text("SHOW work_mem"))).scalar_one()
            path = (await conn.execute(text("SHOW search_path"))).scalar_one()
    finally:
        await engine.dispose()
    assert (name, memory, path) == ("etl", "7MB", "public, topology")


def test_the_sync_engine_takes_them(atlas_settings: Settings) -> None:
    with sync_session(_with_query(atlas_settings)) as session:
        assert session.execute(text("SHOW work_mem")).scalar_one() == "7MB"
        assert session.execute(text("SHOW search_path")).scalar_one() == "public, topology"
