"""Repositories: the only place where Noctis writes SQL.

- :mod:`.finders`: dreams and imagery finders (lookups by id, the location report).
- :mod:`.archive`: the match rule and the archive search.
- :mod:`.lookups`: a study's lookup rows: the set-based link step, coverage, items.
- :mod:`.geo`: areas and repairs as SQL expressions.

Repositories take a session and never commit: the unit of work
(:mod:`noctis.unit_of_work`) owns the transaction.
"""

from noctis.repositories.archive import ArchiveRepository, MatchCriteria, match_conditions
from noctis.repositories.finders import DreamRepository, FinderReport, ImageryFinderRepository
from noctis.repositories.lookups import LinkResult, LookupRepository, StudyItem

__all__ = [
    "ArchiveRepository",
    "DreamRepository",
    "FinderReport",
    "ImageryFinderRepository",
    "LinkResult",
    "LookupRepository",
    "MatchCriteria",
    "StudyItem",
    "match_conditions",
]
