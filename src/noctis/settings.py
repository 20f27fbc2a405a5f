"""Configuration: one typed settings object, read from the environment and ``.env``.

Nothing here runs at import time: call :func:`get_settings` (read from the environment
once, then cached) or build ``Settings(...)`` yourself and pass it to the factories that need
it (``make_engine``, ``AugurClient.from_settings``, ...). Code that runs a flow in-process on
settings of its own (the demo, a notebook) wraps the call in :func:`use_settings` instead of
editing ``os.environ``.

Secrets are :class:`~pydantic.SecretStr`: they print as ``**********`` in
reprs, logs and error messages. Database URLs are
:class:`sqlalchemy.engine.URL` objects, which hide their password when
rendered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from functools import lru_cache

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

ASYNC_DRIVER = "postgresql+asyncpg"
SYNC_DRIVER = "postgresql+psycopg"
DEFAULT_NOTIFY_PATH = "/api/v1/dreams/{dream_pk}/divinations/continue"


class Settings(BaseSettings):
    """Every knob Noctis reads. Field names are the environment variables, lower-cased."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # Atlas: the PostGIS database holding the archive and the studies.
    atlas_db_host: str = "atlas-postgres"
    atlas_db_port: int = Field(default=5432, gt=0, lt=65536)
    atlas_db_name: str = "augur"
    atlas_db_user: str = "atlas_user"
    atlas_db_password: SecretStr = SecretStr("atlas_password")
    atlas_db_url: SecretStr | None = Field(
        default=None, description="Overrides ATLAS_DB_HOST/PORT/NAME/USER/PASSWORD when set."
    )
    atlas_db_pool_size: int = Field(default=5, ge=1)
    atlas_db_max_overflow: int = Field(default=5, ge=0)
    atlas_db_connect_timeout: float = Field(default=10.0, gt=0)
    atlas_db_statement_timeout_ms: int = Field(
        default=300_000, ge=0, description="A runaway statement fails after this (0 = never)."
    )

    # Augur: the platform API notified when a study's imagery is recorded.
    noctis_augur_api_url: str = Field(
        default="", description="Empty: notifications are skipped with one warning."
    )
    noctis_augur_notify_path: str = DEFAULT_NOTIFY_PATH
    noctis_augur_api_token: SecretStr | None = None
    noctis_augur_connect_timeout: float = Field(default=5.0, gt=0)
    noctis_augur_timeout: float = Field(default=30.0, gt=0)
    noctis_augur_max_attempts: int = Field(default=5, ge=1)
    noctis_augur_max_retry_seconds: float = Field(default=120.0, gt=0)
    noctis_augur_backoff_base: float = Field(default=0.5, ge=0)
    noctis_augur_backoff_max: float = Field(default=30.0, ge=0)

    # Prefect: where `noctis deploy` registers the deployment.
    noctis_work_pool: str = "noctis-pool"
    noctis_link_concurrency_limit: int = Field(
        default=8, ge=1, description="Global limit on concurrent link steps (Atlas connections)."
    )

    @field_validator("atlas_db_url", "noctis_augur_api_token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("noctis_augur_api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @property
    def atlas_url(self) -> URL:
        """The Atlas URL for the async engine (``postgresql+asyncpg``)."""
        if self.atlas_db_url is not None:
            return _with_driver(make_url(self.atlas_db_url.get_secret_value()), ASYNC_DRIVER)
        return URL.create(
            ASYNC_DRIVER,
            username=self.atlas_db_user,
            password=self.atlas_db_password.get_secret_value(),
            host=self.atlas_db_host,
            port=self.atlas_db_port,
            database=self.atlas_db_name,
        )

    @property
    def atlas_sync_url(self) -> URL:
        """The same database for synchronous use (notebooks, scripts): ``postgresql+psycopg``."""
        return _with_driver(self.atlas_url, SYNC_DRIVER)

    @property
    def augur_enabled(self) -> bool:
        return bool(self.noctis_augur_api_url)


def _with_driver(url: URL, driver: str) -> URL:
    if url.get_backend_name() not in {"postgresql", "postgres"}:
        raise ValueError(f"ATLAS_DB_URL must be a PostgreSQL URL, got a {url.drivername!r} URL")
    return url.set(drivername=driver)


_override: ContextVar[Settings | None] = ContextVar("noctis_settings", default=None)


@lru_cache(maxsize=1)
def _from_environment() -> Settings:
    return Settings()


class _SettingsGetter:
    """``get_settings()``: the settings of :func:`use_settings` if inside one, else the
    process' settings, read from the environment and ``.env`` on the first call (never at
    import). ``get_settings.cache_clear()`` forgets them, so the next call reads again."""

    def __call__(self) -> Settings:
        return _override.get() or _from_environment()

    def cache_clear(self) -> None:
        _from_environment.cache_clear()


get_settings = _SettingsGetter()


@contextlib.contextmanager
def use_settings(settings: Settings) -> Iterator[Settings]:
    """Within the block (and the flows and tasks it runs in this process), ``get_settings()``
    returns ``settings``."""
    token = _override.set(settings)
    try:
        yield settings
    finally:
        _override.reset(token)
