"""A run here says why it failed in one line, not in Prefect's tracebacks.

When a task or a flow raises, Prefect's run loggers log the exception with its traceback
(``Task run failed with exception: ...``, ``Encountered exception during execution: ...``).
For most of Noctis' errors the message is the whole story (``ImageryFinder 7 does not exist``),
and ``noctis run`` prints it once more as its last line; the traceback on the terminal only
hides it. :func:`reasons_only` formats those records without their tracebacks on the console
handlers (the root logger's stream handlers), while a run executes in this process. Nothing
else changes: the record keeps its traceback for every other handler (Prefect's API handler,
so the run's logs on the server keep it); a :class:`~noctis.errors.DatabaseError` that is not
transient (it may be a bug: its traceback says where) and any other exception keep theirs on
the console too; and so does every record with Prefect's logging at DEBUG
(``PREFECT_LOGGING_LEVEL=DEBUG``). Runs a worker executes are untouched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from noctis.errors import DatabaseError, DatabaseUnavailable, NoctisError

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def reason_is_enough(error: BaseException | None) -> bool:
    """Whether ``error``'s message says all a terminal needs: a Noctis error, except a
    database error that is not transient."""
    if not isinstance(error, NoctisError):
        return False
    return not isinstance(error, DatabaseError) or isinstance(error, DatabaseUnavailable)


class ReasonFormatter(logging.Formatter):
    """Formats like ``inner``; a run logger's record of an error whose reason is enough is
    formatted from a copy without its traceback (the record itself is left as it is)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        error = record.exc_info[1] if record.exc_info else None
        if (
            record.name in RUN_LOGGERS
            and reason_is_enough(error)
            and not logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        ):
            record = logging.makeLogRecord(record.__dict__)
            record.exc_info, record.exc_text = None, None
        return self.inner.format(record)


@contextlib.contextmanager
def reasons_only() -> Iterator[None]:
    """While inside, the console shows a Noctis error's reason without its traceback."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    formatters = [h.formatter for h in handlers]
    for handler, formatter in zip(handlers, formatters, strict=True):
        handler.setFormatter(ReasonFormatter(formatter))
    try:
        yield
    finally:
        for handler, formatter in zip(handlers, formatters, strict=True):
            handler.setFormatter(formatter)
