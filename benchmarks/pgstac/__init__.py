"""pgstac side by side with Noctis: the same items, the same AOI x window cases, the same ids?

::

    uv run python -m benchmarks.pgstac                       # 100k items, 5 runs
    uv run python -m benchmarks.pgstac --size 20k --runs 3
    uv run python -m benchmarks.pgstac --size 5M --searches nohydrate   # skip the default mode
    uv run python -m benchmarks.pgstac --write               # ... and its section of RESULTS.md
    uv run python -m benchmarks.pgstac --json out.json       # ... and the raw figures
    uv run python -m benchmarks.pgstac --from-json out.json --write   # re-render, measure nothing
    uv run python -m benchmarks.pgstac --server-url postgresql://postgres@127.0.0.1:5432/postgres

A private **durable** PostGIS cluster (fsync on, as in production), or the given server, gets
two databases:

- ``noctis``: the synthetic archive built by :func:`benchmarks.db.build_archive` (Alembic
  migrations, COPY, the GiST index, ANALYZE, VACUUM), as the other benchmarks build it;
- ``pgstac``: ``pypgstac migrate`` (pgstac's own schema, functions and settings), its
  collections, then the **same rows** read back from the first database and loaded with
  pypgstac's ``Loader`` as STAC items: id = ``external_id``, geometry = ``footprint``,
  ``datetime`` = ``acquired_at``, ``eo:cloud_cover`` = ``cloud_cover`` (left out when null),
  the stored properties and ``gsd``; then VACUUM ANALYZE, as the archive gets.

Each case of :mod:`benchmarks.cases` (and one with a cloud-cover filter) is then answered, the
approaches taking turns run by run (:func:`benchmarks.stats.measure_interleaved`), by:

- ``Noctis match``: the ids (``external_id``) of the repository's match rule
  (:func:`noctis.repositories.archive.match_conditions`) on the async session, with the
  repository's custom plan and JIT off;
- ``Noctis link``: the link step as :mod:`benchmarks.matching` times it (lock,
  ``LookupRepository.link``, commit), from an empty lookup table each run;
- ``pgstac``: ``SELECT pgstac.search($1)`` with ``fields`` = ``{"include": ["id"]}`` and a
  ``limit`` of the archive's size, so one page holds every match;
- ``pgstac nohydrate``: the same with ``"conf": {"nohydrate": true}``.

``--searches nohydrate`` runs pgstac's nohydrate search only: the default mode, which hydrates
every matched item (about an hour at 5M), is not compared, timed or taken apart (nohydrate is,
with ``pgstac.readonly`` on as it is timed), and the report says so.

Times are the median wall time of one statement (or the link's transaction) on an open
connection, as the caller waits for it; beside them, the server's own execution time
(``EXPLAIN (ANALYZE, TIMING OFF)``, median of the same number of runs). Every id set is
compared with Noctis'; then one search is taken apart (EXPLAIN (ANALYZE, BUFFERS), its
phases, and the plans of the statements it runs, from auto_explain).
"""

from benchmarks.pgstac.load import (
    ITEMS_SQL,
    PGSTAC_ROLES,
    PgstacLoad,
    build_pgstac,
    existing_roles,
)
from benchmarks.pgstac.measure import databases, run
from benchmarks.pgstac.outcomes import Explained, Outcome, Run
from benchmarks.pgstac.queries import (
    ANTIMERIDIAN,
    ANTIMERIDIAN_KM,
    APPROACHES,
    CLOUD_CASE,
    CLOUD_MAX,
    DATETIME_FORMS,
    EXPLAINED,
    LINK,
    MATCH,
    NESTED_MIN_MS,
    NOHYDRATE,
    ONE_MICROSECOND,
    PGSTAC,
    PROBED,
    QUERIES,
    READONLY_SMALL,
    SEARCH_SETS,
    SEARCHES,
    Query,
    search_set,
    searches_run,
    stac_datetime,
    stac_search,
)
from benchmarks.pgstac.report import (
    HEX_LITERAL,
    LINK_BEATS,
    MARKERS,
    MATCH_BEATS,
    RESULTS,
    command_line,
    from_json,
    report,
    to_json,
    write,
)
from benchmarks.pgstac.side import Side

__all__ = [
    "ANTIMERIDIAN",
    "ANTIMERIDIAN_KM",
    "APPROACHES",
    "CLOUD_CASE",
    "CLOUD_MAX",
    "DATETIME_FORMS",
    "EXPLAINED",
    "HEX_LITERAL",
    "ITEMS_SQL",
    "LINK",
    "LINK_BEATS",
    "MARKERS",
    "MATCH",
    "MATCH_BEATS",
    "NESTED_MIN_MS",
    "NOHYDRATE",
    "ONE_MICROSECOND",
    "PGSTAC",
    "PGSTAC_ROLES",
    "PROBED",
    "QUERIES",
    "READONLY_SMALL",
    "RESULTS",
    "SEARCHES",
    "SEARCH_SETS",
    "Explained",
    "Outcome",
    "PgstacLoad",
    "Query",
    "Run",
    "Side",
    "build_pgstac",
    "command_line",
    "databases",
    "existing_roles",
    "from_json",
    "report",
    "run",
    "search_set",
    "searches_run",
    "stac_datetime",
    "stac_search",
    "to_json",
    "write",
]
