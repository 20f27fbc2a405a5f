"""Repositories: the only place where Noctis writes SQL.

- :mod:`.studies`: dreams and imagery finders (lookups by pk, the location report).
- :mod:`.archive`: the match rule, the archive search, the set-based link step
  and the coverage summaries.

Repositories take a session and never commit: the unit of work
(:mod:`noctis.unit_of_work`) owns the transaction.
"""

from noctis.repositories.archive import (
    ArchiveRepository,
    LinkResult,
    LookupRepository,
    MatchCriteria,
    StudyItem,
    match_conditions,
)
from noctis.repositories.studies import DreamRepository, ImageryFinderRepository, LocationReport

__all__ = [
    "ArchiveRepository",
    "DreamRepository",
    "ImageryFinderRepository",
    "LinkResult",
    "LocationReport",
    "LookupRepository",
    "MatchCriteria",
    "StudyItem",
    "match_conditions",
]
