"""The rows of one study (a finder for a dream): the one filter every repository shares.

A study is keyed by ``(dream_id, imagery_finder_id)`` in ``archive_lookup_item`` (its matches),
``coverage_plan`` (its stored plans) and ``standing_study`` (its standing); each table has the
two columns by those names.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement

from noctis.models import ArchiveLookupItem, CoveragePlan, StandingStudy

StudyTable = type[ArchiveLookupItem] | type[CoveragePlan] | type[StandingStudy]


def of_study(
    table: StudyTable, *, finder_id: int, dream_id: int
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The conditions that keep ``table``'s rows of one study: ``.where(*of_study(...))``."""
    return (table.dream_id == dream_id, table.imagery_finder_id == finder_id)
