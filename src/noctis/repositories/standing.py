"""The standing studies and the change queue: which studies stand, which scenes are new, and
the set-based match of new scenes against every standing study at once.

The match rule and the coverage are those of the study's link step, from the same code
(:func:`~noctis.repositories.archive.match_predicate`, :func:`terms_coverage`): the study binds
one finder's criteria, the matcher reads every standing study's from ``standing_study``, where
the link step stored them as it checked them.

**The fence.** A study's link step sees the archive as of its statement's snapshot; a matcher
batch sees the standing studies as of its own. A scene committed between the two could be
missed by both (the link step cannot see it, the batch cannot see the study yet, and deletes
it from the queue). So a link step that makes its study stand takes an exclusive advisory
lock on one of :data:`FENCE_BUCKETS` buckets (its study's) before its link statement, and a
matcher batch takes all buckets shared before it reads anything: each batch runs wholly before
or wholly after the link statement of each study becoming standing, and with READ COMMITTED
the later one sees what the earlier committed. Link steps of different studies rarely share a
bucket, so they do not wait for each other; batches share the locks, so they do not either.

**No plain index scans in the joins** (:data:`BITMAP_SCANS`). The batch's joins of scenes to
studies run one GiST scan per outer row (a nested loop over ``archive_item``'s or
``standing_study``'s GiST). PostgreSQL (15.18, and master as read) keeps a GiST scan's
"known dead" index entries across such rescans and can apply them, after a concurrent page
split, to the wrong entries: live scenes then vanish from the index for every query, the
link step's included, until a REINDEX (docs/postgres-gist-bug.md; found by the out-of-order
test). Bitmap index scans never mark entries, so these statements use them. The setting holds
for the rest of the batch's transaction (the totals and the outbox rows too, which lose
nothing by it); the queue is taken before it, with its primary key's ordered index scan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Interval,
    and_,
    any_,
    bindparam,
    delete,
    func,
    literal_column,
    not_,
    or_,
    select,
    text,
    tuple_,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import translated
from noctis.models import ArchiveItem, ArchiveLookupItem, StandingChange, StandingStudy
from noctis.repositories.archive import (
    FinderTerms,
    MatchCriteria,
    column_terms,
    match_predicate,
    terms_coverage,
)
from noctis.repositories.keys import of_study

FENCE_NAMESPACE = 0x4E535453  # "NSTS": the advisory lock space of the fence (two-int form)
FENCE_BUCKETS = 32

Study = tuple[int, int]
"""(imagery_finder_id, dream_id)."""
Queued = Mapping[int, datetime]
"""A batch's scenes: archive item id -> when its earliest change the batch took was queued
(``standing_change.enqueued_at``): the time the batch judges the standing rule at."""

_FENCE_ALL = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "set_config('jit', 'off', true), "
    "(SELECT count(pg_advisory_xact_lock_shared(:space, k)) "
    " FROM generate_series(0, :buckets - 1) AS k)"
)
BITMAP_SCANS = text(
    "SELECT set_config('enable_indexscan', 'off', true), "
    "set_config('enable_indexonlyscan', 'off', true)"
)
"""Run before each join of the batch, for the rest of the transaction (module doc)."""
_FENCE_ONE = text(
    "SELECT pg_advisory_xact_lock(:space, "
    "(abs(hashtextextended(:finder || ':' || :dream, 0)) % :buckets)::int)"
)


@dataclass(frozen=True, slots=True)
class StandingState:
    """A standing study as ``noctis study close`` and the tests see it."""

    finder_id: int
    dream_id: int
    enrolled_at: datetime
    ends_at: datetime | None
    closed_at: datetime | None
    closed_reason: str | None
    standing: bool


def _items() -> ColumnElement[Any]:
    return bindparam("items", type_=ARRAY(BigInteger))


def _queued() -> Any:
    """The batch's scenes as a derived table ``queued(archive_item_id, enqueued_at)``."""
    times = bindparam("enqueued", type_=ARRAY(DateTime(timezone=True)))
    return (
        func.unnest(_items(), times)
        .table_valued("archive_item_id", "enqueued_at")
        .render_derived(name="queued")
    )


def _params(items: Queued) -> dict[str, Any]:
    return {"items": list(items), "enqueued": list(items.values())}


def standing_terms() -> FinderTerms:
    """Every standing study's criteria, as columns of ``standing_study``."""
    s = StandingStudy
    return column_terms(
        aoi=s.location.expression,
        start=s.starts_at.expression,
        end=s.ends_at.expression,
        max_cloud_cover=s.max_cloud_cover.expression,
        collections=s.collections.expression,
        area_m2=s.area_m2.expression,
    )


def stands(grace: timedelta, at: ColumnElement[Any] | None = None) -> ColumnElement[bool]:
    """THE standing rule, at time ``at`` (default: now, by the database's clock): not closed
    by then, and the window could still gain scenes then (open-ended, or its end less than
    ``grace`` before ``at``).

    The matcher judges each scene at the time its change was queued (:data:`Queued`), not at
    the batch's: a scene queued while the study stood is matched to it even when the batch
    runs after a close or after the grace ran out; one queued after the close is not."""
    s = StandingStudy
    when = func.now() if at is None else at
    grace_param = bindparam("grace", grace, type_=Interval)
    return and_(
        or_(s.closed_at.is_(None), when < s.closed_at),
        or_(s.ends_at.is_(None), s.ends_at > when - grace_param),
    )


class StandingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # ------------------------------------------------------------------ the study's side

    async def fence_study(
        self, criteria: MatchCriteria, *, dream_id: int, grace: timedelta
    ) -> bool:
        """Whether the study will stand after its link step (:func:`stands`' rule on its
        window); if so, wait for the matcher batches in flight and keep new ones out until
        COMMIT (module doc). Call it before the link statement."""
        finder_id = criteria.finder_id
        doing = f"fencing ImageryFinder {finder_id} for Dream {dream_id}"
        if criteria.end is not None and not await self.can_stand(criteria.end, grace=grace):
            return False
        params = {"space": FENCE_NAMESPACE, "buckets": FENCE_BUCKETS}
        async with translated(doing):
            await self._session.execute(
                _FENCE_ONE, {**params, "finder": str(finder_id), "dream": str(dream_id)}
            )
        return True

    async def can_stand(self, end: datetime, *, grace: timedelta) -> bool:
        """Whether a window ending at ``end`` (exclusive) can stand now: :func:`stands`' rule,
        its end less than ``grace`` ago by the database's clock."""
        end_param = bindparam("end", end, type_=DateTime(timezone=True))
        grace_param = bindparam("grace", grace, type_=Interval)
        async with translated("checking whether a window can stand"):
            stmt = select(end_param > func.now() - grace_param)
            return bool((await self._session.execute(stmt)).scalar_one())

    async def enroll(self, criteria: MatchCriteria, *, dream_id: int) -> None:
        """Write (or refresh, reopening it) the study's standing row with its checked criteria."""
        values = {
            "imagery_finder_id": criteria.finder_id,
            "dream_id": dream_id,
            "location": criteria.location,
            "area_m2": criteria.area_m2,
            "starts_at": criteria.start,
            "ends_at": criteria.end,
            "max_cloud_cover": criteria.max_cloud_cover,
            "collections": None if criteria.collections is None else list(criteria.collections),
        }
        stmt = insert(StandingStudy).values(**values)
        refreshed = {
            k: stmt.excluded[k] for k in values if k not in {"imagery_finder_id", "dream_id"}
        }
        stmt = stmt.on_conflict_do_update(
            index_elements=[StandingStudy.imagery_finder_id, StandingStudy.dream_id],
            set_={**refreshed, "enrolled_at": func.now(), "closed_at": None, "closed_reason": None},
        )
        async with translated(f"enrolling ImageryFinder {criteria.finder_id} as standing"):
            await self._session.execute(stmt)

    async def withdraw(self, *, finder_id: int, dream_id: int) -> None:
        """Delete the study's standing row, if any: a rerun whose window can no longer stand
        stops the study standing (no batch matches by its earlier criteria after COMMIT)."""
        stmt = delete(StandingStudy).where(
            *of_study(StandingStudy, finder_id=finder_id, dream_id=dream_id)
        )
        async with translated(f"withdrawing ImageryFinder {finder_id} for Dream {dream_id}"):
            await self._session.execute(stmt)

    async def close(self, *, finder_id: int, dream_id: int, reason: str) -> StandingState | None:
        """Close the study (unless closed already); None if it has no standing row."""
        s = StandingStudy
        study = of_study(s, finder_id=finder_id, dream_id=dream_id)
        stmt = (
            update(s)
            .where(*study, s.closed_at.is_(None))
            .values(closed_at=func.now(), closed_reason=reason)
        )
        async with translated(f"closing ImageryFinder {finder_id} for Dream {dream_id}"):
            await self._session.execute(stmt)
        return await self.state(finder_id=finder_id, dream_id=dream_id, grace=timedelta(0))

    async def state(
        self, *, finder_id: int, dream_id: int, grace: timedelta
    ) -> StandingState | None:
        s = StandingStudy
        stmt = select(
            s.imagery_finder_id, s.dream_id, s.enrolled_at, s.ends_at, s.closed_at,
            s.closed_reason, stands(grace),
        ).where(*of_study(s, finder_id=finder_id, dream_id=dream_id))  # fmt: skip
        async with translated(f"reading the standing of ImageryFinder {finder_id}"):
            row = (await self._session.execute(stmt)).one_or_none()
        return None if row is None else StandingState(*row)

    async def count_standing(self, *, grace: timedelta) -> int:
        stmt = select(func.count()).select_from(StandingStudy).where(stands(grace))
        async with translated("counting the standing studies"):
            return int((await self._session.execute(stmt)).scalar_one())

    # ------------------------------------------------------------------ the matcher's side

    async def fence_batch(self) -> None:
        """A matcher batch: all fence buckets shared, and the plan settings (module doc)."""
        async with translated("fencing a standing match batch"):
            await self._session.execute(
                _FENCE_ALL, {"space": FENCE_NAMESPACE, "buckets": FENCE_BUCKETS}
            )

    async def take_changes(self, *, limit: int) -> dict[int, datetime]:
        """Delete up to ``limit`` queued changes, oldest first, skipping those another batch
        holds; returns their archive item ids (each once, in id order) with the time the
        earliest of their changes was queued (:data:`Queued`). A rollback puts them back.

        Then every other queued change of the same scenes is deleted too, waiting for a batch
        that holds one: a scene is evaluated by one batch at a time. Without this, a batch
        evaluating a scene's insert (old footprint, link not yet committed) and another its
        update (new footprint: nothing to unlink yet) left a stale link (found by the
        out-of-order test). Two batches each holding a change of one scene deadlock here;
        PostgreSQL aborts one, which rolls back whole and is retried as transient.
        """
        q = StandingChange
        taken = select(q.id).order_by(q.id).limit(limit).with_for_update(skip_locked=True)
        stmt = (
            delete(q)
            .where(q.id.in_(taken.scalar_subquery()))
            .returning(q.archive_item_id, q.enqueued_at)
        )
        earliest: dict[int, datetime] = {}

        def keep(rows: Sequence[Any]) -> None:
            for item, at in rows:
                earliest[item] = min(at, earliest.get(item, at))

        async with translated("taking scenes from the change queue"):
            keep((await self._session.execute(stmt)).all())
            if earliest:
                siblings = (
                    delete(q)
                    .where(q.archive_item_id == any_(_items()))
                    .returning(q.archive_item_id, q.enqueued_at)
                )
                keep((await self._session.execute(siblings, {"items": sorted(earliest)})).all())
        return {item: earliest[item] for item in sorted(earliest)}

    async def backlog(self) -> int:
        async with translated("counting the change queue"):
            stmt = select(func.count()).select_from(StandingChange)
            return int((await self._session.execute(stmt)).scalar_one())

    async def lock_touched(self, items: Queued, *, grace: timedelta) -> list[Study]:
        """Lock, in key order, the standing studies these items match or are linked to, so two
        batches touching one study take turns and each counts its total exactly."""
        s, lookup, queued = StandingStudy, ArchiveLookupItem, _queued()
        matching = (
            select(s.imagery_finder_id, s.dream_id)
            .join(ArchiveItem, and_(*match_predicate(standing_terms())))
            .join(queued, queued.c.archive_item_id == ArchiveItem.id)
            .where(ArchiveItem.id == any_(_items()), stands(grace, queued.c.enqueued_at))
        )
        linked = select(lookup.imagery_finder_id, lookup.dream_id).where(
            lookup.archive_item_id == any_(_items())
        )
        touched = union(matching, linked).subquery()
        outer = StandingStudy.__table__.alias("locked")
        key = (outer.c.imagery_finder_id, outer.c.dream_id)
        stmt = (
            select(*key)
            .where(tuple_(*key).in_(select(touched.c[0], touched.c[1])))
            .order_by(*key)
            .with_for_update()
        )
        async with translated("locking the standing studies of a batch"):
            await self._session.execute(BITMAP_SCANS)
            rows = (await self._session.execute(stmt, _params(items))).all()
        return [(int(f), int(d)) for f, d in rows]

    async def unlink_stale(self, items: Queued, *, grace: timedelta) -> dict[Study, int]:
        """Delete the lookup rows, in studies standing when the item was queued, of these items
        that no longer match (an update moved them out); returns how many per study."""
        s, lookup, queued = StandingStudy, ArchiveLookupItem, _queued()
        still = func.coalesce(and_(*match_predicate(standing_terms())), False)
        gone = (
            delete(lookup)
            .where(
                lookup.archive_item_id == any_(_items()),
                lookup.imagery_finder_id == s.imagery_finder_id,
                lookup.dream_id == s.dream_id,
                ArchiveItem.id == lookup.archive_item_id,
                queued.c.archive_item_id == lookup.archive_item_id,
                stands(grace, queued.c.enqueued_at),
                not_(still),
            )
            .returning(lookup.imagery_finder_id, lookup.dream_id)
            .cte("gone")
        )
        stmt = select(gone.c[0], gone.c[1], func.count()).group_by(gone.c[0], gone.c[1])
        async with translated("removing lookup rows that no longer match"):
            await self._session.execute(BITMAP_SCANS)
            rows = (await self._session.execute(stmt, _params(items))).all()
        return {(int(f), int(d)): int(n) for f, d, n in rows}

    async def link_items(self, items: Queued, *, grace: timedelta) -> dict[Study, int]:
        """Link these items to every study standing when the item was queued that they match
        (ONE ``INSERT … SELECT``, the study's rule and coverage); an existing row takes the new
        coverage. Returns the new rows per study."""
        s, lookup, queued = StandingStudy, ArchiveLookupItem, _queued()
        terms = standing_terms()
        matches = (
            select(s.dream_id, s.imagery_finder_id, ArchiveItem.id, terms_coverage(terms))
            .join(ArchiveItem, and_(*match_predicate(terms)))
            .join(queued, queued.c.archive_item_id == ArchiveItem.id)
            .where(ArchiveItem.id == any_(_items()), stands(grace, queued.c.enqueued_at))
        )
        stmt = insert(lookup).from_select(
            ["dream_id", "imagery_finder_id", "archive_item_id", "coverage"], matches
        )
        written = (
            stmt.on_conflict_do_update(
                constraint="uq_archive_lookup_item_study_item",
                set_={"coverage": stmt.excluded.coverage},
                where=lookup.coverage.is_distinct_from(stmt.excluded.coverage),
            )
            .returning(
                lookup.imagery_finder_id,
                lookup.dream_id,
                literal_column("(archive_lookup_item.xmax = 0)", Boolean).label("inserted"),
            )
            .cte("written")
        )
        new = func.count().filter(written.c.inserted)
        stmt_ = select(written.c[0], written.c[1], new).group_by(written.c[0], written.c[1])
        async with translated("linking new scenes to the standing studies"):
            await self._session.execute(BITMAP_SCANS)
            rows = (await self._session.execute(stmt_, _params(items))).all()
        return {(int(f), int(d)): int(n) for f, d, n in rows if n}

    async def totals(self, studies: Sequence[Study]) -> dict[Study, int]:
        """Each study's lookup rows now (this transaction's writes included), counted once the
        studies' standing rows are locked, in key order. :meth:`lock_touched` locked the
        studies the batch's scenes touched when it ran; an update that committed since may have
        moved a scene into another study, which the batch then wrote into unlocked: the count
        waits for a batch holding that study, so that each batch's total is exact."""
        if not studies:
            return {}
        wanted = [tuple(study) for study in studies]
        s, lookup = StandingStudy, ArchiveLookupItem
        lock = (
            select(s.imagery_finder_id, s.dream_id)
            .where(tuple_(s.imagery_finder_id, s.dream_id).in_(wanted))
            .order_by(s.imagery_finder_id, s.dream_id)
            .with_for_update()
        )
        key = (lookup.imagery_finder_id, lookup.dream_id)
        stmt = select(*key, func.count()).where(tuple_(*key).in_(wanted)).group_by(*key)
        async with translated("counting the lookup rows of the updated studies"):
            await self._session.execute(lock)
            rows = (await self._session.execute(stmt)).all()
        found = {(int(f), int(d)): int(n) for f, d, n in rows}
        return {study: found.get(study, 0) for study in studies}
