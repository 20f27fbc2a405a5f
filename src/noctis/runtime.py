"""What a flow run holds for its tasks: one engine, one Augur client, one settings.

An engine is bound to the event loop that opened its connections, so each flow
run opens its own and disposes of it at the end: a worker running many flows
holds no connection between runs. Tasks reach the run's resources through a
context variable, so no engine or client travels as a task parameter.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from noctis.augur import AugurClient
from noctis.db import make_engine, make_session_factory
from noctis.errors import PrefectUnavailable
from noctis.finders import AoiLimits, aoi_limits
from noctis.settings import Settings
from noctis.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    augur: AugurClient | None
    """None when NOCTIS_AUGUR_API_URL is empty: notifications are skipped."""

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    @property
    def aoi_limits(self) -> AoiLimits:
        return aoi_limits(self.settings)


_current: ContextVar[Runtime | None] = ContextVar("noctis_runtime", default=None)

# Tests inject a transport here to talk to Augur without patching.
augur_transport: ContextVar[httpx.AsyncBaseTransport | None] = ContextVar(
    "noctis_augur_transport", default=None
)


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    engine = make_engine(settings, pool_size=2)
    augur = (
        AugurClient.from_settings(settings, transport=augur_transport.get())
        if settings.augur_enabled
        else None
    )
    runtime = Runtime(settings, engine, make_session_factory(engine), augur)
    token = _current.set(runtime)
    try:
        yield runtime
    finally:
        _current.reset(token)
        try:
            if augur is not None:
                await augur.aclose()
        finally:
            await engine.dispose()


def current_runtime() -> Runtime:
    runtime = _current.get()
    if runtime is None:
        raise RuntimeError("No Noctis runtime: call the task from within a Noctis flow")
    return runtime


_API_UNREACHABLE = "Failed to reach API at"  # Prefect's RuntimeError when the server is down


def prefect_unreachable(error: BaseException) -> PrefectUnavailable | None:
    """A :class:`PrefectUnavailable` saying what to do, for an error raised because the
    Prefect API at ``PREFECT_API_URL`` could not be reached; None for any other error."""
    if isinstance(error, httpx.TransportError) or (
        isinstance(error, RuntimeError) and _API_UNREACHABLE in str(error)
    ):
        return PrefectUnavailable(
            f"the Prefect API at PREFECT_API_URL could not be reached ({type(error).__name__}):"
            " start it (`prefect server start`, or the compose stack), or unset PREFECT_API_URL"
            " to run on a temporary server of this process"
        )
    return None
