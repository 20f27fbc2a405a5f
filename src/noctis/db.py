"""Engines, sessions and the translation of driver errors at the database edge.

Nothing connects at import time. Every factory takes the :class:`Settings` to
use, so tests, notebooks and flows each pass their own.
"""

from __future__ import annotations

import contextlib
import math
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import asyncpg
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from noctis.errors import ConfigurationError, DatabaseError, DatabaseUnavailable, NoctisError
from noctis.settings import Settings, TlsSettings

APPLICATION_NAME = "noctis"

# SQLSTATEs after which the same work may succeed: connection exceptions
# (class 08), serialization failure, deadlock, too many connections, admin or
# crash shutdown, cannot-connect-now.
TRANSIENT_SQLSTATES = frozenset(
    {"40001", "40P01", "53300", "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001"}
)


SESSION_SETTINGS: Final = {"jit": "off"}
"""Set on every connection Noctis opens. JIT compiles the glue around PostGIS' C functions,
which it cannot speed up, on every execution, once a statement's estimated cost passes
``jit_above_cost`` (benchmarks/RESULTS.md, finding 4). PostGIS prices its functions high, so
a study's summary reads outside the match rule's transactions were compiled too: on a flow
run's new connection, at 18,469 items, 353 ms with JIT and 213 ms without (the suspect count,
one ``ST_IsValid`` per item, 112 ms of it compilation)."""


def make_engine(
    settings: Settings, *, pool_size: int | None = None, for_migrations: bool = False
) -> AsyncEngine:
    """An asyncpg engine for Atlas, with Noctis' session settings.

    ``statement_timeout`` stops a runaway query instead of hanging a worker (not for
    migrations: an index build on a large archive may rightly take longer).
    ``pool_pre_ping`` replaces connections that died while idle in the pool. TLS follows
    libpq's parameters (:func:`ssl_argument`). JIT is off for every statement
    (:data:`SESSION_SETTINGS`).
    """
    timeout, from_url = settings.atlas_connection
    server_settings = {"application_name": APPLICATION_NAME, **from_url, **SESSION_SETTINGS}
    if settings.atlas_db_statement_timeout_ms and not for_migrations:
        server_settings["statement_timeout"] = str(settings.atlas_db_statement_timeout_ms)
    connect_args: dict[str, object] = {"server_settings": server_settings, "timeout": timeout}
    tls = ssl_argument(settings.atlas_tls)
    if tls is not None:
        connect_args["ssl"] = tls
    if for_migrations:
        return create_async_engine(
            settings.atlas_url, poolclass=NullPool, connect_args=connect_args
        )
    return create_async_engine(
        settings.atlas_url,
        pool_size=pool_size or settings.atlas_db_pool_size,
        max_overflow=settings.atlas_db_max_overflow,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


DEFAULT_ROOT_CERT = Path("~/.postgresql/root.crt")
"""Where libpq looks for the root certificate when ``sslrootcert`` is not set."""


def ssl_argument(tls: TlsSettings) -> ssl.SSLContext | bool | str | None:
    """asyncpg's ``ssl`` argument for libpq's ``sslmode`` and files, with libpq's meaning:

    ``disable`` no TLS; ``allow`` / ``prefer`` TLS when the server offers it; ``require``
    encrypted without checking the certificate (unless a root certificate is given or present
    at ``~/.postgresql/root.crt``: then as ``verify-ca``); ``verify-ca`` the certificate must
    chain to the root certificate; ``verify-full`` and its host name must match too.
    """
    mode = tls.mode
    if mode is None:
        return None
    if mode == "disable":
        return False
    if mode in {"allow", "prefer"}:
        return mode
    root = _readable(tls.root_cert, "sslrootcert") if tls.root_cert else None
    if root is None and DEFAULT_ROOT_CERT.expanduser().is_file():
        root = DEFAULT_ROOT_CERT.expanduser()
    if root is None and mode in {"verify-ca", "verify-full"}:
        raise ConfigurationError(
            f"sslmode={mode} needs the server's root certificate: set sslrootcert in "
            "ATLAS_DB_URL or ATLAS_DB_SSLROOTCERT (libpq's default, ~/.postgresql/root.crt, "
            "is missing)"
        )
    context = ssl.create_default_context(cafile=str(root) if root else None)
    context.check_hostname = mode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED if root is not None else ssl.CERT_NONE
    if tls.cert:
        key = _readable(tls.key, "sslkey") if tls.key else None
        context.load_cert_chain(_readable(tls.cert, "sslcert"), key)
    return context


def _readable(path: str, name: str) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigurationError(
            f"{name} (ATLAS_DB_URL or ATLAS_DB_{name.upper()}) names no readable file: {file}"
        )
    return file


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def make_sync_engine(settings: Settings) -> Engine:
    """A psycopg (synchronous) engine for notebooks and scripts that do not use asyncio.

    libpq itself reads the TLS parameters (``sslmode`` ...) from the URL; the connection's
    settings are the async engine's (:func:`make_engine`).
    """
    seconds, from_url = settings.atlas_connection
    server = {"application_name": APPLICATION_NAME, **from_url, **SESSION_SETTINGS}
    if settings.atlas_db_statement_timeout_ms:
        server["statement_timeout"] = str(settings.atlas_db_statement_timeout_ms)
    name = server.pop("application_name")
    return create_engine(
        settings.atlas_sync_url,
        pool_pre_ping=True,
        connect_args={
            "application_name": name,
            "connect_timeout": max(1, math.ceil(seconds)),  # libpq reads 0 as "wait forever"
            "options": " ".join(f"-c {key}={_escaped(value)}" for key, value in server.items()),
        },
    )


def _escaped(value: str) -> str:
    """A value in libpq's ``options``: a backslash escapes a space or a backslash."""
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


@contextlib.contextmanager
def sync_session(settings: Settings) -> Iterator[Session]:
    """A synchronous session that rolls back on exit: ``with sync_session(s) as session: ...``."""
    engine = make_sync_engine(settings)
    try:
        with sessionmaker(engine)() as session, session.begin():
            yield session
            session.rollback()
    finally:
        engine.dispose()


def libpq_dsn(url: URL) -> str:
    """``url`` as a libpq connection string (psycopg, asyncpg, psql), password included.

    For handing to a driver only: never log or print what this returns.
    """
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


FOREIGN_KEY_VIOLATION = "23503"


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver error (its asyncpg cause's), or None."""
    cause: BaseException | None = error
    if isinstance(error, DBAPIError) and error.orig is not None:
        cause = error.orig.__cause__ or error.orig
    code = getattr(cause, "sqlstate", None)
    return code if isinstance(code, str) else None


def _is_transient(error: BaseException) -> bool:
    """Whether a driver error is transient (lost connection, deadlock, overload)."""
    if isinstance(error, PoolTimeout):
        return True
    cause: BaseException | None = error
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        if error.orig is not None:
            cause = error.orig.__cause__ or error.orig
    if isinstance(cause, asyncpg.PostgresError):
        return getattr(cause, "sqlstate", None) in TRANSIENT_SQLSTATES
    if isinstance(cause, ssl.SSLCertVerificationError):  # a certificate does not heal itself
        return False
    return isinstance(
        cause,
        ConnectionError | OSError | TimeoutError | asyncpg.InterfaceError | InterfaceError,
    ) or isinstance(error, OperationalError | InterfaceError)


def translate(error: BaseException, *, doing: str) -> NoctisError:
    """The project's error for a driver error: ``raise translate(e, doing=...) from e``.

    The message names the operation and the driver's reason, never the URL.
    """
    if isinstance(error, NoctisError):
        return error
    reason = _reason(error)
    if _is_transient(error):
        return DatabaseUnavailable(f"Atlas database unavailable while {doing}: {reason}")
    return DatabaseError(f"Atlas database error while {doing}: {reason}")


# What to add to a driver's reason that does not say which setting limited it.
_STATEMENT_TIMEOUT_HINT = "the statement ran longer than ATLAS_DB_STATEMENT_TIMEOUT_MS allows"
_CONNECT_TIMEOUT_HINT = "no answer in time (connecting is limited by ATLAS_DB_CONNECT_TIMEOUT)"
_POOL_TIMEOUT_HINT = "every pooled connection was busy (ATLAS_DB_POOL_SIZE + ATLAS_DB_MAX_OVERFLOW)"


def _reason(error: BaseException) -> str:
    cause = error
    if isinstance(error, DBAPIError) and error.orig is not None:
        cause = error.orig.__cause__ or error.orig
    text = str(cause).strip()
    if getattr(cause, "sqlstate", None) == "57014" and "statement timeout" in text:
        text = f"{text} ({_STATEMENT_TIMEOUT_HINT})"
    elif isinstance(cause, TimeoutError) and not text:  # asyncpg's connect timeout says nothing
        text = _CONNECT_TIMEOUT_HINT
    elif isinstance(cause, PoolTimeout):
        text = f"{_POOL_TIMEOUT_HINT}: {text}"
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


@contextlib.asynccontextmanager
async def translated(doing: str) -> AsyncIterator[None]:
    """Translate any driver error raised inside the block (``async with translated("..."):``)."""
    try:
        yield
    except NoctisError:
        raise
    except (DBAPIError, PoolTimeout, asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as e:
        raise translate(e, doing=doing) from e
