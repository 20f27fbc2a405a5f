"""A study's result and the outbox on a terminal (rich tables), for the CLI and the demo."""

from __future__ import annotations

import json
from dataclasses import asdict

from rich.table import Table

from noctis.outbox import OutboxStatus
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


def outbox_json(status: OutboxStatus) -> str:
    """``noctis outbox status --json``: the counts and the failing and dead rows."""
    return json.dumps(
        {
            "counts": status.counts,
            "failing": [asdict(e) for e in status.failing],
            "dead": [asdict(e) for e in status.dead],
        },
        default=str,  # datetimes as ISO text
    )


def outbox_tables(status: OutboxStatus) -> list[Table]:
    """The outbox for a terminal: counts, then the failing and the dead rows."""
    counts = status.counts
    summary = Table(title="Notifications for Augur (the outbox)")
    for column in ("pending", "of which failing", "delivered (kept)", "dead", "oldest pending"):
        summary.add_column(column)
    oldest = counts["oldest_pending"]
    summary.add_row(
        str(counts["pending"]),
        str(counts["failing"]),
        str(counts["delivered"]),
        str(counts["dead"]),
        "-" if oldest is None else f"{oldest:%Y-%m-%d %H:%M:%S %Z}",
    )
    tables = [summary]
    for title, entries in (("Failing (retried)", status.failing), ("Dead", status.dead)):
        if not entries:
            continue
        table = Table(title=title)
        for column in ("id", "key", "attempts", "written", "last error"):
            table.add_column(column)
        for e in entries:
            written = f"{e.created_at:%Y-%m-%d %H:%M:%S}"
            table.add_row(str(e.id), e.key, str(e.attempts), written, e.last_error or "")
        tables.append(table)
    return tables
