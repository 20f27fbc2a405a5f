"""Run the Alembic migrations from code (``noctis db upgrade``, tests, the demo)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL

from noctis.errors import NoctisError
from noctis.settings import Settings


def find_alembic_ini() -> Path:
    """``$NOCTIS_ALEMBIC_INI``, else ``./alembic.ini``, else the one beside the source tree."""
    candidates = [
        Path(os.environ["NOCTIS_ALEMBIC_INI"]) if "NOCTIS_ALEMBIC_INI" in os.environ else None,
        Path.cwd() / "alembic.ini",
        Path(__file__).resolve().parents[2] / "alembic.ini",
    ]
    for path in candidates:
        if path is not None and path.is_file():
            return path
    raise NoctisError(
        "alembic.ini not found: run from the Noctis checkout or set NOCTIS_ALEMBIC_INI"
    )


def alembic_config(url: URL) -> Config:
    config = Config(str(find_alembic_ini()))
    config.attributes["url"] = url
    config.attributes["skip_logging_config"] = True
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings.atlas_url), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings.atlas_url), revision)
