"""A study's result and a load's summary on a terminal (rich tables), for the CLI and the demo."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from noctis.loader import LoadSummary
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


def load_table(summary: LoadSummary) -> Table:
    """What ``noctis archive load`` did: one row per file (its name; ``--json`` has the paths)."""
    table = Table(title="Scenes loaded into the archive")
    names = ("read", "inserted", "updated", "unchanged", "skipped")
    for column in ("file", *names, "s", "items/s"):
        table.add_column(column, justify="left" if column == "file" else "right", no_wrap=True)

    def row(label: str, counts: list[int], seconds: float) -> list[str]:
        rate = f"{counts[0] / seconds:,.0f}" if seconds > 0 else "-"
        return [label, *(f"{c:,}" for c in counts), f"{seconds:.2f}", rate]

    for f in summary.files:
        table.add_row(*row(Path(f.path).name, [getattr(f, n) for n in names], f.seconds))
    if len(summary.files) > 1:
        totals = [summary.total(n) for n in names]
        table.add_row(*row("total", totals, summary.seconds), style="bold")
    return table
