"""Run the Alembic migrations from code (``noctis db upgrade``, tests, the demo).

The migrations travel with the package: a wheel carries ``alembic.ini`` and ``migrations/``
as ``noctis/_alembic/`` (pyproject's ``force-include``), and a source checkout uses the
top-level ones. ``NOCTIS_ALEMBIC_INI`` points at another ``alembic.ini`` when set.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError

from noctis.db import translate
from noctis.errors import ConfigurationError, NoctisError
from noctis.settings import Settings

_PACKAGED_INI = Path(__file__).resolve().parent / "_alembic" / "alembic.ini"
_SOURCE_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def find_alembic_ini() -> Path:
    """``$NOCTIS_ALEMBIC_INI``, else the one inside the installed package, else the checkout's."""
    if configured := os.environ.get("NOCTIS_ALEMBIC_INI"):
        path = Path(configured)
        if not path.is_file():
            raise ConfigurationError(f"NOCTIS_ALEMBIC_INI names no file: {path}")
        return path
    for path in (_PACKAGED_INI, _SOURCE_INI):
        if path.is_file():
            return path
    raise ConfigurationError(
        "Noctis' migrations are missing: this installation has no alembic.ini; reinstall the "
        "noctis wheel or set NOCTIS_ALEMBIC_INI"
    )


def alembic_config(settings: Settings) -> Config:
    config = Config(str(find_alembic_ini()))
    config.attributes["settings"] = settings
    config.attributes["skip_logging_config"] = True
    return config


def _run(
    step: Callable[[Config, str], object], settings: Settings, revision: str, *, doing: str
) -> None:
    try:
        step(alembic_config(settings), revision)
    except NoctisError:
        raise
    except CommandError as e:  # an unknown revision, a broken history
        raise ConfigurationError(f"Alembic refused {doing}: {e}") from e
    except (DBAPIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise translate(e, doing=doing) from e


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Migrate Atlas to ``revision``; driver errors become :class:`~noctis.errors.DatabaseError`."""
    _run(command.upgrade, settings, revision, doing=f"migrating Atlas to {revision}")


def downgrade(settings: Settings, revision: str) -> None:
    _run(command.downgrade, settings, revision, doing=f"downgrading Atlas to {revision}")
