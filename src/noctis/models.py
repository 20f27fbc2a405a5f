"""The Atlas schema as typed SQLAlchemy 2 models.

Table and column names are a contract shared with Augur's database and other
tooling: add to them, never rename. ``coverage_plan`` and ``coverage_plan_item`` are Noctis'
own (the coverage plans, :mod:`noctis.plans`). Geometries are EPSG:4326 (lon/lat);
footprints that cross the antimeridian are stored split into a MultiPolygon
(RFC 7946, section 3.1.9). Noctis' own tables: ``notification_outbox``, what Augur is to be told,
written in the transaction of the study it reports on (:mod:`noctis.outbox`); ``standing_study``
and ``standing_change``, the studies that keep gaining scenes and the queue of scenes still to
match against them (:mod:`noctis.standing`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Dream(Base):
    """A study on the platform. Augur owns it; Noctis records imagery for it."""

    __tablename__ = "dream"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class ImageryFinder(Base):
    """An area of interest and an inclusive range of whole UTC days (null = open)."""

    __tablename__ = "imagery_finder"
    __table_args__ = (
        CheckConstraint(
            "start_date IS NULL OR end_date IS NULL OR start_date <= end_date",
            name="start_before_end",
        ),
        CheckConstraint(
            "max_cloud_cover IS NULL OR max_cloud_cover BETWEEN 0 AND 100",
            name="max_cloud_cover_range",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    location: Mapped[WKBElement] = mapped_column(
        Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False
    )
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    max_cloud_cover: Mapped[float | None] = mapped_column(REAL)
    collections: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = _created_at()


class ArchiveItem(Base):
    """A satellite scene in the archive."""

    __tablename__ = "archive_item"
    __table_args__ = (
        CheckConstraint(
            "cloud_cover IS NULL OR cloud_cover BETWEEN 0 AND 100", name="cloud_cover_range"
        ),
        CheckConstraint(
            "ST_GeometryType(footprint) IN ('ST_Polygon', 'ST_MultiPolygon')",
            name="footprint_polygonal",
        ),
        # Chosen by measurement (benchmarks/RESULTS.md): one composite GiST answers
        # "intersects the AOI AND acquired in the window" without bitmap-ANDing a
        # footprint GiST with a wide acquired_at btree range.
        Index(
            "ix_archive_item_footprint_acquired_at",
            "footprint",
            "acquired_at",
            postgresql_using="gist",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    external_id: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    collection: Mapped[str] = mapped_column(Text, nullable=False)
    footprint: Mapped[WKBElement] = mapped_column(
        Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False
    )
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    cloud_cover: Mapped[float | None] = mapped_column(REAL)
    gsd: Mapped[float | None] = mapped_column(REAL)
    properties: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = _created_at()


class ArchiveLookupItem(Base):
    """An archive item matched to a finder, recorded for a dream."""

    __tablename__ = "archive_lookup_item"
    __table_args__ = (
        UniqueConstraint(
            "dream_id",
            "imagery_finder_id",
            "archive_item_id",
            name="uq_archive_lookup_item_study_item",
        ),
        CheckConstraint("coverage IS NULL OR coverage BETWEEN 0 AND 1", name="coverage_range"),
        Index("ix_archive_lookup_item_imagery_finder_id", "imagery_finder_id"),
        Index("ix_archive_lookup_item_archive_item_id", "archive_item_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dream_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dream.id", ondelete="CASCADE"), nullable=False
    )
    imagery_finder_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("imagery_finder.id", ondelete="CASCADE"), nullable=False
    )
    archive_item_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("archive_item.id", ondelete="CASCADE"), nullable=False
    )
    coverage: Mapped[float | None] = mapped_column(Double)
    created_at: Mapped[datetime] = _created_at()


OUTBOX_STATES = ("pending", "delivered", "dead")
OUTBOX_EVENTS = (
    "imagery-finder-study.completed",
    "imagery-finder-study.failed",
    "imagery-finder-study.updated",
)
OUTBOX_KEY_SQL = (
    "'noctis:imagery-finder-' || imagery_finder_id::text || '\\:dream-' || dream_id::text || "
    "CASE WHEN event = 'imagery-finder-study.completed' "
    "THEN '\\:update-' || id::text || '\\:completed' "
    "WHEN event = 'imagery-finder-study.updated' "
    "THEN '\\:update-' || id::text || '\\:updated' "
    "ELSE '\\:run-' || flow_run_id || '\\:failed' END"
)
"""The Idempotency-Key of a notification, computed by PostgreSQL once, when the row is written
(:func:`noctis.augur.completed_key` and :func:`noctis.augur.failed_key` say the same). ``\\:``
keeps SQLAlchemy from reading ``:dream`` as a bind parameter."""


class NotificationOutbox(Base):
    """A notification for Augur, written in the transaction of what it reports; delivered later.

    One row per logical notification: the ``completed`` of one committed study update, or the
    ``failed`` of one flow run. No foreign keys: a notification outlives the rows it names.
    """

    __tablename__ = "notification_outbox"
    __table_args__ = (
        # One outcome per study run; a standing pass writes one ``updated`` per study per batch.
        Index(
            "uq_notification_outbox_run_event",
            "flow_run_id",
            "event",
            unique=True,
            postgresql_where=text("event <> 'imagery-finder-study.updated'"),
        ),
        CheckConstraint(f"state IN {OUTBOX_STATES!r}", name="state_known"),
        CheckConstraint(f"event IN {OUTBOX_EVENTS!r}", name="event_known"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint(
            "(state = 'delivered') = (delivered_at IS NOT NULL)", name="delivered_when_delivered"
        ),
        # The dispatcher's queue: pending rows, longest waiting first.
        Index(
            "ix_notification_outbox_queue",
            "queued_at",
            "id",
            postgresql_where=text("state = 'pending'"),
        ),
        # Retention: delivered rows by age.
        Index(
            "ix_notification_outbox_delivered_at",
            "delivered_at",
            postgresql_where=text("state = 'delivered'"),
        ),
        # Augur's latest answer, whatever the row's state (every delivery sets queued_at): its
        # Retry-After holds the senders (OutboxRepository.asked_to_wait). Alembic 0006.
        Index("ix_notification_outbox_queued_at", "queued_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(
        Text, Computed(OUTBOX_KEY_SQL, persisted=True), nullable=False, unique=True
    )
    event: Mapped[str] = mapped_column(Text, nullable=False)
    imagery_finder_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    dream_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    flow_run_id: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    """The :class:`~noctis.augur.Notification` as JSON: the body Augur receives."""
    state: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    """Deliveries tried (each one request and its retries under the Augur retry policy)."""
    history: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    """The latest deliveries: when, by whom, the outcome, HTTP status, attempts, error."""
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    queued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    """When the row last joined the queue (written, tried in vain, requeued)."""
    requeued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Set by ``noctis outbox requeue``: the retry budget counts from here, not created_at."""
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StandingStudy(Base):
    """A study (finder x dream) that has run and still gains the scenes ingested after it.

    Written by the study's link step, with the finder's criteria as that step checked them (the
    AOI, its spheroidal area, the half-open window, the filters), so the standing match is the
    study's own rule; a rerun of the study refreshes them. Whether it stands now is the rule of
    :mod:`noctis.standing` (``closed_at`` null, and the window can still gain scenes).
    """

    __tablename__ = "standing_study"
    __table_args__ = (
        CheckConstraint("(closed_at IS NULL) = (closed_reason IS NULL)", name="closed_with_reason"),
        Index("ix_standing_study_location", "location", postgresql_using="gist"),
    )

    imagery_finder_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("imagery_finder.id", ondelete="CASCADE"), primary_key=True
    )
    dream_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dream.id", ondelete="CASCADE"), primary_key=True
    )
    location: Mapped[WKBElement] = mapped_column(
        Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False
    )
    area_m2: Mapped[float | None] = mapped_column(Double)
    """The AOI's spheroidal area; null for a point AOI (coverage is then null)."""
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """The half-open window ``[starts_at, ends_at)``; null leaves that side open."""
    max_cloud_cover: Mapped[float | None] = mapped_column(REAL)
    collections: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    enrolled_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_reason: Mapped[str | None] = mapped_column(Text)


class StandingChange(Base):
    """The change queue: an archive item inserted, or updated in a matched field, not yet
    matched against the standing studies. Filled by triggers on ``archive_item`` inside the
    writer's transaction; consumed (deleted) by the transaction that links it."""

    __tablename__ = "standing_change"
    # A batch takes every queued change of its scenes (one batch evaluates a scene at a time).
    __table_args__ = (Index("ix_standing_change_archive_item_id", "archive_item_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    archive_item_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    enqueued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    )


class CoveragePlan(Base):
    """A coverage plan of a study for one time slice: Noctis' own table (``noctis plan``).

    One row per slice of one slicing (``per``: ``window``, ``month``, ``10 days``, …); storing
    a study's plans again replaces those of the same slicing. Areas in m² on the spheroid.
    """

    __tablename__ = "coverage_plan"
    __table_args__ = (
        UniqueConstraint(
            "dream_id",
            "imagery_finder_id",
            "per",
            "slice_start",
            name="uq_coverage_plan_study_slice",
        ),
        CheckConstraint("target > 0 AND target <= 1", name="target_range"),
        CheckConstraint("slice_start <= slice_end", name="slice_order"),
        Index("ix_coverage_plan_imagery_finder_id", "imagery_finder_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dream_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("dream.id", ondelete="CASCADE"), nullable=False
    )
    imagery_finder_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("imagery_finder.id", ondelete="CASCADE"), nullable=False
    )
    per: Mapped[str] = mapped_column(Text, nullable=False)
    slice_start: Mapped[date] = mapped_column(Date, nullable=False)
    slice_end: Mapped[date] = mapped_column(Date, nullable=False)
    """Last day of the slice (inclusive)."""
    target: Mapped[float] = mapped_column(Double, nullable=False)
    min_gain_m2: Mapped[float] = mapped_column(Double, nullable=False)
    cloud_weight: Mapped[float] = mapped_column(Double, nullable=False)
    recency_weight: Mapped[float] = mapped_column(Double, nullable=False)
    candidates: Mapped[int] = mapped_column(Integer, nullable=False)
    scenes: Mapped[int] = mapped_column(Integer, nullable=False)
    lower_bound: Mapped[int] = mapped_column(Integer, nullable=False)
    covered_m2: Mapped[float] = mapped_column(Double, nullable=False)
    target_m2: Mapped[float] = mapped_column(Double, nullable=False)
    union_m2: Mapped[float] = mapped_column(Double, nullable=False)
    """What all the study's scenes together cover: the base of the target."""
    aoi_m2: Mapped[float] = mapped_column(Double, nullable=False)
    reached: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class CoveragePlanItem(Base):
    """A scene of a coverage plan, in the order the plan takes them (``rank`` 1, 2, …)."""

    __tablename__ = "coverage_plan_item"
    __table_args__ = (
        Index("ix_coverage_plan_item_archive_lookup_item_id", "archive_lookup_item_id"),
    )

    coverage_plan_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("coverage_plan.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    archive_lookup_item_id: Mapped[int] = mapped_column(
        BigInteger,
        # Named: the convention's name would pass PostgreSQL's 63 characters.
        ForeignKey(
            "archive_lookup_item.id",
            ondelete="CASCADE",
            name="fk_coverage_plan_item_archive_lookup_item",
        ),
        nullable=False,
    )
    gain_m2: Mapped[float] = mapped_column(Double, nullable=False)
    """Area of the AOI this scene covers that the scenes ranked before it do not."""
    covered_m2: Mapped[float] = mapped_column(Double, nullable=False)
    """Area the plan covers up to and including this scene."""
