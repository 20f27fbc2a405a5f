"""A study's result, its coverage plan, the outbox, a load's summary and a standing pass on a
terminal (rich tables), for the CLI and the demo."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table

from noctis.loader import LoadSummary
from noctis.outbox import OutboxStatus
from noctis.plans import StudyPlan
from noctis.repositories import StudyItem
from noctis.results import ITEM_COLUMNS, StudyResult, item_rows, share, summary_rows
from noctis.standing import PassReport


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
    columns = ["pending", "of which failing", "delivered (kept)", "dead", "oldest pending"]
    oldest, waiting = counts["oldest_pending"], counts.get("waiting_until")
    cells = [
        str(counts["pending"]),
        str(counts["failing"]),
        str(counts["delivered"]),
        str(counts["dead"]),
        "-" if oldest is None else f"{oldest:%Y-%m-%d %H:%M:%S %Z}",
    ]
    if waiting is not None:  # Augur's Retry-After: nothing is sent before then
        columns.append("Augur asked to wait until")
        cells.append(f"{waiting:%Y-%m-%d %H:%M:%S %Z}")
    for column in columns:
        summary.add_column(column)
    summary.add_row(*cells)
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


def pass_summary(report: PassReport) -> dict[str, Any]:
    """A standing pass as plain data (``noctis standing match --json``)."""
    data = asdict(report)
    data["studies"] = len(report.studies)
    data["seconds"] = round(report.seconds, 3)
    return data


def pass_table(report: PassReport, *, augur: bool) -> Table:
    table = Table(title="Standing match")
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    delivered = f"{report.delivered:,}" if augur else "- (NOCTIS_AUGUR_API_URL is empty)"
    rows = [
        ("Standing studies", f"{report.standing:,}"),
        ("Scenes matched", f"{report.scenes:,}"),
        ("Batches", f"{report.batches:,}"),
        ("Studies updated", f"{len(report.studies):,}"),
        ("Lookup rows added", f"{report.new:,}"),
        ("Lookup rows removed", f"{report.removed:,}"),
        ("Notifications", f"{report.notifications:,}"),
        ("Delivered to Augur", delivered),
        ("Waiting in the outbox", f"{report.undelivered:,}"),
        ("Scenes still queued", f"{report.backlog:,}"),
        ("Seconds", f"{report.seconds:.2f}"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


def plan_tables(planned: StudyPlan) -> list[Table]:
    """A study's coverage plan: one row per slice, then the scenes of a plan of one slice."""
    plan = planned.plan
    title = (
        f"Coverage plan of ImageryFinder {planned.study.finder_id} for Dream "
        f"{planned.study.dream_id}, per {plan.options.per}: target {plan.options.target:.1%} of "
        f"the {share(plan.aoi_share(plan.union_m2))} of the AOI its {len(planned.candidates):,} "
        "scenes cover"
    )
    slices = Table(title=title)
    for column in ("Slice (UTC days)", "Scenes", "At least", "Of the union", "Of the AOI", ""):
        slices.add_column(column, justify="left" if not column or column[0] == "S" else "right")
    for part in plan.slices:
        slices.add_row(
            str(part.slice),
            str(len(part.scenes)),
            str(part.lower_bound),
            "-" if plan.share(part.covered_m2) is None else share(plan.share(part.covered_m2)),
            share(plan.aoi_share(part.covered_m2)),
            "" if part.reached else "target not reached",
        )
    tables = [slices]
    if len(plan.slices) == 1 and plan.slices[0].scenes:
        scenes = Table(title="The scenes, in the order the plan takes them")
        for column in ("#", "Item", "Acquired (UTC)", "Cloud %", "Adds (of the AOI)"):
            scenes.add_column(column)
        for rank, scene in enumerate(plan.slices[0].scenes, start=1):
            item = planned.item(scene.index)
            scenes.add_row(
                str(rank),
                item.external_id,
                f"{item.acquired_at:%Y-%m-%d %H:%M}",
                "?" if item.cloud_cover is None else f"{item.cloud_cover:.0f}",
                share(plan.aoi_share(scene.gain_m2)),
            )
        tables.append(scenes)
    return tables


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
