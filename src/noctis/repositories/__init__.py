"""Repositories: the only place where Noctis writes SQL.

- :mod:`.finders`: dreams and imagery finders (lookups by id, the location report).
- :mod:`.archive`: the match rule and the archive search.
- :mod:`.lookups`: a study's lookup rows: the set-based link step, coverage, items.
- :mod:`.plans`: a study's coverage plans: the candidate scenes, the stored plans.
- :mod:`.geo`: areas and repairs as SQL expressions.
- :mod:`.union`: a study's union coverage as one statement.
- :mod:`.keys`: the rows of one study (the filter every repository shares).
- :mod:`.standing`: the standing studies, the change queue and the set-based standing match.
- :mod:`.outbox`: the notification outbox (written with the study, taken ``FOR UPDATE SKIP
  LOCKED`` by its senders).
- :mod:`.scenes`: scenes into the archive (``noctis archive load``): COPY, then one upsert.
- :mod:`.indexes`: whether the spatial GiST indexes still find every row
  (``noctis db check-indexes``).

Repositories take a session and never commit: the unit of work
(:mod:`noctis.unit_of_work`) owns the transaction.
"""

from noctis.repositories.archive import ArchiveRepository, MatchCriteria, match_conditions
from noctis.repositories.finders import DreamRepository, FinderReport, ImageryFinderRepository
from noctis.repositories.indexes import IndexCheck, IndexRepository, SpatialIndex
from noctis.repositories.lookups import LinkResult, LookupRepository, StudyItem
from noctis.repositories.outbox import Attempt, OutboxEntry, OutboxMessage, OutboxRepository
from noctis.repositories.plans import Candidates, PlannedItem, PlanRepository, StoredSlice
from noctis.repositories.scenes import SceneRepository, Written
from noctis.repositories.standing import StandingRepository, StandingState, Study

__all__ = [
    "ArchiveRepository",
    "Attempt",
    "Candidates",
    "DreamRepository",
    "FinderReport",
    "ImageryFinderRepository",
    "IndexCheck",
    "IndexRepository",
    "LinkResult",
    "LookupRepository",
    "MatchCriteria",
    "OutboxEntry",
    "OutboxMessage",
    "OutboxRepository",
    "PlanRepository",
    "PlannedItem",
    "SceneRepository",
    "SpatialIndex",
    "StandingRepository",
    "StandingState",
    "StoredSlice",
    "Study",
    "StudyItem",
    "Written",
    "match_conditions",
]
