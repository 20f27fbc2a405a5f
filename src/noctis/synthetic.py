"""A deterministic synthetic archive for ``noctis demo`` and the benchmarks.

:func:`generate` streams an archive of exactly ``spec.size`` items as columnar
:class:`ArchiveBatch` es; :func:`load_archive` COPYs them into ``archive_item``.
The same :class:`ArchiveSpec` always gives byte-identical rows (in the same
order), whatever ``batch_size``: randomness is drawn per fixed block of 10,000
output rows from a seed derived from ``(spec.seed, block)``, and coordinates are
rounded to 1e-7 degrees (~1 cm).

What is in it
-------------
*Sentinel-2-like tiles* (``sentinel-2-l2a``, gsd 10 m), ``sentinel_share`` of the
items (rounded). A global grid of ~110 km tiles spaced 100 km apart (so
neighbours overlap by ~10 km, like MGRS tiles) between 60°S and 75°N: 150 rows
0.9° apart, each row holding ``round(360 cos(lat) * 111.32 / 100)`` tiles whose
width in degrees grows as ``1 / cos(lat)`` (edges are ~110 km at their own
latitude, so a tile is a slight trapezoid). Column 0 of every row is centred on
the antimeridian, so it crosses it. Each tile is revisited every
``revisit_days`` (5) days from a random phase, at 10:30 local solar time
(``10:30 - lon/15 h`` UTC, ±3 min), over the UTC days of ``[start, end]``;
its ``external_id`` is ``S2_T{row:03d}{col:03d}_{yyyymmdd}`` (the UTC date).

A finite archive holds *fewer tiles, not sparser revisits*: tiles are taken
whole, in an order, until the Sentinel items are used up (the last tile's
series stops early). The order interleaves two streams, ``tile_city_bias`` (80%)
from the first and the rest from the second:

1. tiles near the listed cities, round-robin: the tile nearest to each city
   (cities in a seeded order) first, then each city's second-nearest, and so
   on. Tiles that cross the antimeridian and are the nearest tile of a city come
   first of all, so even a small archive has antimeridian tiles;
2. all tiles in a seeded random order (oceans included).

So a 100k archive has 118 tiles, most of them on a city; 5M has ~5,900.

*Commercial scenes* (the rest): ``planet-skysat`` (gsd 0.5-1.0 m),
``maxar-wv3`` (0.3-0.6 m) and ``airbus-spot`` (1.5-3.0 m), rectangles 2.5-15 km
a side rotated by up to ±25°, scattered around :data:`CITIES` (each city with
its own seeded popularity and spread of 3-40 km), at a uniformly random UTC
day and 08:00-15:00 local solar time. ``external_id`` is
``{SKY|WV3|SPOT}_{CITY-CODE}_{n:08d}``, ``n`` numbering the commercial items in
acquisition order.

Rows come in acquisition order, as an archive would ingest them. Footprints are
valid Polygons with counter-clockwise exteriors; one that crosses the
antimeridian is split at ±180° into a MultiPolygon (RFC 7946 style), every
coordinate within [-180, 180]. ``cloud_cover`` is 0..100 with
``cloud_null_share`` (2%) nulls; ``properties`` is a small JSON object
(``platform`` plus ``tile`` or ``city``/``country``).

The AOI helpers (:func:`point_aoi`, :func:`city_aoi`, :func:`region_aoi`,
:func:`box_aoi`, :func:`country_aoi`) return valid shapely geometries in lon/lat
(SRID 4326), split at the antimeridian the same way.

Distances use a spherical 111.32 km per degree; good enough for synthetic data.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Final

import asyncpg
import numpy as np
import numpy.typing as npt
import shapely

__all__ = [
    "CITIES",
    "COMMERCIAL_COLLECTIONS",
    "COPY_COLUMNS",
    "SENTINEL_COLLECTION",
    "ArchiveBatch",
    "ArchiveSpec",
    "City",
    "box_aoi",
    "city",
    "city_aoi",
    "country_aoi",
    "generate",
    "load_archive",
    "load_archive_url",
    "point_aoi",
    "region_aoi",
]

SRID: Final = 4326
KM_PER_DEGREE: Final = 111.32
SENTINEL_COLLECTION: Final = "sentinel-2-l2a"
COPY_COLUMNS: Final = (
    "external_id",
    "collection",
    "footprint",
    "acquired_at",
    "cloud_cover",
    "gsd",
    "properties",
)

_MS_PER_DAY: Final = 86_400_000
_MS_PER_HOUR: Final = 3_600_000
_BLOCK: Final = 10_000  # rows drawn from one random stream; independent of batch_size
_DECIMALS: Final = 7  # coordinates rounded to 1e-7 degree (~1 cm)

# Random streams (the second word of every seed's spawn key).
_S_TILES, _S_SENTINEL, _S_COMMERCIAL, _S_BLOCK, _S_COUNTRY = range(5)


# --------------------------------------------------------------------------- cities


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


# (name, ISO 3166 country, lon, lat). ASCII names: they go into ids and JSON as they are.
_CITY_TABLE: Final[tuple[tuple[str, str, float, float], ...]] = (
    # Europe
    ("London", "GB", -0.1278, 51.5074),
    ("Paris", "FR", 2.3522, 48.8566),
    ("Berlin", "DE", 13.4050, 52.5200),
    ("Madrid", "ES", -3.7038, 40.4168),
    ("Rome", "IT", 12.4964, 41.9028),
    ("Lisbon", "PT", -9.1393, 38.7223),
    ("Amsterdam", "NL", 4.8952, 52.3702),
    ("Brussels", "BE", 4.3517, 50.8503),
    ("Vienna", "AT", 16.3738, 48.2082),
    ("Prague", "CZ", 14.4378, 50.0755),
    ("Warsaw", "PL", 21.0122, 52.2297),
    ("Budapest", "HU", 19.0402, 47.4979),
    ("Bucharest", "RO", 26.1025, 44.4268),
    ("Athens", "GR", 23.7275, 37.9838),
    ("Stockholm", "SE", 18.0686, 59.3293),
    ("Oslo", "NO", 10.7522, 59.9139),
    ("Copenhagen", "DK", 12.5683, 55.6761),
    ("Helsinki", "FI", 24.9384, 60.1699),
    ("Dublin", "IE", -6.2603, 53.3498),
    ("Barcelona", "ES", 2.1734, 41.3851),
    ("Milan", "IT", 9.1900, 45.4642),
    ("Munich", "DE", 11.5820, 48.1351),
    ("Zurich", "CH", 8.5417, 47.3769),
    ("Marseille", "FR", 5.3698, 43.2965),
    ("Kyiv", "UA", 30.5234, 50.4501),
    ("Moscow", "RU", 37.6173, 55.7558),
    ("Saint Petersburg", "RU", 30.3159, 59.9391),
    ("Istanbul", "TR", 28.9784, 41.0082),
    ("Ankara", "TR", 32.8597, 39.9334),
    ("Belgrade", "RS", 20.4573, 44.7866),
    ("Sofia", "BG", 23.3219, 42.6977),
    ("Reykjavik", "IS", -21.9426, 64.1466),
    ("Tromso", "NO", 18.9560, 69.6492),
    ("Murmansk", "RU", 33.0750, 68.9700),
    ("Longyearbyen", "NO", 15.6267, 78.2232),
    ("Naples", "IT", 14.2681, 40.8518),
    ("Seville", "ES", -5.9845, 37.3891),
    ("Riga", "LV", 24.1052, 56.9496),
    ("Minsk", "BY", 27.5615, 53.9045),
    # Middle East, Caucasus, Central Asia
    ("Dubai", "AE", 55.2708, 25.2048),
    ("Riyadh", "SA", 46.6753, 24.7136),
    ("Jeddah", "SA", 39.1925, 21.4858),
    ("Doha", "QA", 51.5310, 25.2854),
    ("Kuwait City", "KW", 47.9774, 29.3759),
    ("Tehran", "IR", 51.3890, 35.6892),
    ("Baghdad", "IQ", 44.3661, 33.3152),
    ("Tel Aviv", "IL", 34.7818, 32.0853),
    ("Amman", "JO", 35.9106, 31.9539),
    ("Beirut", "LB", 35.5018, 33.8938),
    ("Muscat", "OM", 58.3829, 23.5880),
    ("Sanaa", "YE", 44.1910, 15.3694),
    ("Kabul", "AF", 69.2075, 34.5553),
    ("Tashkent", "UZ", 69.2401, 41.2995),
    ("Almaty", "KZ", 76.9286, 43.2220),
    ("Astana", "KZ", 71.4491, 51.1694),
    ("Baku", "AZ", 49.8671, 40.4093),
    ("Tbilisi", "GE", 44.7833, 41.7151),
    # South Asia
    ("Karachi", "PK", 67.0099, 24.8607),
    ("Lahore", "PK", 74.3587, 31.5204),
    ("Delhi", "IN", 77.2090, 28.6139),
    ("Mumbai", "IN", 72.8777, 19.0760),
    ("Bangalore", "IN", 77.5946, 12.9716),
    ("Chennai", "IN", 80.2707, 13.0827),
    ("Kolkata", "IN", 88.3639, 22.5726),
    ("Hyderabad", "IN", 78.4867, 17.3850),
    ("Dhaka", "BD", 90.4125, 23.8103),
    ("Kathmandu", "NP", 85.3240, 27.7172),
    ("Colombo", "LK", 79.8612, 6.9271),
    ("Male", "MV", 73.5093, 4.1755),
    # East Asia and the Russian Far East
    ("Beijing", "CN", 116.4074, 39.9042),
    ("Shanghai", "CN", 121.4737, 31.2304),
    ("Guangzhou", "CN", 113.2644, 23.1291),
    ("Chengdu", "CN", 104.0665, 30.5728),
    ("Wuhan", "CN", 114.3054, 30.5928),
    ("Xi'an", "CN", 108.9398, 34.3416),
    ("Harbin", "CN", 126.5350, 45.8038),
    ("Urumqi", "CN", 87.6168, 43.8256),
    ("Lhasa", "CN", 91.1720, 29.6520),
    ("Hong Kong", "HK", 114.1694, 22.3193),
    ("Taipei", "TW", 121.5654, 25.0330),
    ("Seoul", "KR", 126.9780, 37.5665),
    ("Busan", "KR", 129.0756, 35.1796),
    ("Pyongyang", "KP", 125.7625, 39.0392),
    ("Tokyo", "JP", 139.6917, 35.6895),
    ("Osaka", "JP", 135.5023, 34.6937),
    ("Sapporo", "JP", 141.3545, 43.0618),
    ("Ulaanbaatar", "MN", 106.9057, 47.8864),
    ("Vladivostok", "RU", 131.8869, 43.1155),
    ("Yakutsk", "RU", 129.6755, 62.0355),
    ("Magadan", "RU", 150.8083, 59.5682),
    ("Petropavlovsk-Kamchatsky", "RU", 158.6433, 53.0241),
    ("Anadyr", "RU", 177.5140, 64.7337),
    ("Egvekinot", "RU", -179.1167, 66.3217),
    ("Pevek", "RU", 170.3133, 69.7008),
    ("Novosibirsk", "RU", 82.9346, 55.0084),
    ("Yekaterinburg", "RU", 60.5975, 56.8389),
    ("Irkutsk", "RU", 104.2964, 52.2870),
    ("Norilsk", "RU", 88.2010, 69.3498),
    # Southeast Asia
    ("Bangkok", "TH", 100.5018, 13.7563),
    ("Hanoi", "VN", 105.8542, 21.0285),
    ("Ho Chi Minh City", "VN", 106.6297, 10.8231),
    ("Phnom Penh", "KH", 104.9282, 11.5564),
    ("Yangon", "MM", 96.1735, 16.8409),
    ("Kuala Lumpur", "MY", 101.6869, 3.1390),
    ("Singapore", "SG", 103.8198, 1.3521),
    ("Jakarta", "ID", 106.8456, -6.2088),
    ("Surabaya", "ID", 112.7521, -7.2575),
    ("Denpasar", "ID", 115.2126, -8.6705),
    ("Makassar", "ID", 119.4327, -5.1477),
    ("Jayapura", "ID", 140.7181, -2.5337),
    ("Manila", "PH", 120.9842, 14.5995),
    ("Cebu", "PH", 123.8854, 10.3157),
    ("Davao", "PH", 125.4553, 7.1907),
    ("Dili", "TL", 125.5603, -8.5569),
    # Oceania and the Pacific
    ("Sydney", "AU", 151.2093, -33.8688),
    ("Melbourne", "AU", 144.9631, -37.8136),
    ("Brisbane", "AU", 153.0260, -27.4698),
    ("Perth", "AU", 115.8605, -31.9505),
    ("Adelaide", "AU", 138.6007, -34.9285),
    ("Darwin", "AU", 130.8456, -12.4634),
    ("Cairns", "AU", 145.7710, -16.9186),
    ("Hobart", "AU", 147.3272, -42.8821),
    ("Alice Springs", "AU", 133.8807, -23.6980),
    ("Auckland", "NZ", 174.7633, -36.8485),
    ("Wellington", "NZ", 174.7762, -41.2865),
    ("Christchurch", "NZ", 172.6362, -43.5321),
    ("Waitangi", "NZ", -176.5597, -43.9535),
    ("Port Moresby", "PG", 147.1803, -9.4438),
    ("Honiara", "SB", 159.9729, -9.4456),
    ("Port Vila", "VU", 168.3273, -17.7333),
    ("Noumea", "NC", 166.4572, -22.2758),
    ("Suva", "FJ", 178.4419, -18.1416),
    ("Labasa", "FJ", 179.3833, -16.4333),
    ("Somosomo", "FJ", -179.9700, -16.7700),
    ("Nuku'alofa", "TO", -175.2049, -21.1394),
    ("Apia", "WS", -171.7680, -13.8333),
    ("Pago Pago", "AS", -170.7020, -14.2756),
    ("Funafuti", "TV", 179.1983, -8.5211),
    ("Tarawa", "KI", 172.9790, 1.3290),
    ("Majuro", "MH", 171.3803, 7.0897),
    ("Mata-Utu", "WF", -176.1745, -13.2825),
    ("Alofi", "NU", -169.9187, -19.0544),
    ("Avarua", "CK", -159.7750, -21.2075),
    ("Papeete", "PF", -149.5585, -17.5516),
    ("Honolulu", "US", -157.8583, 21.3069),
    ("Hilo", "US", -155.0868, 19.7074),
    ("Hagatna", "GU", 144.7504, 13.4757),
    ("Koror", "PW", 134.4795, 7.3419),
    # Africa
    ("Cairo", "EG", 31.2357, 30.0444),
    ("Alexandria", "EG", 29.9187, 31.2001),
    ("Lagos", "NG", 3.3792, 6.5244),
    ("Abuja", "NG", 7.3986, 9.0765),
    ("Kinshasa", "CD", 15.2663, -4.4419),
    ("Luanda", "AO", 13.2894, -8.8390),
    ("Nairobi", "KE", 36.8219, -1.2921),
    ("Mombasa", "KE", 39.6682, -4.0435),
    ("Addis Ababa", "ET", 38.7469, 9.0300),
    ("Khartoum", "SD", 32.5599, 15.5007),
    ("Dar es Salaam", "TZ", 39.2083, -6.7924),
    ("Johannesburg", "ZA", 28.0473, -26.2041),
    ("Cape Town", "ZA", 18.4241, -33.9249),
    ("Durban", "ZA", 31.0218, -29.8587),
    ("Casablanca", "MA", -7.5898, 33.5731),
    ("Algiers", "DZ", 3.0588, 36.7538),
    ("Tunis", "TN", 10.1815, 36.8065),
    ("Tripoli", "LY", 13.1913, 32.8872),
    ("Accra", "GH", -0.1870, 5.6037),
    ("Abidjan", "CI", -4.0083, 5.3600),
    ("Dakar", "SN", -17.4677, 14.7167),
    ("Bamako", "ML", -8.0029, 12.6392),
    ("Niamey", "NE", 2.1098, 13.5116),
    ("N'Djamena", "TD", 15.0557, 12.1348),
    ("Kampala", "UG", 32.5825, 0.3476),
    ("Kigali", "RW", 30.0619, -1.9441),
    ("Lusaka", "ZM", 28.3228, -15.3875),
    ("Harare", "ZW", 31.0522, -17.8292),
    ("Maputo", "MZ", 32.5732, -25.9692),
    ("Antananarivo", "MG", 47.5079, -18.8792),
    ("Windhoek", "NA", 17.0658, -22.5609),
    ("Gaborone", "BW", 25.9231, -24.6282),
    ("Mogadishu", "SO", 45.3182, 2.0469),
    ("Djibouti", "DJ", 43.1456, 11.5886),
    ("Douala", "CM", 9.7679, 4.0511),
    ("Port Louis", "MU", 57.4989, -20.1609),
    # North and Central America, Caribbean
    ("New York", "US", -74.0060, 40.7128),
    ("Los Angeles", "US", -118.2437, 34.0522),
    ("Chicago", "US", -87.6298, 41.8781),
    ("Houston", "US", -95.3698, 29.7604),
    ("Phoenix", "US", -112.0740, 33.4484),
    ("San Francisco", "US", -122.4194, 37.7749),
    ("Seattle", "US", -122.3321, 47.6062),
    ("Denver", "US", -104.9903, 39.7392),
    ("Miami", "US", -80.1918, 25.7617),
    ("Atlanta", "US", -84.3880, 33.7490),
    ("Boston", "US", -71.0589, 42.3601),
    ("Washington", "US", -77.0369, 38.9072),
    ("Dallas", "US", -96.7970, 32.7767),
    ("Minneapolis", "US", -93.2650, 44.9778),
    ("Las Vegas", "US", -115.1398, 36.1699),
    ("Salt Lake City", "US", -111.8910, 40.7608),
    ("New Orleans", "US", -90.0715, 29.9511),
    ("Anchorage", "US", -149.9003, 61.2181),
    ("Fairbanks", "US", -147.7164, 64.8378),
    ("Nome", "US", -165.4064, 64.5011),
    ("Utqiagvik", "US", -156.7886, 71.2906),
    ("Adak", "US", -176.6581, 51.8800),
    ("Toronto", "CA", -79.3832, 43.6532),
    ("Montreal", "CA", -73.5673, 45.5017),
    ("Vancouver", "CA", -123.1207, 49.2827),
    ("Calgary", "CA", -114.0719, 51.0447),
    ("Winnipeg", "CA", -97.1384, 49.8951),
    ("Halifax", "CA", -63.5752, 44.6488),
    ("Yellowknife", "CA", -114.3718, 62.4540),
    ("Iqaluit", "CA", -68.5170, 63.7467),
    ("Whitehorse", "CA", -135.0568, 60.7212),
    ("Nuuk", "GL", -51.6941, 64.1814),
    ("Mexico City", "MX", -99.1332, 19.4326),
    ("Guadalajara", "MX", -103.3496, 20.6597),
    ("Monterrey", "MX", -100.3161, 25.6866),
    ("Cancun", "MX", -86.8515, 21.1619),
    ("Havana", "CU", -82.3666, 23.1136),
    ("Santo Domingo", "DO", -69.9312, 18.4861),
    ("Port-au-Prince", "HT", -72.3074, 18.5944),
    ("Kingston", "JM", -76.7936, 17.9714),
    ("San Juan", "PR", -66.1057, 18.4655),
    ("Guatemala City", "GT", -90.5069, 14.6349),
    ("San Jose", "CR", -84.0907, 9.9281),
    ("Panama City", "PA", -79.5167, 8.9833),
    # South America
    ("Bogota", "CO", -74.0721, 4.7110),
    ("Medellin", "CO", -75.5812, 6.2442),
    ("Caracas", "VE", -66.9036, 10.4806),
    ("Quito", "EC", -78.4678, -0.1807),
    ("Guayaquil", "EC", -79.9224, -2.1710),
    ("Lima", "PE", -77.0428, -12.0464),
    ("La Paz", "BO", -68.1193, -16.4897),
    ("Santiago", "CL", -70.6693, -33.4489),
    ("Buenos Aires", "AR", -58.3816, -34.6037),
    ("Cordoba", "AR", -64.1888, -31.4201),
    ("Montevideo", "UY", -56.1645, -34.9011),
    ("Asuncion", "PY", -57.5759, -25.2637),
    ("Sao Paulo", "BR", -46.6333, -23.5505),
    ("Rio de Janeiro", "BR", -43.1729, -22.9068),
    ("Brasilia", "BR", -47.8825, -15.7942),
    ("Salvador", "BR", -38.5016, -12.9777),
    ("Recife", "BR", -34.8770, -8.0476),
    ("Manaus", "BR", -60.0217, -3.1190),
    ("Belem", "BR", -48.4902, -1.4558),
    ("Porto Alegre", "BR", -51.2177, -30.0346),
    ("Paramaribo", "SR", -55.2038, 5.8520),
    ("Punta Arenas", "CL", -70.9171, -53.1638),
    ("Ushuaia", "AR", -68.3030, -54.8019),
    ("Hanga Roa", "CL", -109.4333, -27.1500),
    ("Stanley", "FK", -57.8517, -51.6977),
)

CITIES: Final[tuple[City, ...]] = tuple(City(*row) for row in _CITY_TABLE)
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
            f"no synthetic city named {name!r}; see noctis.synthetic.CITIES "
            f"({len(CITIES)} cities, e.g. 'Paris', 'Suva', 'Nuku'alofa')"
        ) from None


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True, slots=True)
class _Commercial:
    collection: str
    prefix: str
    weight: float
    gsd: tuple[float, float]
    width_km: tuple[float, float]
    length_km: tuple[float, float]
    platforms: tuple[str, ...]


_COMMERCIAL: Final = (
    _Commercial(
        "planet-skysat",
        "SKY",
        0.5,
        (0.5, 1.0),
        (2.5, 6.0),
        (5.0, 15.0),
        tuple(f"SkySat-C{i}" for i in range(1, 20)),
    ),
    _Commercial("maxar-wv3", "WV3", 0.3, (0.3, 0.6), (8.0, 13.1), (8.0, 15.0), ("WorldView-3",)),
    _Commercial(
        "airbus-spot", "SPOT", 0.2, (1.5, 3.0), (10.0, 15.0), (10.0, 15.0), ("SPOT-6", "SPOT-7")
    ),
)
COMMERCIAL_COLLECTIONS: Final = tuple(c.collection for c in _COMMERCIAL)


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


# --------------------------------------------------------------------------- batches

_F32 = npt.NDArray[np.float32]
_OBJ = npt.NDArray[np.object_]


@dataclass(frozen=True, eq=False)
class ArchiveBatch:
    """Consecutive rows of the archive, column by column (arrays of equal length).

    ``footprint`` is hex EWKB with SRID 4326; ``acquired_at`` ISO 8601 UTC
    strings with millisecond precision (``2019-01-06T10:31:12.123Z``);
    ``cloud_cover`` and ``gsd`` are float32 with NaN for null; ``properties``
    JSON text.
    """

    external_id: _OBJ
    collection: _OBJ
    footprint: _OBJ
    acquired_at: _OBJ
    cloud_cover: _F32
    gsd: _F32
    properties: _OBJ

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

    def geometries(self) -> _OBJ:
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


# --------------------------------------------------------------------------- geometry


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _wrap_antimeridian(geoms: _OBJ) -> _OBJ:
    """Split geometries whose longitudes leave [-180, 180] at ±180; orient CCW; SRID 4326.

    Input longitudes are continuous (e.g. 179.5..180.5); each part beyond ±180
    is shifted by ∓360.
    """
    out = np.array(geoms, dtype=object, copy=True)
    if len(out):
        bounds = shapely.bounds(out)
        crossing = np.flatnonzero((bounds[:, 0] < -180.0) | (bounds[:, 2] > 180.0))
        if len(crossing):
            sub = out[crossing]
            inside = shapely.clip_by_rect(sub, -180.0, -90.0, 180.0, 90.0)
            east = shapely.transform(
                shapely.clip_by_rect(sub, 180.0, -90.0, 540.0, 90.0), _shift(-360.0)
            )
            west = shapely.transform(
                shapely.clip_by_rect(sub, -540.0, -90.0, -180.0, 90.0), _shift(360.0)
            )
            for i, pieces in zip(
                crossing.tolist(), zip(inside, east, west, strict=True), strict=True
            ):
                parts = [
                    p
                    for piece in pieces
                    for p in shapely.get_parts(piece).tolist()
                    if p.geom_type == "Polygon" and p.area > 0.0
                ]
                out[i] = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
        out = shapely.orient_polygons(out, exterior_cw=False)
    return np.asarray(shapely.set_srid(out, SRID), dtype=object)


def _shift(dx: float) -> Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    def move(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        moved = coords.copy()
        moved[:, 0] = np.clip(np.round(moved[:, 0] + dx, _DECIMALS), -180.0, 180.0)
        return moved

    return move


def _hex_ewkb(geoms: _OBJ) -> _OBJ:
    return np.asarray(
        shapely.to_wkb(geoms, hex=True, include_srid=True, byte_order=1, output_dimension=2),
        dtype=object,
    )


def _unit_vectors(lon: npt.NDArray[np.floating[Any]], lat: npt.NDArray[np.floating[Any]]) -> Any:
    lo, la = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


# --------------------------------------------------------------------------- the tile grid

_LAT_MIN: Final = -60.0
_LAT_MAX: Final = 75.0
_TILE_KM: Final = 110.0
_TILE_STEP_KM: Final = 100.0


@dataclass(frozen=True, eq=False)
class _Grid:
    code: _OBJ  # "RRRCCC"
    lon: npt.NDArray[np.float64]  # centre
    footprint_hex: _OBJ
    crosses: npt.NDArray[np.bool_]
    city_rank: npt.NDArray[np.int64]  # 0 for the tile nearest its nearest city, then 1, ...
    city: npt.NDArray[np.int64]  # index in CITIES of the nearest city

    def __len__(self) -> int:
        return len(self.code)


@lru_cache(maxsize=1)
def _grid() -> _Grid:
    rows = round((_LAT_MAX - _LAT_MIN) / (_TILE_STEP_KM / KM_PER_DEGREE))
    step = (_LAT_MAX - _LAT_MIN) / rows
    row_lat = _LAT_MIN + step * (np.arange(rows) + 0.5)
    per_row = np.maximum(
        1, np.round(360.0 * np.cos(np.radians(row_lat)) * KM_PER_DEGREE / _TILE_STEP_KM)
    ).astype(np.int64)
    row = np.repeat(np.arange(rows), per_row)
    col = np.arange(per_row.sum()) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    lat = row_lat[row]
    lon = -180.0 + col * (360.0 / per_row[row])

    half_h = _TILE_KM / 2 / KM_PER_DEGREE
    south, north = lat - half_h, lat + half_h
    half_s = _TILE_KM / 2 / (KM_PER_DEGREE * np.cos(np.radians(south)))
    half_n = _TILE_KM / 2 / (KM_PER_DEGREE * np.cos(np.radians(north)))
    ring = np.stack(
        [
            np.stack([lon - half_s, south], axis=-1),
            np.stack([lon + half_s, south], axis=-1),
            np.stack([lon + half_n, north], axis=-1),
            np.stack([lon - half_n, north], axis=-1),
            np.stack([lon - half_s, south], axis=-1),
        ],
        axis=1,
    )
    footprints = _wrap_antimeridian(shapely.polygons(np.round(ring, _DECIMALS)))
    crosses = shapely.get_type_id(footprints) == 6

    # Nearest city of every tile (great circle), then each tile's rank around that city.
    tiles_xyz = _unit_vectors(lon, lat)
    cities_xyz = _unit_vectors(np.array([c.lon for c in CITIES]), np.array([c.lat for c in CITIES]))
    nearest = np.empty(len(lon), dtype=np.int64)
    closeness = np.empty(len(lon), dtype=np.float64)
    for a in range(0, len(lon), 8192):
        dots = tiles_xyz[a : a + 8192] @ cities_xyz.T
        nearest[a : a + 8192] = dots.argmax(axis=1)
        closeness[a : a + 8192] = dots.max(axis=1)
    by_city = np.lexsort((-closeness, nearest))
    group_start = np.searchsorted(nearest[by_city], nearest[by_city], side="left")
    rank = np.empty(len(lon), dtype=np.int64)
    rank[by_city] = np.arange(len(lon)) - group_start

    code = np.char.add(np.char.zfill(row.astype(str), 3), np.char.zfill(col.astype(str), 3)).astype(
        object
    )
    return _Grid(
        code=code,
        lon=lon,
        footprint_hex=_hex_ewkb(footprints),
        crosses=crosses,
        city_rank=rank,
        city=nearest,
    )


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True, eq=False)
class _Plan:
    """Which item comes at which row; the per-row details are drawn per block."""

    n_sentinel: int
    order: npt.NDArray[np.int64]  # row -> item; items < n_sentinel are Sentinel ones
    s2_tile: npt.NDArray[np.int64]
    s2_visit: npt.NDArray[np.int64]  # k-th visit of its tile
    city: npt.NDArray[np.int64]  # commercial item -> CITIES index
    city_spread_km: npt.NDArray[np.float64]
    ts_ms: npt.NDArray[np.int64]  # item -> epoch milliseconds, Sentinel items first


def _epoch_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * _MS_PER_DAY


def _tile_order(spec: ArchiveSpec, grid: _Grid, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Every tile, in the order tiles are taken (see the module docstring)."""
    n = len(grid)
    city_position = rng.permutation(len(CITIES))
    leading = (grid.city_rank == 0) & grid.crosses
    near = np.lexsort((city_position[grid.city], ~leading, grid.city_rank))
    anywhere = rng.permutation(n)
    near_pos = np.empty(n, dtype=np.float64)
    near_pos[near] = np.arange(n)
    any_pos = np.empty(n, dtype=np.float64)
    any_pos[anywhere] = np.arange(n)
    bias = spec.tile_city_bias
    # Merge the two streams, each advancing at its own rate; a tile comes when the
    # first of them reaches it.
    with np.errstate(divide="ignore"):
        near_time = near_pos / bias if bias > 0 else np.full(n, np.inf)
        any_time = any_pos / (1.0 - bias) if bias < 1 else np.full(n, np.inf)
    return np.lexsort((any_pos, np.minimum(near_time, any_time)))


def _plan(spec: ArchiveSpec) -> _Plan:
    grid = _grid()
    days = spec.days
    rev = spec.revisit_days
    t0 = _epoch_ms(spec.start)

    # Sentinel: whole tiles in order, each revisited every `rev` days from its phase.
    n_s2 = spec.sentinel_count
    rng = _rng(spec.seed, _S_TILES)
    phase = rng.integers(0, rev, size=len(grid))
    visits = np.where(phase < days, (days - 1 - phase) // rev + 1, 0)
    ordered = _tile_order(spec, grid, rng)
    cum = np.cumsum(visits[ordered])
    if n_s2 > (int(cum[-1]) if len(cum) else 0):
        raise ValueError(
            f"ArchiveSpec asks for {n_s2} Sentinel items but the grid holds "
            f"{int(cum[-1])} over {days} days: lower size or sentinel_share"
        )
    n_tiles = int(np.searchsorted(cum, n_s2, side="left")) + 1 if n_s2 else 0
    tiles = ordered[:n_tiles]
    take = visits[tiles].copy()
    if n_tiles:
        take[-1] -= int(cum[n_tiles - 1]) - n_s2
    s2_tile = np.repeat(tiles, take)
    s2_visit = np.arange(n_s2) - np.repeat(np.cumsum(take) - take, take)
    rng = _rng(spec.seed, _S_SENTINEL)
    jitter = np.clip(rng.normal(0.0, 3.0, size=n_s2), -15.0, 15.0) * 60_000
    tod = (10.5 * _MS_PER_HOUR - grid.lon[s2_tile] / 15.0 * _MS_PER_HOUR + jitter) % _MS_PER_DAY
    day = phase[s2_tile] + rev * s2_visit
    s2_ts = t0 + day * _MS_PER_DAY + np.floor(tod).astype(np.int64)

    # Commercial: a seeded popularity and spread per city, uniform days, 08:00-15:00 local.
    n_c = spec.commercial_count
    rng = _rng(spec.seed, _S_COMMERCIAL)
    popularity = rng.lognormal(0.0, 1.0, size=len(CITIES))
    spread = np.clip(rng.lognormal(math.log(10.0), 0.5, size=len(CITIES)), 3.0, 40.0)
    c_city = rng.choice(len(CITIES), size=n_c, p=popularity / popularity.sum())
    c_day = rng.integers(0, days, size=n_c)
    local = rng.uniform(8.0, 15.0, size=n_c)
    city_lon = np.array([c.lon for c in CITIES])[c_city]
    c_tod = ((local - city_lon / 15.0) * _MS_PER_HOUR) % _MS_PER_DAY
    c_ts = t0 + c_day * _MS_PER_DAY + np.floor(c_tod).astype(np.int64)
    by_time = np.argsort(c_ts, kind="stable")  # number commercial items in time order
    c_city, c_ts = c_city[by_time], c_ts[by_time]

    ts = np.concatenate([s2_ts, c_ts]).astype(np.int64)
    order = np.argsort(ts, kind="stable").astype(np.int64)
    return _Plan(
        n_sentinel=n_s2,
        order=order,
        s2_tile=s2_tile.astype(np.int64),
        s2_visit=s2_visit.astype(np.int64),
        city=c_city.astype(np.int64),
        city_spread_km=spread,
        ts_ms=ts,
    )


# --------------------------------------------------------------------------- rows


@lru_cache(maxsize=1)
def _fragments() -> dict[str, _OBJ]:
    """Pre-built string pieces, indexed by tile, city, collection or platform."""
    grid = _grid()
    js = json.dumps
    cities = CITIES
    platforms = [p for c in _COMMERCIAL for p in c.platforms]
    return {
        "s2_id": np.array([f"S2_T{code}_" for code in grid.code.tolist()], dtype=object),
        "s2_props": np.array(
            [f', "tile": {js(code)}}}' for code in grid.code.tolist()], dtype=object
        ),
        "s2_platform": np.array(
            ['{"platform": "sentinel-2a"', '{"platform": "sentinel-2b"'], dtype=object
        ),
        "city_code": np.array([f"_{c.code}_" for c in cities], dtype=object),
        "city_props": np.array(
            [f', "city": {js(c.name)}, "country": {js(c.country)}}}' for c in cities],
            dtype=object,
        ),
        "prefix": np.array([c.prefix for c in _COMMERCIAL], dtype=object),
        "collection": np.array([c.collection for c in _COMMERCIAL], dtype=object),
        "platform": np.array([f'{{"platform": {js(p)}' for p in platforms], dtype=object),
    }


def _block(spec: ArchiveSpec, plan: _Plan, number: int) -> ArchiveBatch:
    rows = plan.order[number * _BLOCK : (number + 1) * _BLOCK]
    size = len(rows)
    frag = _fragments()
    grid = _grid()
    rng = _rng(spec.seed, _S_BLOCK, number)
    # Every draw is made for every row of the block, whatever its kind.
    s2_cloud = rng.beta(0.6, 0.7, size=size)
    c_cloud = rng.beta(0.8, 3.0, size=size)
    null_cloud = rng.random(size) < spec.cloud_null_share
    kind = rng.choice(len(_COMMERCIAL), size=size, p=[c.weight for c in _COMMERCIAL])
    shape = rng.random((size, 4))  # width, length, gsd, platform
    angle = rng.uniform(-25.0, 25.0, size=size)
    offset = np.clip(rng.standard_normal((size, 2)), -3.0, 3.0)

    s2 = rows < plan.n_sentinel
    external_id = np.empty(size, dtype=object)
    collection = np.empty(size, dtype=object)
    footprint = np.empty(size, dtype=object)
    properties = np.empty(size, dtype=object)
    gsd = np.empty(size, dtype=np.float32)
    cloud = np.where(s2, s2_cloud, c_cloud)

    ts = plan.ts_ms[rows]
    acquired = ts.astype("datetime64[ms]")
    day = acquired.astype("datetime64[D]")

    # Sentinel rows: everything but the date and the platform is the tile's.
    if s2.any():
        i = rows[s2]
        tile = plan.s2_tile[i]
        yyyymmdd = np.char.replace(np.datetime_as_string(day[s2]), "-", "").astype(object)
        external_id[s2] = frag["s2_id"][tile] + yyyymmdd
        collection[s2] = SENTINEL_COLLECTION
        footprint[s2] = grid.footprint_hex[tile]
        properties[s2] = frag["s2_platform"][plan.s2_visit[i] % 2] + frag["s2_props"][tile]
        gsd[s2] = 10.0

    # Commercial rows: a rotated rectangle near the item's city.
    c = ~s2
    if c.any():
        j = rows[c] - plan.n_sentinel
        cities = plan.city[j]
        kind_c = kind[c]
        ranges = np.array([[*k.width_km, *k.length_km, *k.gsd] for k in _COMMERCIAL])[kind_c]
        u = shape[c]
        width = ranges[:, 0] + u[:, 0] * (ranges[:, 1] - ranges[:, 0])
        length = np.maximum(width, ranges[:, 2] + u[:, 1] * (ranges[:, 3] - ranges[:, 2]))
        gsd[c] = np.round(ranges[:, 4] + u[:, 2] * (ranges[:, 5] - ranges[:, 4]), 2)
        n_platforms = np.array([len(k.platforms) for k in _COMMERCIAL])
        first_platform = np.cumsum(n_platforms) - n_platforms
        platform = first_platform[kind_c] + np.floor(u[:, 3] * n_platforms[kind_c]).astype(np.int64)

        city_lon = np.array([x.lon for x in CITIES])[cities]
        city_lat = np.array([x.lat for x in CITIES])[cities]
        spread = plan.city_spread_km[cities]
        lat0 = city_lat + offset[c, 1] * spread / KM_PER_DEGREE
        lon0 = city_lon + offset[c, 0] * spread / (KM_PER_DEGREE * np.cos(np.radians(lat0)))
        lon0 = (lon0 + 180.0) % 360.0 - 180.0
        theta = np.radians(angle[c])
        half = np.stack([width / 2, length / 2], axis=-1)
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=np.float64)
        local = corners[None, :, :] * half[:, None, :]  # km, counter-clockwise
        cos_t, sin_t = np.cos(theta)[:, None], np.sin(theta)[:, None]
        east = local[..., 0] * cos_t - local[..., 1] * sin_t
        north = local[..., 0] * sin_t + local[..., 1] * cos_t
        ring = np.stack(
            [
                lon0[:, None] + east / (KM_PER_DEGREE * np.cos(np.radians(lat0)))[:, None],
                lat0[:, None] + north / KM_PER_DEGREE,
            ],
            axis=-1,
        )
        geoms = _wrap_antimeridian(shapely.polygons(np.round(ring, _DECIMALS)))
        footprint[c] = _hex_ewkb(geoms)
        serial = np.char.zfill((j + 1).astype(str), 8).astype(object)
        external_id[c] = frag["prefix"][kind_c] + frag["city_code"][cities] + serial
        collection[c] = frag["collection"][kind_c]
        properties[c] = frag["platform"][platform] + frag["city_props"][cities]

    cloud = np.round(cloud * 100.0, 2).astype(np.float32)
    cloud[null_cloud] = np.nan
    return ArchiveBatch(
        external_id=external_id,
        collection=collection,
        footprint=footprint,
        acquired_at=np.datetime_as_string(acquired, unit="ms", timezone="UTC").astype(object),
        cloud_cover=cloud,
        gsd=gsd,
        properties=properties,
    )


def generate(spec: ArchiveSpec, *, batch_size: int = 50_000) -> Iterator[ArchiveBatch]:
    """The archive of ``spec``, in acquisition order, ``batch_size`` rows at a time.

    Rows do not depend on ``batch_size``; only the last batch is shorter.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    plan = _plan(spec)
    pending: list[ArchiveBatch] = []
    held = 0
    for number in range(-(-spec.size // _BLOCK)):
        block = _block(spec, plan, number)
        pending.append(block)
        held += len(block)
        while held >= batch_size:
            merged = pending[0] if len(pending) == 1 else ArchiveBatch.concat(pending)
            yield merged.slice(0, batch_size)
            rest = merged.slice(batch_size, held)
            pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if held:
        yield pending[0] if len(pending) == 1 else ArchiveBatch.concat(pending)


# --------------------------------------------------------------------------- loading


async def load_archive(
    conn: asyncpg.Connection,
    spec: ArchiveSpec,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 50_000,
    table: str = "archive_item",
    schema_name: str | None = None,
) -> int:
    """COPY the archive of ``spec`` into ``table``; returns the number of rows written.

    One COPY statement, so all or nothing. Batches are generated in a worker
    thread, one ahead, while the server ingests the previous one.
    ``progress(rows_sent, spec.size)`` is called after each batch is handed
    over. Creates no table and no index.
    """
    if spec.size == 0:
        return 0
    batches = generate(spec, batch_size=batch_size)
    sent = 0

    def encode_next() -> tuple[int, bytes] | None:
        batch = next(batches, None)
        return None if batch is None else (len(batch), batch.to_copy_text().encode())

    async def chunks() -> AsyncGenerator[bytes, None]:
        nonlocal sent
        upcoming = asyncio.ensure_future(asyncio.to_thread(encode_next))
        try:
            while (ready := await upcoming) is not None:
                upcoming = asyncio.ensure_future(asyncio.to_thread(encode_next))
                rows, data = ready
                yield data
                sent += rows
                if progress is not None:
                    progress(sent, spec.size)
        finally:
            upcoming.cancel()

    source = chunks()
    try:
        status = await conn.copy_to_table(
            table,
            source=source,
            columns=list(COPY_COLUMNS),
            schema_name=schema_name,
            format="text",
        )
    finally:
        await source.aclose()
    return int(status.split()[-1])


async def load_archive_url(
    url: str,
    spec: ArchiveSpec,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 50_000,
    table: str = "archive_item",
    schema_name: str | None = None,
) -> int:
    """:func:`load_archive` over a new connection to ``url`` (``postgresql://...``).

    A SQLAlchemy-style ``postgresql+asyncpg://`` URL is accepted too.
    """
    dsn = re.sub(r"^postgres(?:ql)?\+[a-z0-9_]+://", "postgresql://", url)
    conn = await asyncpg.connect(dsn)
    try:
        return await load_archive(
            conn,
            spec,
            progress=progress,
            batch_size=batch_size,
            table=table,
            schema_name=schema_name,
        )
    finally:
        await conn.close()


# --------------------------------------------------------------------------- AOIs


def _place(where: str | City) -> City:
    return where if isinstance(where, City) else city(where)


def point_aoi(where: str | City) -> shapely.Point:
    """The city's centre as a Point (SRID 4326)."""
    c = _place(where)
    return shapely.set_srid(shapely.Point(c.lon, c.lat), SRID)


def box_aoi(lon: float, lat: float, *, km: float) -> shapely.Polygon | shapely.MultiPolygon:
    """A ``km`` by ``km`` square centred on (lon, lat), split at the antimeridian if needed."""
    if km <= 0:
        raise ValueError(f"km must be > 0, got {km}")
    half_lat = km / 2 / KM_PER_DEGREE
    if abs(lat) + half_lat >= 90.0:
        raise ValueError(f"a {km} km square at latitude {lat} reaches a pole")
    half_lon = km / 2 / (KM_PER_DEGREE * math.cos(math.radians(lat)))
    square = shapely.box(
        round(lon - half_lon, _DECIMALS),
        round(lat - half_lat, _DECIMALS),
        round(lon + half_lon, _DECIMALS),
        round(lat + half_lat, _DECIMALS),
    )
    return _wrap_antimeridian(np.array([square], dtype=object))[0]


def city_aoi(where: str | City, *, km: float = 20.0) -> shapely.Polygon | shapely.MultiPolygon:
    """A ``km`` square on the city: a typical city study."""
    c = _place(where)
    return box_aoi(c.lon, c.lat, km=km)


def region_aoi(where: str | City, *, km: float = 250.0) -> shapely.Polygon | shapely.MultiPolygon:
    """A ``km`` square on the city: a regional study."""
    c = _place(where)
    return box_aoi(c.lon, c.lat, km=km)


def country_aoi(
    lon: float, lat: float, *, km: float = 1000.0, vertices: int = 500, seed: int = 0
) -> shapely.Polygon | shapely.MultiPolygon:
    """An irregular country-like polygon ~``km`` across with ``vertices`` vertices.

    Star-shaped around (lon, lat): strictly increasing angles and positive radii,
    so it is always simple. Distances are scaled at the centre's latitude.
    """
    if vertices < 3:
        raise ValueError(f"a polygon needs at least 3 vertices, got {vertices}")
    if km <= 0:
        raise ValueError(f"km must be > 0, got {km}")
    rng = _rng(seed, _S_COUNTRY)
    step = 2 * math.pi / vertices
    theta = (np.arange(vertices) + rng.uniform(-0.35, 0.35, size=vertices)) * step
    radius = np.ones(vertices)
    for k in range(2, 9):  # smooth coastline-like lobes
        radius += rng.uniform(0.0, 0.22 / k**0.7) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    radius = np.clip(radius, 0.3, None) * (1.0 + 0.04 * rng.standard_normal(vertices))
    radius *= km / 2 / radius.mean()
    north = radius * np.sin(theta) / KM_PER_DEGREE
    east = radius * np.cos(theta) / (KM_PER_DEGREE * math.cos(math.radians(lat)))
    if abs(lat) + float(np.abs(north).max()) >= 90.0:
        raise ValueError(f"a {km} km country at latitude {lat} reaches a pole")
    ring = np.round(np.stack([lon + east, lat + north], axis=-1), _DECIMALS)
    polygon = shapely.Polygon(np.vstack([ring, ring[:1]]))
    return _wrap_antimeridian(np.array([polygon], dtype=object))[0]
