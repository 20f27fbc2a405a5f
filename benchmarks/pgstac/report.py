"""A run as its section of RESULTS.md, and as JSON."""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any, Final

from pypgstac import __version__ as PYPGSTAC_VERSION

from benchmarks.db import (
    Build,
    size_label,
)
from benchmarks.pgstac.load import PgstacLoad
from benchmarks.pgstac.outcomes import Explained, Outcome, Run
from benchmarks.pgstac.queries import (
    ANTIMERIDIAN,
    ANTIMERIDIAN_KM,
    CLOUD_MAX,
    LINK,
    MATCH,
    NESTED_MIN_MS,
    NOHYDRATE,
    PGSTAC,
    PROBED,
    search_set,
    searches_run,
)
from benchmarks.sections import replace_section

RESULTS: Final = Path(__file__).parent.with_name("RESULTS.md")
MARKERS: Final = "<!-- pgstac-{size}:begin -->", "<!-- pgstac-{size}:end -->"
"""Each archive size has its own section of RESULTS.md."""


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:,.1f}" if ms < 100 else f"{ms:,.0f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "-"


SHORT: Final = {PGSTAC: "pgstac", NOHYDRATE: "nohydrate"}
"""Each pgstac mode in a ratio's column header."""
NOT_RUN: Final = (
    "pgstac's default mode (hydrated items) was not run at this size (`--searches nohydrate`): "
    "it builds every matched item's JSON hydrated against its collection's base item, row by "
    "row, and at 5M items it alone would take about an hour of the run, so only nohydrate is "
    "timed, compared with Noctis' ids and taken apart below."
)
"""The section's word on a run without the default mode."""


def _same(outcome: Outcome, modes: tuple[str, ...]) -> str:
    verdicts = [("yes" if outcome.equal[m] else f"**NO** ({outcome.found[m]:,})") for m in modes]
    return " / ".join(verdicts)


def _cells(values: list[str]) -> str:
    return " | ".join(values)


def command_line(r: Run, *, write: bool = False) -> str:
    """The command that measures ``r`` again (``--searches`` when not the default)."""
    line = f"uv run python -m benchmarks.pgstac --size {size_label(r.size)} --runs {r.runs}"
    searches = search_set(r.searches)
    if searches != "all":
        line += f" --searches {searches}"
    return line + (" --write" if write else "")


def report(r: Run, *, command: str | None = None) -> str:
    begin, end = (m.format(size=size_label(r.size)) for m in MARKERS)
    label = size_label(r.size)
    command = command or command_line(r)
    modes = searches_run(r.searches)
    shorts = [SHORT[m] for m in modes]
    load = r.load
    all_equal = all(all(o.equal.values()) for o in r.outcomes)
    lines = [
        begin,
        f"## pgstac side by side, {label} items, on {os.cpu_count()} shared cores "
        "(`benchmarks/pgstac/`)",
        "",
        f"`{command}`, {r.day or time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores shared "
        f"with other jobs (load average {r.load_average[0]:.1f} at the start, "
        f"{r.load_average[1]:.1f} at the end: the ratios, measured taking turns, say more "
        "than the absolute times), "
        f"Python {platform.python_version()}, PostgreSQL {r.server_version}, PostGIS "
        f"{r.postgis}, pgstac {load.version} (pypgstac {PYPGSTAC_VERSION}), both databases on "
        "one durable server (fsync on). Median of "
        f"{r.runs} runs after a warm-up, the approaches taking turns.",
        "",
        f"The same {load.items:,} items in both: Noctis' archive built by `build_archive` (COPY "
        f"{r.build.copy_s:.1f} s, GiST index {r.build.index_s:.1f} s, ANALYZE "
        f"{r.build.analyze_s:.1f} s), then read back as STAC items and loaded by pypgstac's "
        f"`Loader.load_items` in {load.load_s:.1f} s (plus VACUUM ANALYZE {load.analyze_s:.1f} "
        f"s; `pypgstac migrate` {load.migrate_s:.1f} s) into {load.collections} collections, "
        f"{load.partitions} partitions (no `partition_trunc`: one per collection). Sizes: "
        f"Noctis {r.build.table_bytes / 1e6:.0f} MB heap + "
        f"{(r.build.gist_bytes + r.build.other_index_bytes) / 1e6:.0f} MB indexes, pgstac "
        f"{load.table_bytes / 1e6:.0f} MB + {load.index_bytes / 1e6:.0f} MB.",
        "",
        "pgstac's search, as sent: `intersects` = the AOI, `datetime` = "
        "`<start>T00:00:00.000000Z/<end>T23:59:59.999999Z` (Noctis' exclusive end less one "
        'microsecond), `fields` = `{"include": ["id"]}`, `limit` = '
        f"{r.size:,} (the archive's size, so one page holds every match: no `next` link, "
        "checked), the cloud case with the cql2-json filter `eo:cloud_cover <= "
        f"{CLOUD_MAX:g}`; *nohydrate* is pgstac at its documented best for ids only: it adds "
        '`"conf": {{"nohydrate": true}}` (no item hydration) and runs with `pgstac.readonly` = '
        "`on` (no upsert of the search into `pgstac.searches`: no write, no commit). Otherwise "
        "pgstac's settings as `pypgstac migrate` leaves them: "
        + ", ".join(f"`{k}` = `{v}`" for k, v in sorted(load.settings.items()))
        + ". Noctis *match*: `select(ArchiveItem.external_id).where(*match_conditions(...))` "
        "on the async session (custom plan, JIT off); *link*: the link step as "
        "`benchmarks/matching.py` times it (lock, `LookupRepository.link` with the coverage, "
        "commit), from an empty lookup table.",
    ]
    if PGSTAC not in modes:
        lines += ["", NOT_RUN]
    lines += [
        "",
        "Wall time, ms (what the caller waits for, one statement on an open connection):",
        "",
        "| Case | Rows | Noctis match | Noctis link | "
        + _cells([*modes, *(f"{s} / match" for s in shorts), *(f"{s} / link" for s in shorts)])
        + f" | Same ids ({' / '.join(shorts)}) |",
        "|---|---:|---:|---:|" + "---:|" * (3 * len(modes)) + "---|",
    ]
    for o in r.outcomes:
        m, lk = o.median(MATCH), o.median(LINK)
        found = [o.median(a) for a in modes]
        lines.append(
            f"| {o.key} | {o.rows:,} | {_ms(m)} | {_ms(lk)} | "
            + _cells(
                [
                    *(_ms(t) for t in found),
                    *(_ratio(t, m) for t in found),
                    *(_ratio(t, lk) for t in found),
                ]
            )
            + f" | {_same(o, modes)} |"
        )
    lines += [
        "",
        "Server time, ms (`EXPLAIN (ANALYZE, TIMING OFF)`: the statement's execution, without "
        "sending the rows; Noctis' match is the statement the session sent):",
        "",
        "| Case | Rows | Noctis match | "
        + _cells([*modes, *(f"{s} / match" for s in shorts)])
        + " |",
        "|---|---:|---:|" + "---:|" * (2 * len(modes)),
    ]
    for o in r.outcomes:
        m = o.median(MATCH, server=True)
        found = [o.median(a, server=True) for a in modes]
        lines.append(
            f"| {o.key} | {o.rows:,} | {_ms(m / 1000)} | "
            + _cells([*(_ms(t / 1000) for t in found), *(_ratio(t, m) for t in found)])
            + " |"
        )
    if PGSTAC in modes:
        wall_ratio = statistics.median(o.median(PGSTAC) / o.median(MATCH) for o in r.outcomes)
        nohydrate_ratio = statistics.median(
            o.median(NOHYDRATE) / o.median(PGSTAC) for o in r.outcomes
        )
        ratios = (
            f"- pgstac's search takes a median {wall_ratio:.1f}x Noctis' match (wall); nohydrate "
            f"a median {nohydrate_ratio:.2f}x the default mode."
        )
    else:
        wall_ratio = statistics.median(o.median(NOHYDRATE) / o.median(MATCH) for o in r.outcomes)
        ratios = (
            f"- pgstac nohydrate takes a median {wall_ratio:.1f}x Noctis' match (wall); the "
            "default mode was not run."
        )
    differing = [o for o in r.outcomes if not all(o.equal.values())]
    lines += [
        "",
        f"- Same ids on every case: **{'yes' if all_equal else 'NO'}** "
        f"({len(r.outcomes) - len(differing)} of {len(r.outcomes)} cases, "
        f"{'both modes' if PGSTAC in modes else 'nohydrate, the one mode run'})"
        + (
            ""
            if not differing
            else ": differing "
            + "; ".join(
                f"{o.key}: only Noctis {o.only_noctis}, only pgstac {o.only_pgstac}"
                for o in differing
            )
        )
        + ".",
        ratios,
        *_verdicts(r),
    ]
    lines += _semantics(r)
    lines += _explained(r.explained)
    lines.append(end)
    return "\n".join(lines) + "\n"


LINK_BEATS: Final = 1.0
"""Target: Noctis' whole link step faster than pgstac's best id-only search (nohydrate)."""
MATCH_BEATS: Final = 20.0
"""Target: Noctis' match at least this many times faster than pgstac's nohydrate search."""


def _verdicts(r: Run) -> list[str]:
    """The issue's two targets against pgstac's best (wall time, median of the runs)."""
    link = [o for o in r.outcomes if o.median(LINK) < LINK_BEATS * o.median(NOHYDRATE)]
    match = [o for o in r.outcomes if o.median(NOHYDRATE) >= MATCH_BEATS * o.median(MATCH)]

    def verdict(held: list[Outcome]) -> str:
        n = len(r.outcomes)
        return f"{len(held)} of {n} cases: **{'holds' if len(held) == n else 'does not hold'}**"

    worst_link = max(r.outcomes, key=lambda o: o.median(LINK) / o.median(NOHYDRATE))
    worst_match = min(r.outcomes, key=lambda o: o.median(NOHYDRATE) / o.median(MATCH))
    return [
        f"- Target, Noctis' link step faster than pgstac nohydrate: {verdict(link)} (worst "
        f"{worst_link.key}: link {_ms(worst_link.median(LINK))} ms, nohydrate "
        f"{_ms(worst_link.median(NOHYDRATE))} ms).",
        f"- Target, Noctis' match ≥ {MATCH_BEATS:g}x faster than pgstac nohydrate: "
        f"{verdict(match)} (lowest {worst_match.key}: "
        f"{_ratio(worst_match.median(NOHYDRATE), worst_match.median(MATCH))}).",
    ]


def _semantics(r: Run) -> list[str]:
    inclusive = [o for o in r.outcomes if not o.forms_equal.get("inclusive end", True)]
    bare = [o for o in r.outcomes if not o.forms_equal.get("bare dates", True)]
    return [
        "",
        "What differs between the two rules, and how the comparison handles it:",
        "",
        "- **Window end.** Noctis matches `acquired_at >= start AND acquired_at < end + 1 day` "
        "(half-open); a STAC `datetime` interval is closed, and pgstac's WHERE is "
        "`datetime <= <end> AND end_datetime >= <start>`. Sent with the end at the next "
        "midnight (*inclusive end*) it also matches a scene taken at exactly 00:00:00.000000 "
        "of the day after the window; sent as above (*aligned*: that midnight less 1 µs, "
        "timestamptz's resolution) the two are the same set of instants. This pgstac reads "
        "*bare dates* (`2024-06-01/2024-06-30`) as whole days, the last one included and "
        "the next midnight excluded: also Noctis' window. On the archive's own scenes the "
        f"spellings cannot be told apart ({r.boundary_items:,} items at exactly 00:00 UTC; "
        f"inclusive end differs from Noctis on {len(inclusive)} of {len(r.outcomes)} cases, "
        f"bare dates on {len(bare)}), so four probe scenes were put in both stores after the "
        f"timing, on {PROBED.case.key} at the instant before the window, its first instant, "
        "its last microsecond and the next midnight: "
        + "; ".join(f"{who} matches {', '.join(v) or 'none'}" for who, v in r.probes.items())
        + ".",
        "- **Scenes with a time range.** pgstac also matches items whose `start_datetime`/"
        "`end_datetime` overlap the window; Noctis stores one `acquired_at`. The items here "
        "carry `datetime` only (pgstac sets `end_datetime` = `datetime`), so no difference.",
        "- **Geometry.** Both test `ST_Intersects` on planar EPSG:4326 geometry (touching "
        "counts). The footprints split at the antimeridian are the same MultiPolygons in both, "
        f"and the {ANTIMERIDIAN.case.aoi} case (a {ANTIMERIDIAN_KM:g} km square centred on "
        "180°, 17.5° S, split at ±180° into a MultiPolygon, as RFC 7946 says) returns the "
        "same ids: neither store "
        "splits or wraps anything itself, so an AOI that crosses the antimeridian must come "
        "split, for pgstac as for Noctis.",
        "- **Cloud cover.** `eo:cloud_cover` is not a registered queryable, so pgstac reads it "
        "from each item's JSON as a number, the literal being one: its WHERE has "
        f"`to_float(content->'properties'->'eo:cloud_cover') <= to_float('{CLOUD_MAX}')` (no "
        "index; a filter on the rows the AOI and the window found). An item without it fails "
        "the filter, as a NULL `cloud_cover` does in Noctis; Noctis compares `real` values, "
        "pgstac the same values as float8 (loaded exactly): equal ids on the cloud case.",
        "- **Paging.** `search()` returns one page: without a `limit` it is 10 items "
        f"({r.explained.default_limit_returned} returned on {r.explained.key}), so every "
        "search above sets `limit` to the archive's size and the report checks that no "
        "`next` link came back.",
        "- **nohydrate** returns the stored (dehydrated) item and the collection's base "
        "item; `fields` only drops the geometry. It skips the merge with the base item, not "
        "the JSON: the ids are read from the same features.",
    ]


HEX_LITERAL: Final = re.compile(r"'(?:01|00)[0-9A-F]{60,}'")


def _short(plan: str, width: int = 180) -> str:
    """A plan with the AOI's EWKB literal named, not spelled, and long lines cut."""
    lines = []
    for line in HEX_LITERAL.sub(
        lambda m: f"'<AOI as EWKB, {len(m.group()) // 2} bytes>'", plan
    ).splitlines():
        lines.append(line if len(line) <= width else line[: width - 1] + "…")
    return "\n".join(lines)


def _split_logged(message: str, width: int = 150) -> tuple[str, list[str]]:
    """auto_explain's message: (its query text on one line, its plan's lines)."""
    lines = message.splitlines()[1:]  # after "duration: ... plan:"
    start = next((k for k, line in enumerate(lines) if "(cost=" in line), len(lines))
    query = " ".join(" ".join(lines[:start]).split()).removeprefix("Query Text: ")
    if len(query) > width:
        query = query[: width - 1] + "…"
    return query, lines[start:]


def _explained(e: Explained) -> list[str]:
    whole = e.phases.get("search (the whole call)", 0.0)
    fetched = e.phases.get("search_rows (the rows)", 0.0)
    parsed = next((v for k, v in e.phases.items() if k.startswith("search_query")), 0.0)
    rest = max(whole - fetched - parsed, 0.0)
    per_row = f", {rest / e.rows:.2f} ms an item" if e.rows else ""
    hydrated = e.mode == PGSTAC
    mode = "default mode" if hydrated else "nohydrate with `pgstac.readonly` on, as it is timed"
    note = (
        ""
        if hydrated
        else "; the default mode was not run, and with readonly on search_query parses the "
        "search and records nothing"
    )
    formatting = (
        "hydrating against the collection's base item"
        if hydrated
        else "not hydrated: the stored item, with its collection's base item beside it"
    )
    lines = [
        "",
        f"Where a pgstac search's time goes ({e.key}, {mode}, {e.rows:,} items{note}). "
        "`EXPLAIN (ANALYZE, BUFFERS) SELECT search(...)` sees one function call:",
        "",
        "```",
        _short(e.plan),
        "```",
        "",
        "Its phases, each timed on the server (EXPLAIN ANALYZE, median, ms): "
        + ", ".join(f"{k} {v:,.1f}" for k, v in e.phases.items())
        + f"; the rest, {rest:,.1f} ms{per_row}, is building each item's JSON (`format_item`: "
        f"PL/pgSQL, per row, {formatting}) and the page. ",
    ]
    if e.readonly_wall:
        lines[-1] += (
            ("Wall time" if hydrated else "Wall time of the nohydrate search")
            + " with `pgstac.readonly` off (the default: every search upserts its row in "
            "`pgstac.searches`, so it writes and commits) and on: "
            + "; ".join(
                f"{key} {t['off'] * 1000:,.1f} ms off, {t['on'] * 1000:,.1f} ms on"
                for key, t in e.readonly_wall.items()
            )
            + "."
        )
    lines += [
        "",
        "The WHERE pgstac builds, run as one plain query (`SELECT id FROM items WHERE ... ORDER "
        "BY ...`):",
        "",
        "```",
        _short(e.rows_plan),
        "```",
    ]
    if e.nested:
        lines += [
            "",
            f"The statements it runs that take {NESTED_MIN_MS:g} ms or more (auto_explain with "
            "nested statements, ANALYZE and BUFFERS, which slow it; the first lines of each):",
            "",
            "```",
        ]
        for ms, message in sorted(e.nested, key=lambda x: -x[0])[:6]:
            query, plan = _split_logged(_short(message))
            lines += [f"-- {ms:,.1f} ms: {query}", *plan[:5], ""]
        lines[-1] = "```"
    return lines


def write(section: str, size: int) -> None:
    """Replace the section of this archive size in RESULTS.md, or append it."""
    begin, end = (m.format(size=size_label(size)) for m in MARKERS)
    replace_section(RESULTS, begin, end, section)


def to_json(r: Run) -> dict[str, Any]:
    return dataclasses.asdict(r)


def from_json(data: dict[str, Any]) -> Run:
    """A run written by ``--json``, to render its report again."""
    d = dict(data)
    d["build"] = Build.from_json(d["build"])
    d["load"] = PgstacLoad(**d["load"])
    d["outcomes"] = [Outcome.from_json(o) for o in d["outcomes"]]
    explained = dict(d["explained"])
    explained["nested"] = [(float(ms), str(text)) for ms, text in explained["nested"]]
    d["explained"] = Explained(**explained)
    d["load_average"] = tuple(d["load_average"])
    if "searches" in d:  # else written before --searches: both modes ran
        d["searches"] = tuple(d["searches"])
    return Run(**d)
