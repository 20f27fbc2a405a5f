"""A study's result on a terminal (rich tables), for the CLI and the demo."""

from __future__ import annotations

from rich.table import Table

from noctis.repositories import StudyItem
from noctis.results import ITEM_COLUMNS, StudyResult, item_rows, summary_rows


def result_table(result: StudyResult) -> Table:
    table = Table(title=f"ImageryFinder {result.imagery_finder_pk} for Dream {result.dream_pk}")
    table.add_column("", style="bold")
    table.add_column("")
    notified = "yes" if result.notified else "no (NOCTIS_AUGUR_API_URL is empty)"
    rows = [
        *summary_rows(result),
        ("Augur notified", notified),
        ("Flow run", result.flow_run_id or "-"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


def items_table(
    items: list[StudyItem], *, title: str = "Top items by coverage of the AOI"
) -> Table:
    table = Table(title=title)
    for column in ITEM_COLUMNS:
        table.add_column(column)
    for row in item_rows(items):
        table.add_row(*row)
    return table
