"""The study's result: the flow's return value, the markdown artifact and the event payload."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict

from noctis.repositories import StudyItem


class StudyResult(BaseModel):
    """What one imagery-finder-study run did."""

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
    flow_run_id: str | None
    notified: bool


def _pct(value: float | None) -> str:
    return "n/a (point AOI)" if value is None else f"{value:.1%}"


def render_markdown(result: StudyResult, top_items: list[StudyItem]) -> str:
    lines = [
        f"# ImageryFinder {result.imagery_finder_pk} for Dream {result.dream_pk}",
        "",
        "| | |",
        "|---|---|",
        f"| Finder | {result.imagery_finder_pk} {result.finder_name or ''} "
        f"({result.location_type}) |",
        f"| Dream | {result.dream_pk} {result.dream_name} |",
        f"| Window (UTC days, inclusive) | {result.window} |",
        f"| Matched items | {result.matched_count} |",
        f"| New this run | {result.new_count} |",
        f"| Union coverage of the AOI | {_pct(result.coverage)} |",
        "",
    ]
    if top_items:
        lines += [
            f"## Top {len(top_items)} items by coverage",
            "",
            "| Item | Collection | Acquired (UTC) | Cloud % | Coverage |",
            "|---|---|---|---|---|",
        ]
        for item in top_items:
            cloud = "?" if item.cloud_cover is None else f"{item.cloud_cover:.0f}"
            lines.append(
                f"| {item.external_id} | {item.collection} | "
                f"{item.acquired_at:%Y-%m-%d %H:%M} | {cloud} | {_pct(item.coverage)} |"
            )
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
        "window": result.window,
    }
