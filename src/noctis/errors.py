"""Every error Noctis raises, in one tree.

::

    NoctisError                 base of everything below; never raised itself
    ├── ConfigurationError      a setting Noctis cannot use (names the variable, never its value)
    ├── MissingExtra            an optional dependency is not installed (names the extra to
    │                           install: ``pip install 'noctis[notebook]'``)
    ├── NotFound                an unknown finder or dream (the message names the id)
    │   ├── FinderNotFound
    │   └── DreamNotFound
    ├── InvalidFinder           a finder that cannot be searched: empty, invalid or
    │                           wrongly typed location, an unsplit antimeridian edge,
    │                           inverted dates, empty collections, max_cloud_cover out of range
    ├── PrefectUnavailable      no Prefect API: PREFECT_API_URL unreachable, or the ephemeral
    │                           server did not start in time
    ├── DatabaseError           a driver error translated at the database edge
    │   └── DatabaseUnavailable a transient one (connection lost or refused, too many
    │                           connections, serialization failure, connect or pool
    │                           timeout): safe to retry
    ├── ExportError             ``noctis export`` cannot write: an unwritable output path, or a
    │                           study with no lookup rows (names the study or the path)
    └── AugurError              the notification to Augur did not go through
        ├── AugurUnavailable    timeouts, connection errors, 408/429/5xx, retried until
        │                       the budget ran out
        └── AugurRejected       any other 4xx: not retried; keeps Augur's status and message

Messages say which object, what is wrong and, when it is not obvious, what to do.
No message ever contains a password, a token or a URL with credentials.

``retryable`` says whether the same work may succeed if tried again; :func:`is_retryable` is
the one place that decides it (the flow's task retries ask it). Driver errors are translated
at the database edge (:func:`noctis.db.translated`), so nothing above it sees one.
"""

from __future__ import annotations


class NoctisError(Exception):
    """Base class of every Noctis error."""

    retryable: bool = False


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` is worth retrying: a Noctis error that says so, nothing else."""
    return isinstance(error, NoctisError) and error.retryable


class ConfigurationError(NoctisError):
    """A setting that cannot be used; the message names the variable, never a secret value."""


class NotFound(NoctisError):
    """A finder or dream that does not exist."""

    kind: str = "object"

    def __init__(self, id_: int) -> None:
        self.id = id_
        super().__init__(f"{self.kind} {id_} does not exist")


class FinderNotFound(NotFound):
    kind = "ImageryFinder"


class DreamNotFound(NotFound):
    kind = "Dream"


class InvalidFinder(NoctisError):
    """A finder whose location, dates or filters cannot be searched."""

    def __init__(self, finder_id: int, reason: str) -> None:
        self.finder_id = finder_id
        self.reason = reason
        super().__init__(f"ImageryFinder {finder_id} {reason}")


class PrefectUnavailable(NoctisError):
    """No Prefect API to run a flow on; the message says what to set."""


class MissingExtra(NoctisError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, what: str, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(
            f"{what} needs {module}, which is not installed: "
            f"pip install 'noctis[{extra}]' (or: uv sync --extra {extra})"
        )


class ExportError(NoctisError):
    """A study that could not be exported: nothing to export, or an output Noctis cannot write."""


class DatabaseError(NoctisError):
    """A database failure, translated from the driver's error."""


class DatabaseUnavailable(DatabaseError):
    """A transient database failure: the same work may succeed when retried."""

    retryable = True


class AugurError(NoctisError):
    """The notification to Augur did not go through."""


class AugurUnavailable(AugurError):
    """Augur could not be reached or answered with a transient error, after every retry."""

    retryable = True


class AugurRejected(AugurError):
    """Augur refused the notification (a 4xx other than 408, 409 and 429, or a 1xx/3xx)."""

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        self.augur_message = message
        super().__init__(f"Augur rejected the notification with HTTP {status_code}: {message}")
