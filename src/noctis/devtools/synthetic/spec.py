"""What to generate: :class:`ArchiveSpec`, and the collections an archive holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

__all__ = [
    "COMMERCIAL",
    "COMMERCIAL_COLLECTIONS",
    "SENTINEL_COLLECTION",
    "ArchiveSpec",
    "Commercial",
]

SENTINEL_COLLECTION: Final = "sentinel-2-l2a"


@dataclass(frozen=True, slots=True)
class Commercial:
    """A commercial collection: its share of the commercial scenes and their shapes."""

    collection: str
    prefix: str
    weight: float
    gsd: tuple[float, float]
    width_km: tuple[float, float]
    length_km: tuple[float, float]
    platforms: tuple[str, ...]


COMMERCIAL: Final = (
    Commercial(
        "planet-skysat",
        "SKY",
        0.5,
        (0.5, 1.0),
        (2.5, 6.0),
        (5.0, 15.0),
        tuple(f"SkySat-C{i}" for i in range(1, 20)),
    ),
    Commercial("maxar-wv3", "WV3", 0.3, (0.3, 0.6), (8.0, 13.1), (8.0, 15.0), ("WorldView-3",)),
    Commercial(
        "airbus-spot", "SPOT", 0.2, (1.5, 3.0), (10.0, 15.0), (10.0, 15.0), ("SPOT-6", "SPOT-7")
    ),
)
COMMERCIAL_COLLECTIONS: Final = tuple(c.collection for c in COMMERCIAL)


@dataclass(frozen=True, kw_only=True)
class ArchiveSpec:
    """What to generate. Equal specs give byte-identical archives."""

    size: int
    """Exact number of items."""
    seed: int = 20190101
    start: date = date(2019, 1, 1)
    """First UTC day of acquisitions (inclusive)."""
    end: date = date(2025, 12, 31)
    """Last UTC day of acquisitions (inclusive)."""
    sentinel_share: float = 0.6
    """Share of Sentinel-2 items (rounded); the rest are commercial scenes."""
    revisit_days: int = 5
    cloud_null_share: float = 0.02
    """Share of items whose cloud cover is unknown (null)."""
    tile_city_bias: float = 0.8
    """Share of the Sentinel tiles taken near cities rather than anywhere."""

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"ArchiveSpec.size must be >= 0, got {self.size}")
        if self.seed < 0:
            raise ValueError(f"ArchiveSpec.seed must be >= 0, got {self.seed}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, datetime) or not isinstance(value, date):
                raise TypeError(f"ArchiveSpec.{name} must be a date, got {value!r}")
        if self.end < self.start:
            raise ValueError(f"ArchiveSpec.end ({self.end}) is before start ({self.start})")
        for name in ("sentinel_share", "cloud_null_share", "tile_city_bias"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ArchiveSpec.{name} must be within [0, 1]")
        if self.revisit_days < 1:
            raise ValueError(f"ArchiveSpec.revisit_days must be >= 1, got {self.revisit_days}")

    @property
    def days(self) -> int:
        """Number of UTC days in ``[start, end]``."""
        return (self.end - self.start).days + 1

    @property
    def sentinel_count(self) -> int:
        return round(self.size * self.sentinel_share)

    @property
    def commercial_count(self) -> int:
        return self.size - self.sentinel_count
