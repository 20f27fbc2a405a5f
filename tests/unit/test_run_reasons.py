"""A run here shows a Noctis error's reason without Prefect's traceback on the console
(noctis.flows.reasons), and changes nothing for any other handler."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from noctis.errors import DatabaseError, DatabaseUnavailable, FinderNotFound
from noctis.flows.reasons import RUN_LOGGERS, reasons_only


def _record(logger: str, error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(logger, logging.ERROR, __file__, 1, "failed: %r", (error,), exc_info)


@pytest.fixture
def console() -> Iterator[tuple[logging.StreamHandler[io.StringIO], io.StringIO]]:
    """A stream handler on the root logger, as Prefect's console handler is."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler, stream
    finally:
        root.removeHandler(handler)


def _shown(
    console: tuple[logging.StreamHandler[io.StringIO], io.StringIO], record: logging.LogRecord
) -> str:
    handler, stream = console
    stream.seek(0)
    stream.truncate()
    handler.handle(record)
    return stream.getvalue()


@pytest.mark.parametrize("name", RUN_LOGGERS)
@pytest.mark.parametrize("error", [FinderNotFound(9999), DatabaseUnavailable("connection lost")])
def test_a_noctis_error_shows_its_reason_without_its_traceback(
    console: tuple[logging.StreamHandler[io.StringIO], io.StringIO],
    name: str,
    error: Exception,
) -> None:
    record = _record(name, error)
    with reasons_only():
        text = _shown(console, record)
    assert text.startswith("ERROR failed: ") and str(error) in text
    assert "Traceback" not in text
    # The record itself is untouched: the API handler (the server's logs) keeps the traceback.
    assert record.exc_info is not None and record.exc_info[1] is error
    assert "Traceback" in logging.Formatter().format(record)
    # Outside a run here, the console shows it again.
    assert "Traceback" in _shown(console, _record(name, error))


@pytest.mark.parametrize(
    "error", [ValueError("a bug"), DatabaseError("loading ImageryFinder 7: syntax error at ...")]
)
def test_other_errors_keep_their_traceback(
    console: tuple[logging.StreamHandler[io.StringIO], io.StringIO], error: Exception
) -> None:
    # A database error that is not transient may be a bug in a statement: where, is in the
    # traceback.
    with reasons_only():
        text = _shown(console, _record(RUN_LOGGERS[0], error))
    assert "Traceback" in text and str(error) in text


def test_other_loggers_and_debug_keep_the_traceback(
    console: tuple[logging.StreamHandler[io.StringIO], io.StringIO],
) -> None:
    with reasons_only():
        assert "Traceback" in _shown(console, _record("noctis.outbox", FinderNotFound(1)))
    logger = logging.getLogger(RUN_LOGGERS[1])
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with reasons_only():
            assert "Traceback" in _shown(console, _record(RUN_LOGGERS[1], FinderNotFound(1)))
    finally:
        logger.setLevel(level)


def test_the_console_formatter_is_restored(
    console: tuple[logging.StreamHandler[io.StringIO], io.StringIO],
) -> None:
    handler, _ = console
    before = handler.formatter
    with reasons_only():
        assert handler.formatter is not before
    assert handler.formatter is before
