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

Every value is checked when the settings are read, so a bad configuration fails at start-up
with one :class:`~noctis.errors.ConfigurationError` naming each variable and what is wrong,
never its value:

- secrets (``ATLAS_DB_PASSWORD``, the password of ``ATLAS_DB_URL``,
  ``NOCTIS_AUGUR_API_TOKEN``) lose surrounding whitespace (a secret read from a file ends in a
  newline) and are refused if they still hold a control character; the token must also be
  printable ASCII without spaces, as a bearer token is (RFC 6750);
- ``ATLAS_DB_URL`` must be a PostgreSQL URL with a port in 1..65535; its libpq TLS parameters
  (``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``) work as libpq users expect
  (:mod:`noctis.db` builds the TLS context), as do ``ATLAS_DB_SSLMODE`` and friends;
- ``NOCTIS_AUGUR_API_URL`` must be an http(s) URL without credentials, and
  ``NOCTIS_AUGUR_NOTIFY_PATH`` may only use the ``{dream_pk}`` and ``{imagery_finder_pk}``
  placeholders;
- the outbox's periods are finite and positive (``NOCTIS_OUTBOX_DISPATCH_SECONDS`` within a
  day, ``NOCTIS_OUTBOX_GIVE_UP_HOURS`` and ``NOCTIS_RETENTION_HOURS`` within 100,000 hours);
- the standing studies' grace is finite, 0 .. 36,500 days (``NOCTIS_STANDING_GRACE_DAYS``), the
  matcher's batch 1 .. 100,000 scenes (``NOCTIS_STANDING_BATCH``), its schedule within a day.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from string import Formatter
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from noctis.errors import ConfigurationError

ASYNC_DRIVER = "postgresql+asyncpg"
SYNC_DRIVER = "postgresql+psycopg"
DEFAULT_NOTIFY_PATH = "/api/v1/dreams/{dream_pk}/divinations/continue"
NOTIFY_PATH_PLACEHOLDERS = frozenset({"dream_pk", "imagery_finder_pk"})
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TLS_PARAMS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
_LIBPQ_ONLY = ("connect_timeout", "application_name", "options")
"""libpq parameters of ``ATLAS_DB_URL`` that asyncpg does not take as such: the async engine
gets them as its connect timeout and server settings (:attr:`Settings.atlas_connection`)."""
_URL_PARAMS = (*_TLS_PARAMS, *_LIBPQ_ONLY, "password", "target_session_attrs")
DEFAULT_STANDING_GRACE_DAYS = 30.0


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """libpq's TLS parameters for Atlas (``sslmode`` and the files it may need)."""

    mode: str | None = None
    root_cert: str | None = None
    cert: str | None = None
    key: str | None = None


class Settings(BaseSettings):
    """Every knob Noctis reads. Field names are the environment variables, lower-cased."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,  # a refused value may be a secret: never echo it
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
    atlas_db_connect_timeout: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    atlas_db_statement_timeout_ms: int = Field(
        default=300_000, ge=0, description="A runaway statement fails after this (0 = never)."
    )
    atlas_db_sslmode: str | None = Field(default=None, description="libpq sslmode; see SSL_MODES.")
    atlas_db_sslrootcert: str | None = None
    atlas_db_sslcert: str | None = None
    atlas_db_sslkey: str | None = None

    # Augur: the platform API notified when a study's imagery is recorded.
    noctis_augur_api_url: str = Field(
        default="", description="Empty: notifications are skipped with one warning."
    )
    noctis_augur_notify_path: str = DEFAULT_NOTIFY_PATH
    noctis_augur_api_token: SecretStr | None = None
    noctis_augur_connect_timeout: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    noctis_augur_timeout: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    noctis_augur_max_attempts: int = Field(default=5, ge=1)
    noctis_augur_max_retry_seconds: float = Field(default=120.0, gt=0, allow_inf_nan=False)
    noctis_augur_backoff_base: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    noctis_augur_backoff_max: float = Field(default=30.0, ge=0, allow_inf_nan=False)

    # How large an AOI Noctis takes (noctis.finders.AoiLimits: why these numbers).
    noctis_max_aoi_points: int = Field(default=5_000, ge=1)
    noctis_max_aoi_vertices: int = Field(default=1_000_000, ge=4)

    # Prefect: where `noctis deploy` registers the deployment.
    noctis_work_pool: str = "noctis-pool"
    noctis_link_concurrency_limit: int = Field(
        default=8, ge=1, description="Global limit on concurrent link steps (Atlas connections)."
    )

    # The notification outbox (noctis.outbox): the dispatcher, the retry budget, retention.
    noctis_outbox_dispatch_seconds: int = Field(
        default=60, ge=1, le=86_400, description="The dispatcher deployment's schedule."
    )
    noctis_outbox_give_up_hours: float = Field(
        default=24.0, gt=0, le=100_000, allow_inf_nan=False,
        description="A notification Augur has not taken this long after it was written is dead.",
    )  # fmt: skip
    noctis_retention_hours: float = Field(
        default=168.0, gt=0, le=100_000, allow_inf_nan=False,
        description="Delivered outbox rows, and Prefect's local results of failed runs on a "
        "worker, are deleted once this old.",
    )  # fmt: skip

    # Standing studies (noctis.standing): how long a closed window stands, the matcher's batch.
    noctis_standing_grace_days: float = Field(
        default=DEFAULT_STANDING_GRACE_DAYS, ge=0, le=36_500, allow_inf_nan=False,
        description="A study whose window has ended stands this many days more, for late ingest.",
    )  # fmt: skip
    noctis_standing_batch: int = Field(
        default=2_000, ge=1, le=100_000, description="Scenes the standing matcher takes at once."
    )
    noctis_standing_match_seconds: int = Field(
        default=60, ge=1, le=86_400, description="The standing-match deployment's schedule."
    )

    @field_validator(
        "atlas_db_url",
        "noctis_augur_api_token",
        "atlas_db_sslmode",
        "atlas_db_sslrootcert",
        "atlas_db_sslcert",
        "atlas_db_sslkey",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("atlas_db_password", "atlas_db_url", mode="after")
    @classmethod
    def _clean_secret(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else SecretStr(_clean(value.get_secret_value()))

    @field_validator("noctis_augur_api_token", mode="after")
    @classmethod
    def _clean_token(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else SecretStr(check_bearer_token(value.get_secret_value()))

    @field_validator("atlas_db_sslmode", mode="after")
    @classmethod
    def _known_sslmode(cls, value: str | None) -> str | None:
        if value is not None and value.strip() not in SSL_MODES:
            raise ValueError(f"must be one of {', '.join(SSL_MODES)}")
        return None if value is None else value.strip()

    @field_validator("noctis_augur_api_url")
    @classmethod
    def _augur_url(cls, value: str) -> str:
        url = value.strip().rstrip("/")
        if not url:
            return url
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) URL, e.g. https://augur.internal")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("must hold no credentials, query or fragment (use the token)")
        return url

    @field_validator("noctis_augur_notify_path")
    @classmethod
    def _notify_path(cls, value: str) -> str:
        return check_notify_path(value)

    @model_validator(mode="after")
    def _atlas_url_parses(self) -> Settings:
        self._atlas_base_url()
        return self

    def _atlas_base_url(self) -> URL:
        """The Atlas URL as configured (driver left as given); raises ValueError if unusable."""
        if self.atlas_db_url is None:
            return URL.create(
                "postgresql",
                username=self.atlas_db_user,
                password=self.atlas_db_password.get_secret_value(),
                host=self.atlas_db_host,
                port=self.atlas_db_port,
                database=self.atlas_db_name,
            )
        try:
            url = make_url(self.atlas_db_url.get_secret_value())
        except Exception:  # SQLAlchemy's errors may quote the URL, password and all: not chained
            raise ValueError(
                "ATLAS_DB_URL is not a URL such as postgresql://user:password@host:5432/name"
            ) from None
        if url.get_backend_name() not in {"postgresql", "postgres"}:
            raise ValueError(f"ATLAS_DB_URL must be a PostgreSQL URL, not {url.get_backend_name()}")
        if url.port is not None and not 0 < url.port < 65536:
            raise ValueError(f"ATLAS_DB_URL has port {url.port}: it must be within 1..65535")
        password = url.query.get("password")
        if password is not None:  # libpq's other spelling: kept where it is hidden and redacted
            if url.password is not None and str(url.password) != str(password):
                raise ValueError("ATLAS_DB_URL gives two different passwords: keep one")
            url = url.difference_update_query(["password"]).set(password=str(password))
        if url.password is not None and _has_control(str(url.password)):
            raise ValueError("ATLAS_DB_URL has a control character in its password")
        mode = url.query.get("sslmode")
        if mode is not None and mode not in SSL_MODES:
            raise ValueError(f"ATLAS_DB_URL has sslmode={mode}: use one of {', '.join(SSL_MODES)}")
        unknown = sorted(set(url.query) - set(_URL_PARAMS))
        if unknown:
            raise ValueError(
                f"ATLAS_DB_URL has the parameter(s) {', '.join(unknown)}, which Noctis does not "
                f"pass on: it takes {', '.join(_URL_PARAMS)}"
            )
        timeout = url.query.get("connect_timeout")
        if timeout is not None and not re.fullmatch("[0-9]{1,9}", str(timeout)):
            raise ValueError(f"ATLAS_DB_URL has connect_timeout={timeout}: a number of seconds")
        if isinstance(timeout, str) and not int(timeout):
            raise ValueError("ATLAS_DB_URL has connect_timeout=0 (libpq: forever): use seconds")
        options = url.query.get("options")
        if options is not None:
            _options(str(options))
        return url

    @property
    def atlas_url(self) -> URL:
        """The Atlas URL for the async engine (``postgresql+asyncpg``), without libpq's TLS
        parameters (asyncpg takes them as an ``ssl`` argument: see :attr:`atlas_tls`)."""
        url = self._atlas_base_url()
        return url.set(drivername=ASYNC_DRIVER).difference_update_query(
            (*_TLS_PARAMS, *_LIBPQ_ONLY)
        )

    @property
    def atlas_connection(self) -> tuple[float, dict[str, str]]:
        """The async engine's connect timeout and server settings from ``ATLAS_DB_URL``'s libpq
        parameters (``connect_timeout``, ``application_name``, ``options='-c name=value'``);
        the timeout is ``ATLAS_DB_CONNECT_TIMEOUT`` unless the URL sets one."""
        query = self._atlas_base_url().query if self.atlas_db_url is not None else {}
        timeout = query.get("connect_timeout")
        seconds = float(str(timeout)) if timeout else self.atlas_db_connect_timeout
        server: dict[str, str] = {}
        name = query.get("application_name")
        if isinstance(name, str):
            server["application_name"] = name
        options = query.get("options")
        if isinstance(options, str):
            server.update(_options(options))
        return seconds, server

    @property
    def atlas_libpq_url(self) -> URL:
        """The Atlas URL for libpq and libpq-compatible clients (psql, psycopg, connectorx,
        ``asyncpg.connect(dsn)``): driver ``postgresql``, TLS parameters included."""
        url = self._atlas_base_url().set(drivername="postgresql")
        tls = {
            "sslmode": self.atlas_tls.mode,
            "sslrootcert": self.atlas_tls.root_cert,
            "sslcert": self.atlas_tls.cert,
            "sslkey": self.atlas_tls.key,
        }
        return url.update_query_dict({k: v for k, v in tls.items() if v is not None})

    @property
    def atlas_sync_url(self) -> URL:
        """The same database for synchronous use (notebooks, scripts): ``postgresql+psycopg``."""
        return self.atlas_libpq_url.set(drivername=SYNC_DRIVER)

    @property
    def atlas_tls(self) -> TlsSettings:
        """TLS for Atlas: ``ATLAS_DB_URL``'s libpq parameters, else ``ATLAS_DB_SSL*``."""
        query = self._atlas_base_url().query if self.atlas_db_url is not None else {}

        def pick(name: str, fallback: str | None) -> str | None:
            value = query.get(name)
            return value if isinstance(value, str) else fallback

        return TlsSettings(
            mode=pick("sslmode", self.atlas_db_sslmode),
            root_cert=pick("sslrootcert", self.atlas_db_sslrootcert),
            cert=pick("sslcert", self.atlas_db_sslcert),
            key=pick("sslkey", self.atlas_db_sslkey),
        )

    @property
    def augur_enabled(self) -> bool:
        return bool(self.noctis_augur_api_url)

    @property
    def outbox_give_up_after(self) -> timedelta:
        return timedelta(hours=self.noctis_outbox_give_up_hours)

    @property
    def retention(self) -> timedelta:
        return timedelta(hours=self.noctis_retention_hours)

    @property
    def standing_grace(self) -> timedelta:
        return timedelta(days=self.noctis_standing_grace_days)

    def secrets(self) -> list[str]:
        """Every secret value, for :func:`noctis.redaction.redact`."""
        found = [self.atlas_db_password.get_secret_value()]
        if self.noctis_augur_api_token is not None:
            found.append(self.noctis_augur_api_token.get_secret_value())
        if self.atlas_db_url is not None:
            password = self._atlas_base_url().password
            found.append(str(password) if password is not None else "")
        return [s for s in found if s]


_OWN_SETTINGS = ("statement_timeout", "jit")
"""Server settings Noctis sets itself (``ATLAS_DB_STATEMENT_TIMEOUT_MS``; JIT off, and no
timeout for migrations): not taken from ``options``."""


def _options(text: str) -> dict[str, str]:
    r"""libpq's ``options`` (``-c name=value`` or ``-cname=value``, separated by spaces; ``\``
    escapes a space or a backslash) as server settings; raises ValueError for anything else."""
    words = [re.sub(r"\\(.)", r"\1", w) for w in re.findall(r"(?:\\.|\S)+", text)]
    found: dict[str, str] = {}
    while words:
        word = words.pop(0)
        if word == "-c" and words:
            word = "-c" + words.pop(0)
        name, sep, value = word[2:].partition("=")
        if not word.startswith("-c") or not sep or not name:
            raise ValueError(
                f"ATLAS_DB_URL has options={text!r}: Noctis takes only '-c name=value' settings"
            )
        if name in _OWN_SETTINGS:
            raise ValueError(
                f"ATLAS_DB_URL sets {name} in options: Noctis sets it itself"
                " (ATLAS_DB_STATEMENT_TIMEOUT_MS; JIT is off)"
            )
        found[name] = value
    return found


def check_notify_path(path: str) -> str:
    """``path`` if it uses only ``{dream_pk}`` and ``{imagery_finder_pk}``, as they are (no
    attribute, index, conversion or format spec); ValueError otherwise."""
    allowed = " and ".join(f"{{{name}}}" for name in sorted(NOTIFY_PATH_PLACEHOLDERS))
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in Formatter().parse(path)]
    except ValueError as e:
        raise ValueError(f"is not a valid path template ({e}); it may use {allowed}") from e
    for name, spec, conversion in fields:
        if name is not None and (name not in NOTIFY_PATH_PLACEHOLDERS or spec or conversion):
            raise ValueError(f"may only use the placeholders {allowed}, as they are")
    return path


def check_bearer_token(token: str) -> str:
    """``token`` without surrounding whitespace; ValueError unless it is printable ASCII with
    no space inside, as a bearer token is (RFC 6750) and as an HTTP header can carry it."""
    cleaned = _clean(token)
    if not cleaned.isascii() or " " in cleaned:
        raise ValueError("must be printable ASCII without spaces, as a bearer token is")
    return cleaned


def _has_control(text: str) -> bool:
    return any(not ch.isprintable() for ch in text)


def _clean(secret: str) -> str:
    """A secret without surrounding whitespace; ValueError if a control character remains."""
    cleaned = secret.strip()
    if _has_control(cleaned):
        raise ValueError("holds a control character (a line break inside?)")
    return cleaned


def load_settings(**values: object) -> Settings:
    """``Settings(**values)``, with every refused value reported as one
    :class:`ConfigurationError` naming the variables (never their values)."""
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as e:
        raise ConfigurationError(_describe(e)) from None


class _GivenOnly(Settings):
    """Settings from the values given and the defaults: no environment variable, no ``.env``."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def given_settings(**values: object) -> Settings:
    """:func:`load_settings` from ``values`` and the defaults alone, whatever the environment
    holds (``noctis demo``: its throwaway database, not the shell's Atlas or TLS settings)."""
    try:
        return _GivenOnly(**values)  # type: ignore[arg-type]
    except ValidationError as e:
        raise ConfigurationError(_describe(e)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        name = "_".join(str(part) for part in item["loc"]).upper()
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{name} {message}" if name else message)
    return "Configuration refused: " + "; ".join(problems)


_override: ContextVar[Settings | None] = ContextVar("noctis_settings", default=None)


@lru_cache(maxsize=1)
def _from_environment() -> Settings:
    return load_settings()


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
