"""benchmarks/pgstac.py at a small size, as a test: pgstac's search returns exactly Noctis'
ids on every case, in both modes, and the report is produced.

It runs on the tests' PostGIS server in two databases of its own (dropped afterwards; `pypgstac
migrate` also creates its roles pgstac_admin, pgstac_read and pgstac_ingest on that server) and
must not touch RESULTS.md; the 100k figures come from the full run. No timing is asserted.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy.engine import URL

pytest.importorskip("pypgstac", reason="the pgstac dependency group is not installed")

from benchmarks.pgstac import (
    APPROACHES,
    NOHYDRATE,
    PGSTAC,
    QUERIES,
    RESULTS,
    from_json,
    report,
    run,
    to_json,
)

SIZE = 5_000


def test_pgstac_returns_noctis_ids_on_every_case(postgis_url: URL) -> None:
    before = RESULTS.stat().st_mtime_ns
    url = postgis_url.render_as_string(hide_password=False)
    result = asyncio.run(run(SIZE, runs=1, server_url=url, log=lambda _: None))

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
    assert sum(o.rows for o in result.outcomes) > 100
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
    assert section.startswith("<!-- pgstac-5k:begin -->")
    assert "Same ids on every case: **yes**" in section
    assert section.count(" | yes / yes |") == len(QUERIES)
    # --json then --from-json renders the same report.
    again = from_json(json.loads(json.dumps(to_json(result), default=str)))
    assert report(again) == section
    assert RESULTS.stat().st_mtime_ns == before
