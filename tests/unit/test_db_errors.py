"""Driver errors translated at the database edge: which are transient (and so retried by the
tasks, through :func:`noctis.errors.is_retryable`), and what their messages say."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from noctis.db import translate
from noctis.errors import (
    AugurRejected,
    AugurUnavailable,
    DatabaseError,
    DatabaseUnavailable,
    InvalidFinder,
    is_retryable,
)


class _Orig(Exception):
    """What SQLAlchemy's asyncpg adapter wraps: the driver's error is its ``__cause__``."""


def _wrapped(cause: BaseException, *, invalidated: bool = False) -> DBAPIError:
    orig = _Orig(str(cause))
    orig.__cause__ = cause
    return DBAPIError("SELECT 1", {}, orig, connection_invalidated=invalidated)


def _pg(cls: type[asyncpg.PostgresError], message: str) -> asyncpg.PostgresError:
    return cls(message)


TRANSIENT = [
    pytest.param(
        _pg(
            asyncpg.ConnectionDoesNotExistError, "connection was closed in the middle of operation"
        ),
        id="connection-does-not-exist",
    ),
    pytest.param(
        _wrapped(_pg(asyncpg.ConnectionDoesNotExistError, "closed"), invalidated=True),
        id="sqlalchemy-invalidated",
    ),
    pytest.param(_wrapped(_pg(asyncpg.AdminShutdownError, "terminating connection")), id="57P01"),
    pytest.param(_wrapped(_pg(asyncpg.SerializationError, "could not serialize")), id="40001"),
    pytest.param(_wrapped(_pg(asyncpg.DeadlockDetectedError, "deadlock detected")), id="40P01"),
    pytest.param(_wrapped(_pg(asyncpg.TooManyConnectionsError, "too many")), id="53300"),
    pytest.param(_wrapped(_pg(asyncpg.CannotConnectNowError, "starting up")), id="57P03"),
    pytest.param(ConnectionRefusedError(111, "Connect call failed"), id="refused"),
    pytest.param(TimeoutError(), id="connect-timeout"),
    pytest.param(PoolTimeout("QueuePool limit of size 2 overflow 5 reached"), id="pool-timeout"),
]

NOT_TRANSIENT = [
    pytest.param(
        _wrapped(_pg(asyncpg.QueryCanceledError, "canceling statement due to statement timeout")),
        id="statement-timeout",
    ),
    pytest.param(
        _wrapped(_pg(asyncpg.InsufficientPrivilegeError, "permission denied")), id="privilege"
    ),
    pytest.param(
        _wrapped(_pg(asyncpg.InvalidCatalogNameError, 'database "x" does not exist')),
        id="no-database",
    ),
    pytest.param(_wrapped(_pg(asyncpg.UniqueViolationError, "duplicate key")), id="unique"),
    pytest.param(
        _wrapped(_pg(asyncpg.InternalServerError, "GEOS Error: TopologyException")), id="XX000"
    ),
    pytest.param(DatabaseError("already translated"), id="translated"),
]


@pytest.mark.parametrize("error", TRANSIENT)
def test_transient_errors_become_retryable_database_unavailable(error: BaseException) -> None:
    translated = translate(error, doing="linking")
    assert isinstance(translated, DatabaseUnavailable)
    assert is_retryable(translated)


@pytest.mark.parametrize("error", NOT_TRANSIENT)
def test_other_errors_become_a_database_error_that_is_not_retried(error: BaseException) -> None:
    translated = translate(error, doing="linking")
    assert isinstance(translated, DatabaseError)
    assert not is_retryable(translated)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            _wrapped(
                _pg(asyncpg.QueryCanceledError, "canceling statement due to statement timeout")
            ),
            "Atlas database error while linking: QueryCanceledError: canceling statement due to"
            " statement timeout"
            " (the statement ran longer than ATLAS_DB_STATEMENT_TIMEOUT_MS allows)",
        ),
        (
            TimeoutError(),
            "Atlas database unavailable while linking: TimeoutError: no answer in time "
            "(connecting is limited by ATLAS_DB_CONNECT_TIMEOUT)",
        ),
        (
            _wrapped(_pg(asyncpg.ConnectionDoesNotExistError, "connection was closed")),
            "Atlas database unavailable while linking: ConnectionDoesNotExistError: "
            "connection was closed",
        ),
    ],
    ids=["statement-timeout", "connect-timeout", "lost-connection"],
)
def test_messages_name_atlas_the_operation_and_the_reason(
    error: BaseException, message: str
) -> None:
    assert str(translate(error, doing="linking")) == message


def test_only_noctis_errors_that_say_so_are_retried() -> None:
    assert is_retryable(DatabaseUnavailable("lost"))
    assert is_retryable(AugurUnavailable("down"))
    assert not is_retryable(AugurRejected(400, "bad"))
    assert not is_retryable(InvalidFinder(7, "has an empty location"))
    assert not is_retryable(ConnectionRefusedError(111, "untranslated driver errors are bugs"))
    assert not is_retryable(RuntimeError("anything else"))


def test_translate_keeps_a_noctis_error_as_it_is() -> None:
    error = DatabaseUnavailable("already translated")
    assert translate(error, doing="linking") is error
