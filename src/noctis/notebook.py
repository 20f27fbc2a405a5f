"""Noctis from a notebook or a script, with or without asyncio.

Async (Jupyter supports top-level ``await``)::

    from noctis.finders import aoi_limits, check_finder
    from noctis.notebook import open_uow
    async with open_uow() as uow:                  # settings from ATLAS_DB_* / .env
        finder = await check_finder(uow, 7)        # the flow's own checks
        items = await uow.archive.search(finder.criteria, limit=20)

Sync (plain Python, or a notebook cell without ``await``)::

    from noctis.notebook import coverage_plan, matches
    rows = matches(7, limit=20)                    # a list of ArchiveItem
    plan = coverage_plan(7, 3, per="month")        # ImageryFinder 7 for Dream 3, stored too

The sync functions run the async code on a private event loop in a helper
thread, so they also work inside Jupyter, whose own loop is already running.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any, TypeVar

from noctis.cover import Per, PlanOptions
from noctis.db import make_engine, make_session_factory
from noctis.finders import aoi_limits, check_finder
from noctis.models import ArchiveItem
from noctis.plans import StudyPlan, plan_study
from noctis.settings import Settings, get_settings
from noctis.study import check_study
from noctis.unit_of_work import UnitOfWork

T = TypeVar("T")


@contextlib.asynccontextmanager
async def open_uow(settings: Settings | None = None) -> AsyncIterator[UnitOfWork]:
    """A unit of work on its own engine (disposed on exit); rolls back unless you commit."""
    engine = make_engine(settings or get_settings(), pool_size=1)
    try:
        async with UnitOfWork(make_session_factory(engine)) as uow:
            yield uow
    finally:
        await engine.dispose()


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even where a loop is already running
    (Jupyter): then in a thread of its own, with the caller's context variables (a thread
    starts with none, and :func:`~noctis.settings.use_settings` would be lost: the coroutine
    would read, and write to, the database the environment names)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(asyncio.run, coroutine)
        except BaseException as e:
            box["error"] = e

    thread = threading.Thread(target=target, name="noctis-run-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def finder_matches(
    finder_id: int, *, settings: Settings | None = None, limit: int | None = None
) -> Sequence[ArchiveItem]:
    """The archive items matching a finder now (newest first); nothing is written.

    The finder goes through the same checks as in the flow: one it would refuse raises the
    same :class:`~noctis.errors.InvalidFinder`.
    """
    settings = settings or get_settings()
    async with open_uow(settings) as uow:
        finder = await check_finder(uow, finder_id, limits=aoi_limits(settings))
        items = await uow.archive.search(finder.criteria, limit=limit)
        uow.session.expunge_all()  # usable after the session closes
        return items


def matches(
    finder_id: int, *, settings: Settings | None = None, limit: int | None = None
) -> Sequence[ArchiveItem]:
    """:func:`finder_matches` for sync code."""
    return run_sync(finder_matches(finder_id, settings=settings, limit=limit))


async def make_coverage_plan(
    finder_id: int,
    dream_id: int,
    options: PlanOptions | None = None,
    *,
    settings: Settings | None = None,
) -> StudyPlan:
    """The study's coverage plan (:func:`noctis.plans.plan_study`), stored as ``noctis plan``
    stores it, after the flow's own check of the study."""
    settings = settings or get_settings()
    async with open_uow(settings) as uow:
        study = await check_study(
            uow, finder_id=finder_id, dream_id=dream_id, limits=aoi_limits(settings)
        )
        return await plan_study(uow, study, options)


def coverage_plan(
    finder_id: int,
    dream_id: int,
    *,
    per: str = "window",
    target: float = 0.99,
    settings: Settings | None = None,
) -> StudyPlan:
    """:func:`make_coverage_plan` for sync code, with the default preference."""
    options = PlanOptions(per=Per.parse(per), target=target)
    return run_sync(make_coverage_plan(finder_id, dream_id, options, settings=settings))
