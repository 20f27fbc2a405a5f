"""The Atlas schema as typed SQLAlchemy 2 models.

Table and column names are a contract shared with Augur's database and other
tooling: add to them, never rename. Geometries are EPSG:4326 (lon/lat);
footprints that cross the antimeridian are stored split into a MultiPolygon
(RFC 7946, section 3.1.9).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    REAL,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
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
