"""Alembic environment: metadata from the models, URL from Noctis' settings.

A caller may hand over a connection or an engine in
``config.attributes["connection"]`` (pytest-alembic does) or the Settings in
``config.attributes["settings"]`` (``noctis db upgrade`` does); otherwise the async
engine is built from ``ATLAS_DB_*`` / ``ATLAS_DB_URL``, TLS parameters included.
geoalchemy2's alembic helpers keep autogenerate from creating spatial indexes twice.
"""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy.engine import Connection, Engine

from noctis.db import make_engine
from noctis.models import Base
from noctis.settings import Settings, get_settings

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging_config"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        include_object=alembic_helpers.include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _settings() -> Settings:
    settings: Settings | None = config.attributes.get("settings")
    return settings or get_settings()


def run_migrations_offline() -> None:
    _configure(
        url=_settings().atlas_url.render_as_string(hide_password=False),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = make_engine(_settings(), for_migrations=True)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        asyncio.run(_run_async())
    elif isinstance(connectable, Engine):  # pytest-alembic hands over an engine
        with connectable.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
