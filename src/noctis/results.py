"""A study's result: the flow's return value, and how it reads (the markdown artifact, the
terminal tables of :mod:`noctis.console`, the event payload) from one set of rows."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict

from noctis.repositories import StudyItem


class StudyResult(BaseModel):
    """What one imagery-finder-study run did. ``*_pk`` fields are the ids Prefect and Augur see."""

    model_config = ConfigDict(frozen=True)

    imagery_finder_pk: int
    dream_pk: int
    finder_name: str | None
    dream_name: str
    location_type: str
    start_date: date | None
    end_date: date | None
    window: str
    matched_count: int
    """Lookup rows the study has now (new and earlier)."""
    new_count: int
    coverage: float | None
    """Share of the AOI covered by at least one matched item; None for a point AOI."""
    suspect_count: int = 0
    """Matched items whose footprint has a non-finite coordinate: recorded, with no coverage."""
    plan_scenes: int | None = None
    """Scenes in the study's coverage plan of the whole window (:mod:`noctis.plans`); None for
    a point AOI (no coverage, no plan)."""
    plan_coverage: float | None = None
    """Share of the AOI the plan covers (in the terms of ``coverage``)."""
    plan_share: float | None = None
    """Share of what all the matched items cover that the plan covers (the target's base)."""
    plan_lower_bound: int | None = None
    """No selection of the study's items covering as much has fewer scenes than this."""
    flow_run_id: str | None
    notified: bool
    """Whether Augur acknowledged the ``completed`` notification (False when
    NOCTIS_AUGUR_API_URL is empty and notifications are skipped)."""


ITEM_COLUMNS = ("Item", "Collection", "Acquired (UTC)", "Cloud %", "Coverage")


def share(value: float | None) -> str:
    """A share of the AOI, as every view shows it: ``46.8%``, or ``n/a (point AOI)``."""
    return "n/a (point AOI)" if value is None else f"{value:.1%}"


def summary_rows(result: StudyResult) -> list[tuple[str, str]]:
    """(label, value) rows describing what a run found, for the artifact and the terminal."""
    return [
        ("Finder", f"{result.imagery_finder_pk} {result.finder_name or ''} "
                   f"({result.location_type})"),
        ("Dream", f"{result.dream_pk} {result.dream_name}"),
        ("Window (UTC days, inclusive)", result.window),
        ("Matched items", str(result.matched_count)),
        ("New this run", str(result.new_count)),
        ("Union coverage of the AOI", share(result.coverage)),
        ("Suspect footprints (non-finite, no coverage)", str(result.suspect_count)),
        ("Coverage plan", plan_text(result)),
    ]  # fmt: skip


def plan_text(result: StudyResult) -> str:
    """The plan in one line: ``12 scenes cover 70.6% of the AOI (99.2% of the matches' union;
    at least 6 needed)``."""
    if result.plan_scenes is None:
        return "n/a (point AOI)"
    if not result.plan_scenes:
        return "no scene (nothing matched covers the AOI)"
    scenes = "1 scene covers" if result.plan_scenes == 1 else f"{result.plan_scenes} scenes cover"
    return (
        f"{scenes} {share(result.plan_coverage)} of the AOI "
        f"({share(result.plan_share)} of the matches' union; at least "
        f"{result.plan_lower_bound} needed)"
    )


def item_rows(items: list[StudyItem]) -> list[tuple[str, ...]]:
    """One row per item, in :data:`ITEM_COLUMNS` order."""
    return [
        (
            item.external_id,
            item.collection,
            f"{item.acquired_at:%Y-%m-%d %H:%M}",
            "?" if item.cloud_cover is None else f"{item.cloud_cover:.0f}",
            share(item.coverage),
        )
        for item in items
    ]


def render_markdown(result: StudyResult, top_items: list[StudyItem]) -> str:
    lines = [
        f"# ImageryFinder {result.imagery_finder_pk} for Dream {result.dream_pk}",
        "",
        "| | |",
        "|---|---|",
        *(f"| {label} | {value} |" for label, value in summary_rows(result)),
        "",
    ]
    if top_items:
        lines += [
            f"## Top {len(top_items)} items by coverage",
            "",
            "| " + " | ".join(ITEM_COLUMNS) + " |",
            "|" + "---|" * len(ITEM_COLUMNS),
            *("| " + " | ".join(row) + " |" for row in item_rows(top_items)),
        ]
    else:
        lines.append("No archive item matched.")
    return "\n".join(lines) + "\n"


def artifact_key(result: StudyResult) -> str:
    return f"imagery-finder-{result.imagery_finder_pk}-dream-{result.dream_pk}"


def event_payload(result: StudyResult) -> dict[str, object]:
    return {
        "matched_count": result.matched_count,
        "new_count": result.new_count,
        "coverage": result.coverage,
        "suspect_count": result.suspect_count,
        "plan_scenes": result.plan_scenes,
        "plan_coverage": result.plan_coverage,
        "window": result.window,
    }
