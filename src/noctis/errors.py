"""Every error Noctis raises, in one tree.

::

    NoctisError                 base of everything below; never raised itself
    ├── ConfigurationError      a setting Noctis cannot use (names the variable, never its value)
    ├── MissingExtra            an optional dependency is not installed (names the extra to
    │                           install: ``pip install 'noctis[notebook]'``)
    ├── NotFound                an unknown finder or dream (the message names the id)
    │   ├── FinderNotFound
    │   ├── DreamNotFound
    │   └── StudyNotStanding    a study to close that does not stand: its window ended more
    │       │                   than the grace ago (no standing row)
    │       └── StudyNeverRan   a study to close that has never run (no standing row)
    ├── InvalidFinder           a finder that cannot be searched: empty, invalid or
    │                           wrongly typed location, an unsplit antimeridian edge,
    │                           inverted dates, empty collections, max_cloud_cover out of range
    ├── PrefectUnavailable      no Prefect API: PREFECT_API_URL unreachable, or the ephemeral
    │                           server did not start in time
    ├── DatabaseError           a driver error translated at the database edge; or a
    │   │                       spatial index that ``noctis db check-indexes`` cannot read
    │   └── DatabaseUnavailable a transient one (connection lost or refused, too many
    │                           connections, serialization failure, connect or pool
    │                           timeout): safe to retry
    ├── ExportError             ``noctis export`` cannot write: an unwritable output path, or a
    │                           study with no lookup rows (names the study or the path)
    ├── PlanError               no coverage plan can be made as asked: a point AOI (coverage is
    │   │                       undefined), a target outside (0, 1], an unknown slice, a
    │   │                       preference weight outside [0, 1)
    │   └── PlanOutdated        the study's scenes changed while its plan was made (a standing
    │                           batch removed one it took): plan again
    ├── LoaderError             ``noctis archive load`` cannot read a file: missing, empty, an
    │   │                       unknown suffix, an ItemCollection that is not JSON or not STAC
    │   │                       (names the file and the reason); nothing is written from it
    │   ├── InvalidItems        a file with bad STAC items: each named by its position (file,
    │   │                       line, index or row), its id and the reason; nothing is written
    │   │                       from the file unless the operator skips bad items
    │   └── FileNotLoaded       a database error while writing a file: names the file, then
    │                           the cause (kept as ``cause``, and its ``retryable``)
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


class StudyNotStanding(NotFound):
    """A study (finder x dream) to close that does not stand; the message says why."""

    def __init__(self, finder_id: int, dream_id: int, reason: str) -> None:
        self.id = finder_id
        self.dream_id = dream_id
        self.reason = reason
        NoctisError.__init__(
            self,
            f"ImageryFinder {finder_id} for Dream {dream_id} is not a standing study: {reason}",
        )


class StudyNeverRan(StudyNotStanding):
    """A study (finder x dream) to close that has never run: there is nothing standing."""

    def __init__(self, finder_id: int, dream_id: int) -> None:
        super().__init__(finder_id, dream_id, "it has never run (run it first, or check the ids)")


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


class PlanError(NoctisError):
    """A coverage plan that cannot be made as asked; the message says why and what to use."""


class PlanOutdated(PlanError):
    """A plan whose scenes changed while it was made: a standing batch removed a scene it took
    (the scene's lookup row is gone), so it cannot be stored. Planning again sees the change."""

    def __init__(self, finder_id: int, dream_id: int) -> None:
        self.finder_id = finder_id
        self.dream_id = dream_id
        super().__init__(
            f"ImageryFinder {finder_id} for Dream {dream_id}: its scenes changed while its "
            "coverage plan was made (a standing batch removed a scene the plan took), so the "
            "plan was not stored: run it again (noctis plan --imagery-finder-pk "
            f"{finder_id} --dream-pk {dream_id}, or rerun the study)"
        )


class LoaderError(NoctisError):
    """A STAC file ``noctis archive load`` cannot read; the message names the file and why."""

    loaded: tuple[str, ...] = ()
    """The files of the same command loaded (and committed) before this one failed."""


class InvalidItems(LoaderError):
    """Bad STAC items in a file: ``problems`` holds one line per item (position, id, reason)."""

    SHOWN = 10

    def __init__(self, path: str, problems: list[str], *, count: int, note: str = "") -> None:
        self.path = path
        self.problems = problems
        self.count = count
        lines = problems[: self.SHOWN]
        more = count - len(lines)
        tail = [f"  ... and {more:,} more"] if more > 0 else []
        noun = "item" if count == 1 else "items"
        super().__init__(
            "\n".join(
                [
                    f"{path}: {count:,} bad STAC {noun}; nothing was written from this file{note} "
                    "(--skip-invalid loads the good ones and reports the bad)",
                    *(f"  {line}" for line in lines),
                    *tail,
                ]
            )
        )


class FileNotLoaded(LoaderError):
    """A database error while writing one file of ``noctis archive load``; the message names the
    file, then the cause. Retryable when the cause is (two loaders deadlocked: run it again)."""

    def __init__(self, path: str, cause: NoctisError) -> None:
        self.path = path
        self.cause = cause
        self.retryable = cause.retryable
        super().__init__(f"{path}: {cause}")


class DatabaseError(NoctisError):
    """A database failure, translated from the driver's error."""


class DatabaseUnavailable(DatabaseError):
    """A transient database failure: the same work may succeed when retried."""

    retryable = True


class AugurError(NoctisError):
    """The notification to Augur did not go through."""


class AugurUnavailable(AugurError):
    """Augur could not be reached or answered with a transient error, after every retry.

    ``retry_after``: the seconds Augur's last answer asked to wait (its ``Retry-After``), if it
    asked; the outbox's senders call Augur again no sooner."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class AugurRejected(AugurError):
    """Augur refused the notification (a 4xx other than 408, 409 and 429, or a 1xx/3xx)."""

    def __init__(self, status_code: int, message: str, *, what: str = "notification") -> None:
        self.status_code = status_code
        self.augur_message = message
        super().__init__(f"Augur rejected the {what} with HTTP {status_code}: {message}")
