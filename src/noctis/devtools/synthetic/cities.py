"""The cities commercial scenes cluster around, and the AOI helpers name.

The table is ``cities.csv`` beside this module (name, ISO 3166 country, lon,
lat; ``#`` lines are comments). Its rows and their order are part of every
generated archive: seeded draws and tile ranks index :data:`CITIES`.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib.resources import files
from typing import Final

__all__ = ["CITIES", "City", "city"]


@dataclass(frozen=True, slots=True)
class City:
    """A place commercial scenes cluster around; ``code`` is its ``external_id`` part."""

    name: str
    country: str
    lon: float
    lat: float

    @property
    def code(self) -> str:
        """Upper-case ASCII, words joined by ``-``: ``PETROPAVLOVSK-KAMCHATSKY``."""
        return re.sub(r"[^A-Z0-9]+", "-", self.name.upper().replace("'", "")).strip("-")


def _read_table() -> tuple[City, ...]:
    text = files(__package__).joinpath("cities.csv").read_text(encoding="ascii")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return tuple(
        City(name=r["name"], country=r["country"], lon=float(r["lon"]), lat=float(r["lat"]))
        for r in rows
    )


CITIES: Final[tuple[City, ...]] = _read_table()
_BY_KEY: Final[dict[str, City]] = {
    **{c.name.casefold(): c for c in CITIES},
    **{c.code.casefold(): c for c in CITIES},
}


def city(name: str) -> City:
    """The listed city called ``name`` (or with that code), case-insensitive."""
    try:
        return _BY_KEY[name.strip().casefold()]
    except KeyError:
        raise KeyError(
            f"no synthetic city named {name!r}; see noctis.devtools.synthetic.CITIES "
            f"({len(CITIES)} cities, e.g. 'Paris', 'Suva', 'Nuku'alofa')"
        ) from None
