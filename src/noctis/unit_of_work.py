"""The unit of work: one transaction, the repositories on it, rollback unless committed.

::

    async with UnitOfWork(session_factory) as uow:
        finder = await uow.finders.get(7)
        result = await uow.lookups.link(criteria=..., dream_id=1)
        await uow.commit()
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from noctis.db import translated
from noctis.repositories import (
    ArchiveRepository,
    DreamRepository,
    ImageryFinderRepository,
    IndexRepository,
    LookupRepository,
    OutboxRepository,
    PlanRepository,
    SceneRepository,
    StandingRepository,
)


class UnitOfWork:
    session: AsyncSession
    dreams: DreamRepository
    finders: ImageryFinderRepository
    indexes: IndexRepository
    archive: ArchiveRepository
    lookups: LookupRepository
    outbox: OutboxRepository
    standing: StandingRepository
    plans: PlanRepository
    scenes: SceneRepository

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    async def __aenter__(self) -> Self:
        self.session = self._session_factory()
        self.dreams = DreamRepository(self.session)
        self.finders = ImageryFinderRepository(self.session)
        self.indexes = IndexRepository(self.session)
        self.archive = ArchiveRepository(self.session)
        self.lookups = LookupRepository(self.session)
        self.outbox = OutboxRepository(self.session)
        self.standing = StandingRepository(self.session)
        self.plans = PlanRepository(self.session)
        self.scenes = SceneRepository(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.rollback()
        except Exception:
            # Rolling back a dead connection fails too; do not mask the original error.
            if exc is None:
                raise
        finally:
            await self.session.close()

    async def commit(self) -> None:
        async with translated("committing"):
            await self.session.commit()

    async def rollback(self) -> None:
        async with translated("rolling back"):
            await self.session.rollback()
