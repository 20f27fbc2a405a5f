"""Prefect's test harness, with PostgreSQL as the Prefect server's database.

``prefect_test_harness`` runs its temporary server on SQLite, which answers concurrent writes
with HTTP 503 ("database is locked"): 16 concurrent flow runs then spend most of their time in
the Prefect client's exponential backoff (2, 4, 8 ... s) and may exhaust its retries. Production
runs Prefect on PostgreSQL (compose.yml), so the reliability suite does the same: the very
mechanism of ``prefect_test_harness`` (a ``SubprocessASGIServer`` made the process' default
server, ``PREFECT_API_URL`` pointed at it), with ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` set
to a database of the tests' PostGIS cluster.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator

import prefect.context
import prefect.settings
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.server.api.server import SubprocessASGIServer
from prefect.server.database.dependencies import temporary_database_interface
from prefect.utilities.asyncutils import run_coro_as_sync

from noctis.devtools.localdb import free_port


@contextlib.contextmanager
def prefect_harness_on_postgres(database_url: str, *, startup_timeout: int = 300) -> Iterator[str]:
    """A temporary Prefect server on ``database_url`` (postgresql+asyncpg); yields its API URL."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(temporary_database_interface())
        stack.enter_context(
            prefect.settings.temporary_settings(
                updates={prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL: database_url}
            )
        )
        server = SubprocessASGIServer(port=free_port())
        prior = SubprocessASGIServer._instances.get(None)
        SubprocessASGIServer._instances[None] = server
        try:
            server.start(timeout=startup_timeout)
            stack.enter_context(
                prefect.settings.temporary_settings(
                    updates={prefect.settings.PREFECT_API_URL: server.api_url}
                )
            )
            stack.enter_context(
                prefect.context._temporary_global_settings_context(
                    prefect.context.get_settings_context()
                )
            )
            yield server.api_url
            run_coro_as_sync(_drain())
        finally:
            server.stop()
            if prior is not None:
                SubprocessASGIServer._instances[None] = prior
            else:
                SubprocessASGIServer._instances.pop(None, None)


async def _drain() -> None:
    with contextlib.suppress(RuntimeError):  # the log worker may never have started
        drained = APILogWorker.instance().drain()
        if inspect.isawaitable(drained):
            await drained
    all_drained = EventsWorker.drain_all()
    if inspect.isawaitable(all_drained):
        await all_drained
