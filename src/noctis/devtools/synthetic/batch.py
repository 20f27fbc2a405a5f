""":class:`ArchiveBatch`: rows of the archive column by column, and their COPY text."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely

from noctis.devtools.synthetic.geometry import Objects

__all__ = ["COPY_COLUMNS", "ArchiveBatch"]

COPY_COLUMNS: Final = (
    "external_id",
    "collection",
    "footprint",
    "acquired_at",
    "cloud_cover",
    "gsd",
    "properties",
)

_F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class ArchiveBatch:
    """Consecutive rows of the archive, column by column (arrays of equal length).

    ``footprint`` is hex EWKB with SRID 4326; ``acquired_at`` ISO 8601 UTC
    strings with millisecond precision (``2019-01-06T10:31:12.123Z``);
    ``cloud_cover`` and ``gsd`` are float32 with NaN for null; ``properties``
    JSON text.
    """

    external_id: Objects
    collection: Objects
    footprint: Objects
    acquired_at: Objects
    cloud_cover: _F32
    gsd: _F32
    properties: Objects

    def __len__(self) -> int:
        return len(self.external_id)

    def _columns(self) -> tuple[npt.NDArray[Any], ...]:
        return (
            self.external_id,
            self.collection,
            self.footprint,
            self.acquired_at,
            self.cloud_cover,
            self.gsd,
            self.properties,
        )

    def slice(self, start: int, stop: int) -> ArchiveBatch:
        return ArchiveBatch(*(c[start:stop] for c in self._columns()))

    @staticmethod
    def empty() -> ArchiveBatch:
        text = np.empty(0, dtype=object)
        number = np.empty(0, dtype=np.float32)
        return ArchiveBatch(text, text, text, text, number, number, text)

    @staticmethod
    def concat(batches: Iterable[ArchiveBatch]) -> ArchiveBatch:
        parts = [b._columns() for b in batches]
        if not parts:
            return ArchiveBatch.empty()
        return ArchiveBatch(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))

    def geometries(self) -> Objects:
        """The footprints as shapely geometries (SRID 4326)."""
        return np.asarray(shapely.from_wkb(self.footprint), dtype=object)

    def acquired_at_datetimes(self) -> list[datetime]:
        """``acquired_at`` as timezone-aware UTC datetimes."""
        return [datetime.fromisoformat(s) for s in self.acquired_at.tolist()]

    def rows(self) -> Iterator[tuple[str, str, str, datetime, float | None, float | None, str]]:
        """Row tuples in :data:`COPY_COLUMNS` order, nulls as None, datetimes aware."""
        cloud = _nullable(self.cloud_cover)
        gsd = _nullable(self.gsd)
        return zip(
            self.external_id.tolist(),
            self.collection.tolist(),
            self.footprint.tolist(),
            self.acquired_at_datetimes(),
            cloud,
            gsd,
            self.properties.tolist(),
            strict=True,
        )

    def to_copy_text(self) -> str:
        """The rows in PostgreSQL's COPY text format (tab-separated, ``\\N`` for null)."""
        cols = [c.tolist() for c in self._columns()]
        cols[4] = _copy_floats(self.cloud_cover)
        cols[5] = _copy_floats(self.gsd)
        text = "".join(
            [
                f"{a}\t{b}\t{c}\t{d}\t{e}\t{f}\t{g}\n"
                for a, b, c, d, e, f, g in zip(*cols, strict=True)
            ]
        )
        nulls = int(np.isnan(self.cloud_cover).sum() + np.isnan(self.gsd).sum())
        if text.count("\\") != nulls:  # a backslash in some text: escape (never with CITIES)
            for k in (0, 1, 2, 3, 6):
                cols[k] = [_copy_escape(v) for v in cols[k]]
            text = "".join(["\t".join(row) + "\n" for row in zip(*cols, strict=True)])
        return text


def _nullable(values: _F32) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]


def _copy_floats(values: _F32) -> list[str]:
    text = values.astype(str)
    return np.where(np.isnan(values), "\\N", text).tolist()  # type: ignore[no-any-return]


def _copy_escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )
