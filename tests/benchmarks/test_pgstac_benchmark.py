"""benchmarks/pgstac/ in its quick mode, as a test: at 100k items, pgstac's search returns
exactly Noctis' ids on every case, in both modes, Noctis' match is faster than both by a loose
margin, and the report is produced; and at 20k with ``--searches nohydrate``, the default mode
is skipped everywhere and the report and its JSON say so.

It runs on the tests' PostGIS server in two databases of its own, dropped afterwards with the
roles `pypgstac migrate` creates (pgstac_admin, pgstac_read, pgstac_ingest), and must not touch
RESULTS.md: the figures there come from the full runs.
"""

from __future__ import annotations

import asyncio
import json

from benchmarks.pgstac import (
    APPROACHES,
    LINK,
    MATCH,
    NOHYDRATE,
    PGSTAC,
    QUERIES,
    RESULTS,
    SEARCH_SETS,
    command_line,
    existing_roles,
    from_json,
    report,
    run,
    to_json,
)
from sqlalchemy.engine import URL

SIZE = 100_000
LOOSE: float = 2.0
"""pgstac's default search over all cases takes at least this many times Noctis' match (at
100k the full run measured 19x on 2 shared cores; nohydrate 4.7x, held to more than 1x)."""


def test_pgstac_returns_noctis_ids_on_every_case(postgis_url: URL) -> None:
    before = RESULTS.stat().st_mtime_ns
    url = postgis_url.render_as_string(hide_password=False)
    roles = asyncio.run(existing_roles(postgis_url))
    result = asyncio.run(run(SIZE, runs=1, server_url=url, log=lambda _: None))
    assert asyncio.run(existing_roles(postgis_url)) == roles  # the roles pypgstac created are gone

    assert result.load.items == SIZE
    assert result.load.version.startswith("0.10")
    assert [o.key for o in result.outcomes] == [q.key for q in QUERIES]
    for o in result.outcomes:
        assert o.equal == {PGSTAC: True, NOHYDRATE: True}, (o.key, o.only_noctis, o.only_pgstac)
        assert o.found == {PGSTAC: o.rows, NOHYDRATE: o.rows}, o.key
        assert o.link_rows == o.rows, o.key  # the link recorded every match
        assert o.forms_equal["bare dates"], o.key
        for approach in APPROACHES:
            assert len(o.wall[approach]) == 1, (o.key, approach)
    # Real matches, not empty sets agreeing: the large cases find scenes at this size.
    assert sum(o.rows for o in result.outcomes) > 1_000
    # Loose bounds on the totals over the cases (one run each, on a shared machine).
    total = {a: sum(min(o.wall[a]) for o in result.outcomes) for a in APPROACHES}
    assert total[PGSTAC] > LOOSE * total[MATCH], total
    assert total[NOHYDRATE] > total[MATCH], total
    # The window's edges: pgstac's closed interval, its end aligned (Noctis' exclusive end less
    # 1 µs) or as bare dates, matches what Noctis' half-open window does; the next midnight as
    # an inclusive end takes one scene more.
    noctis = ["first instant", "last microsecond"]
    assert result.probes["Noctis"] == noctis
    assert result.probes["pgstac, aligned"] == noctis
    assert result.probes["pgstac, bare dates"] == noctis
    assert result.probes["pgstac, inclusive end"] == [*noctis, "next midnight"]
    # Without a limit, search() returns one page of 10.
    assert result.explained.default_limit_returned == 10
    assert result.explained.rows == next(
        o.rows for o in result.outcomes if o.key == "country/5 years"
    )

    section = report(result)
    assert section.startswith("<!-- pgstac-100k:begin -->")
    assert "Same ids on every case: **yes**" in section
    assert section.count(" | yes / yes |") == len(QUERIES)
    assert "- Target, Noctis' link step faster than pgstac nohydrate: " in section
    assert "- Target, Noctis' match ≥ 20x faster than pgstac nohydrate: " in section
    # --json then --from-json renders the same report.
    again = from_json(json.loads(json.dumps(to_json(result), default=str)))
    assert report(again) == section
    assert RESULTS.stat().st_mtime_ns == before


NOHYDRATE_SIZE = 20_000


def test_pgstac_nohydrate_only_skips_the_default_mode(postgis_url: URL) -> None:
    """``--searches nohydrate``: the default mode is neither compared, timed nor taken apart;
    the report says so and still gives nohydrate's verdicts; the JSON round-trips."""
    before = RESULTS.stat().st_mtime_ns
    url = postgis_url.render_as_string(hide_password=False)
    searches = SEARCH_SETS["nohydrate"]
    result = asyncio.run(
        run(NOHYDRATE_SIZE, runs=1, server_url=url, searches=searches, log=lambda _: None)
    )

    assert result.searches == (NOHYDRATE,)
    assert [o.key for o in result.outcomes] == [q.key for q in QUERIES]
    for o in result.outcomes:
        assert o.equal == {NOHYDRATE: True}, (o.key, o.only_noctis, o.only_pgstac)
        assert o.found == {NOHYDRATE: o.rows}, o.key
        assert set(o.wall) == {MATCH, LINK, NOHYDRATE}, o.key
        assert set(o.server) == {MATCH, NOHYDRATE}, o.key
        assert all(len(t) == 1 for t in o.wall.values()), o.key
        assert o.link_rows == o.rows, o.key
    assert sum(o.rows for o in result.outcomes) > 100
    # The probes, in nohydrate: the same WHERE, so the same edges.
    noctis = ["first instant", "last microsecond"]
    assert result.probes["pgstac, aligned"] == noctis
    assert result.probes["pgstac, inclusive end"] == [*noctis, "next midnight"]
    # The search taken apart is nohydrate's.
    explained = result.explained
    assert explained.mode == NOHYDRATE
    assert explained.search["conf"] == {"nohydrate": True}
    assert list(explained.phases) == [
        "search_query (parse)",
        "search_rows (the rows)",
        "search (the whole call)",
    ]
    assert explained.rows == next(o.rows for o in result.outcomes if o.key == "country/5 years")
    assert explained.default_limit_returned == 10

    section = report(result, command=command_line(result, write=True))
    assert section.startswith("<!-- pgstac-20k:begin -->")
    assert (
        "`uv run python -m benchmarks.pgstac --size 20k --runs 1 --searches nohydrate --write`"
        in (section)
    )
    assert section.count("was not run at this size (`--searches nohydrate`)") == 1
    assert "| Case | Rows | Noctis match | Noctis link | pgstac nohydrate | nohydrate / match " in (
        section
    )
    assert "| pgstac |" not in section and "pgstac / match" not in section
    assert section.count(" | yes |") == len(QUERIES)
    assert "Same ids on every case: **yes** (14 of 14 cases, nohydrate, the one mode run)" in (
        section
    )
    assert "the default mode was not run." in section
    assert "- Target, Noctis' link step faster than pgstac nohydrate: " in section
    assert "- Target, Noctis' match ≥ 20x faster than pgstac nohydrate: " in section
    assert "(country/5 years, nohydrate with `pgstac.readonly` on" in section
    # --json then --from-json: the same run, the same report.
    data = json.loads(json.dumps(to_json(result), default=str))
    assert data["searches"] == [NOHYDRATE]
    again = from_json(data)
    assert again == result
    assert report(again, command=command_line(again, write=True)) == section
    # A file written before --searches: both modes ran.
    del data["searches"]
    assert from_json(data).searches == (PGSTAC, NOHYDRATE)
    assert RESULTS.stat().st_mtime_ns == before
