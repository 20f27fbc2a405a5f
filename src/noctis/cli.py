"""``noctis``: run, serve and deploy the imagery-finder-study flow; migrate Atlas; load STAC
scenes into the archive; plan and export a study; deliver and inspect the notification outbox;
match the standing studies and close one;
the demo.

Every failure the user can act on ends in one line on stderr and exit code 1, never a
traceback: Noctis' own errors carry their message, and the command says what it was doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from noctis import __version__
from noctis.errors import ConfigurationError, LoaderError, NoctisError, PlanError

if TYPE_CHECKING:
    from noctis.outbox import OpenUnitOfWork
    from noctis.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    name="noctis",
    help="Noctis: find the archive imagery of a study and record it for Augur.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The Atlas database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
outbox_app = typer.Typer(help="The notifications for Augur (the outbox).", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
study_app = typer.Typer(help="A study (a finder for a dream).", no_args_is_help=True)
app.add_typer(study_app, name="study")
standing_app = typer.Typer(
    help="Standing studies: scenes ingested after a study ran.", no_args_is_help=True
)
app.add_typer(standing_app, name="standing")
archive_app = typer.Typer(help="The archive of scenes (archive_item).", no_args_is_help=True)
app.add_typer(archive_app, name="archive")

console = Console()
err = Console(stderr=True)

PK_MAX = 2**63 - 1  # bigint
FinderPk = Annotated[
    int, typer.Option("--imagery-finder-pk", min=1, max=PK_MAX, help="ImageryFinder id.")
]
DreamPk = Annotated[int, typer.Option("--dream-pk", min=1, max=PK_MAX, help="Dream id.")]


class ExportFormat(StrEnum):
    """The formats of ``noctis export`` (noctis.exports.FORMATS)."""

    parquet = "parquet"
    geojson = "geojson"
    stac = "stac"
    csv = "csv"


@contextlib.contextmanager
def _one_line(what: str) -> Iterator[None]:
    """A Noctis error inside ends the command with ``what: the reason`` and exit code 1."""
    try:
        yield
    except NoctisError as e:
        err.print(f"[red]{what}:[/red] {escape(str(e))}", soft_wrap=True, highlight=False)
        for note in getattr(e, "__notes__", ()):
            err.print(escape(note), soft_wrap=True, highlight=False)
        raise typer.Exit(1) from e


def _version(value: bool) -> None:
    if value:
        console.print(f"noctis {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Noctis: find the archive imagery of a study and record it for Augur."""


@app.command()
def run(
    imagery_finder_pk: FinderPk,
    dream_pk: DreamPk,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the flow here. Fast with PREFECT_API_URL set to a running server (`prefect server
    start`, once); without it every run starts a temporary Prefect server (about 10 s)."""
    from noctis.console import result_table
    from noctis.flows.imagery_finder_study import run_here
    from noctis.flows.outbox_dispatcher import prefect_api_configured
    from noctis.settings import get_settings

    with _one_line("Study failed"):
        get_settings()  # a refused setting fails here, before a Prefect server is started
    if not prefect_api_configured():
        err.print(
            "No PREFECT_API_URL: Prefect starts a temporary server for this run (about 10 s). "
            "For fast runs, start one once (`prefect server start`) and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api.",
            style="dim",
            highlight=False,
            soft_wrap=True,
        )
    with _one_line("Study failed"):
        result = asyncio.run(run_here(imagery_finder_pk, dream_pk))
    if json_output:
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        console.print(result_table(result))


@app.command()
def plan(
    imagery_finder_pk: FinderPk,
    dream_pk: DreamPk,
    per: Annotated[
        str, typer.Option(help="One plan per: window (default), month, quarter, year, 'N days'.")
    ] = "window",
    target: Annotated[
        float, typer.Option(help="Share of what the study's scenes cover, in (0, 1].")
    ] = 0.99,
    min_gain: Annotated[
        float, typer.Option(help="A scene must add more than this share of it.")
    ] = 1e-4,
    cloud_weight: Annotated[
        float, typer.Option(help="Weight of (1 - weight * cloud%/100), in [0, 1).")
    ] = 0.5,
    recency_weight: Annotated[
        float, typer.Option(help="Weight of (1 - weight * age in the slice), in [0, 1).")
    ] = 0.1,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The fewest scenes of a study that cover its AOI, preferring clear and recent ones;
    stored, replacing the study's plan of the same --per (noctis export --plan)."""
    import json

    from noctis.console import plan_tables
    from noctis.cover import Per, PlanOptions, Preference
    from noctis.notebook import make_coverage_plan

    with _one_line("Plan failed"):
        options = PlanOptions(
            per=Per.parse(per),
            target=target,
            min_gain=min_gain,
            preference=Preference(cloud_weight=cloud_weight, recency_weight=recency_weight),
        )
        planned = asyncio.run(make_coverage_plan(imagery_finder_pk, dream_pk, options))
    if not planned.candidates:
        err.print(
            f"ImageryFinder {imagery_finder_pk} for Dream {dream_pk} has no lookup rows with "
            f"coverage: nothing to plan (run the study first: noctis run --imagery-finder-pk "
            f"{imagery_finder_pk} --dream-pk {dream_pk})",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(1)
    if json_output:
        sys.stdout.write(json.dumps(planned.to_dict()) + "\n")
        return
    for table in plan_tables(planned):
        console.print(table)


@app.command()
def serve() -> None:
    """Serve imagery-finder-study/default from this process (no work pool needed)."""
    from noctis.flows.imagery_finder_study import imagery_finder_study

    imagery_finder_study.serve(name="default", tags=["noctis"])


@app.command()
def deploy(
    work_pool: Annotated[
        str | None, typer.Option(help="Work pool (default NOCTIS_WORK_POOL, noctis-pool).")
    ] = None,
) -> None:
    """Register imagery-finder-study/default and its companions on the work pool (idempotent)."""
    import logging

    from noctis.deployment import (
        CLOSE_FULL_NAME,
        DISPATCHER_FULL_NAME,
        FULL_NAME,
        STANDING_FULL_NAME,
        register,
    )
    from noctis.runtime import prefect_unreachable
    from noctis.settings import get_settings

    # What a redeploy changed (an automation brought back to what Noctis wants) on stderr.
    changes = logging.getLogger("noctis.deployment")
    changes.setLevel(logging.INFO)
    changes.addHandler(logging.StreamHandler(sys.stderr))
    with _one_line("Could not register the deployment"):
        pool = work_pool or get_settings().noctis_work_pool
        try:
            deployment_id = asyncio.run(register(work_pool=pool))
        except Exception as e:
            if (unreachable := prefect_unreachable(e)) is not None:
                raise unreachable from None
            raise
    console.print(f"Registered [bold]{FULL_NAME}[/bold] on work pool {pool!r} ({deployment_id})")
    others = ", ".join((DISPATCHER_FULL_NAME, STANDING_FULL_NAME, CLOSE_FULL_NAME))
    console.print(f"and {others}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the Atlas database (ATLAS_DB_*) to REVISION (default: head)."""
    from noctis import migrate
    from noctis.settings import get_settings

    with _one_line("Could not migrate Atlas"):
        settings = get_settings()
    where = settings.atlas_url.render_as_string()  # the password stays hidden
    with _one_line(f"Could not migrate Atlas at {where}"):
        migrate.upgrade(settings, revision)
    console.print(f"Atlas at {where} is at {revision}")


@db_app.command("check-indexes")
def db_check_indexes(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    sample: Annotated[int, typer.Option(min=1, help="Lost rows named per index.")] = 20,
) -> None:
    """Whether the spatial GiST indexes still find every row (a PostgreSQL bug can lose some:
    docs/postgres-gist-bug.md). Exit code 0: sound; 1: rows lost (named, with the REINDEX that
    repairs them); 2: the check could not run. Run it on the primary, not a standby."""
    import json

    from noctis.indexes import check_indexes, repair_sql
    from noctis.settings import get_settings

    try:
        with _one_line("Could not check the indexes"):
            checks = asyncio.run(
                _with_uow(get_settings(), lambda f: check_indexes(f, sample=sample))
            )
    except typer.Exit as e:
        raise typer.Exit(2) from e
    if json_output:
        rows = [
            {
                "table": c.index.name,
                "index": c.index.index,
                "rows": c.rows,
                "found": c.found,
                "sound": c.sound,
                "missing": [dict(zip(c.index.key, k, strict=True)) for k in c.missing],
                "repair": None if c.sound else repair_sql(c),
            }
            for c in checks
        ]
        sys.stdout.write(json.dumps(rows) + "\n")
    for c in [] if json_output else checks:
        if c.sound:
            console.print(
                f"{c.index.name}: {c.rows:,} rows; {c.index.index} finds them all", highlight=False
            )
            continue
        named = ", ".join("/".join(map(str, k)) for k in c.missing)
        more = ", …" if c.rows - c.found > len(c.missing) else ""
        err.print(
            f"[red]{c.index.name}: {c.rows:,} rows; {c.index.index} finds {c.found:,}[/red] "
            f"(lost, by {'/'.join(c.index.key)}: {named}{more}). Repair: {repair_sql(c)} "
            "then rerun the studies that needed them (docs/postgres-gist-bug.md).",
            soft_wrap=True,
            highlight=False,
        )
    if not all(c.sound for c in checks):
        raise typer.Exit(1)


@archive_app.command("load")
def archive_load(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="STAC files: .json (ItemCollection), .ndjson/.jsonl, .parquet (stac-geoparquet).",
            show_default=False,
            metavar="PATH",
        ),
    ],
    collection: Annotated[
        list[str] | None,
        typer.Option(
            "--collection", help="Allow only this collection (repeat for several); others are bad."
        ),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid", help="Load the good items of a file with bad ones (reported)."
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Items per COPY and upsert.")
    ] = 10_000,
    commit_each_batch: Annotated[
        bool,
        typer.Option(
            "--commit-each-batch", help="Commit every batch, not once per file (huge files)."
        ),
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Only read and check the items; write nothing.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Load STAC items into the archive: checked, idempotent on the item id, in batches."""
    import json

    from rich.progress import MofNCompleteColumn, Progress, TaskID, TimeRemainingColumn

    from noctis.console import load_table
    from noctis.flows.standing import announce_loaded
    from noctis.loader import LoadOptions, check_files, load_files

    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn())
    bar = Progress(*columns, console=err, transient=True, disable=not err.is_terminal)
    tasks: dict[Path, TaskID] = {}

    def progress(path: Path, done: int, total: int | None) -> None:
        if path not in tasks:
            tasks[path] = bar.add_task(path.name, total=total)
        bar.update(tasks[path], completed=done, total=total)

    def report(line: str) -> None:
        err.print(f"[yellow]skipped[/yellow] {escape(line)}", soft_wrap=True, highlight=False)

    options = LoadOptions(
        collections=frozenset(collection) if collection else None,
        skip_invalid=skip_invalid,
        batch_size=batch_size,
        commit_each_batch=commit_each_batch,
        progress=progress,
        report=report,
    )
    with _one_line("Load failed"), bar:
        try:
            if check:
                summary = check_files(paths, options)
            else:
                summary = asyncio.run(load_files(paths, options=options))
        except LoaderError as e:
            if e.loaded:  # said after the reason, by _one_line
                e.add_note(f"Loaded before it (committed): {', '.join(e.loaded)}")
                asyncio.run(announce_loaded({"files": [str(p) for p in e.loaded]}))
            raise
    if not check and (summary.inserted or summary.updated):
        asyncio.run(announce_loaded({"inserted": summary.inserted, "updated": summary.updated}))
    if json_output:
        sys.stdout.write(json.dumps(summary.as_dict()) + "\n")
    else:
        console.print(load_table(summary))


@app.command()
def export(
    imagery_finder_pk: FinderPk,
    dream_pk: DreamPk,
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", help="parquet (GeoParquet), geojson, stac (ItemCollection), csv."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    plan: Annotated[
        bool, typer.Option("--plan", help="The scenes of its stored coverage plan instead.")
    ] = False,
    per: Annotated[
        str, typer.Option(help="With --plan: the plan per window (default), month, … to export.")
    ] = "window",
) -> None:
    """Write a study's lookup rows (or its coverage plan's scenes) to a file: GeoParquet,
    GeoJSON, STAC or CSV."""
    from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn

    from noctis.cover import Per
    from noctis.exports import export_study

    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn())
    bar = Progress(*columns, console=err, transient=True, disable=not err.is_terminal)
    task = bar.add_task(f"{fmt.value} -> {output.name}", total=None)

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with _one_line("Export failed"), bar:
        slicing: str | None = str(Per.parse(per))
        if not plan and slicing != "window":
            raise PlanError(
                f"--per {per!r} slices a coverage plan: add --plan to export its scenes"
            )
        slicing = slicing if plan else None
        result = export_study(
            imagery_finder_pk,
            dream_pk,
            fmt=fmt.value,
            output=output,
            progress=progress,
            plan=slicing,
        )
    what = "rows" if slicing is None else f"planned scenes (per {slicing})"
    console.print(
        f"Wrote {result.rows:,} {what} of ImageryFinder {imagery_finder_pk} for Dream "
        f"{dream_pk} to {escape(str(result.path))} ({result.fmt})",
        highlight=False,
        soft_wrap=True,
    )


async def _with_uow(settings: Settings, work: Callable[[OpenUnitOfWork], Awaitable[T]]) -> T:
    """``work`` given the units of work of a runtime on ``settings`` (closed afterwards)."""
    from noctis.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        return await work(runtime.unit_of_work)


@outbox_app.command("deliver")
def outbox_deliver() -> None:
    """One dispatcher pass: announce dead runs (with PREFECT_API_URL), deliver, prune."""
    from noctis.flows.outbox_dispatcher import dispatch_once, prefect_api_configured
    from noctis.settings import get_settings

    with _one_line("Could not deliver the outbox"):
        settings = get_settings()
        if not settings.augur_enabled:
            raise ConfigurationError("NOCTIS_AUGUR_API_URL is empty: no Augur to deliver to")
        watch = prefect_api_configured()
        report = asyncio.run(dispatch_once(settings, watch_runs=watch))
    console.print(
        f"{report.delivered} delivered, {report.dead + report.given_up} dead, "
        f"{report.announced} failed run(s) announced"
        + ("" if watch else " (PREFECT_API_URL unset: runs not watched)")
        + f", {report.pruned} pruned",
        highlight=False,
    )
    if report.runs_unread:
        err.print(
            f"[yellow]Runs not watched:[/yellow] the Prefect API at PREFECT_API_URL could not be"
            f" read ({escape(report.runs_unread)})",
            soft_wrap=True,
        )
    if report.stopped:
        err.print(f"[yellow]Stopped:[/yellow] {escape(report.stopped)}", soft_wrap=True)
        raise typer.Exit(1)


@outbox_app.command("status")
def outbox_status(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Failing and dead rows listed.")] = 20,
) -> None:
    """What is pending, failing (tried in vain, retried) and dead (given up, with the reason)."""
    from noctis import outbox
    from noctis.console import outbox_json, outbox_tables
    from noctis.settings import get_settings

    with _one_line("Could not read the outbox"):
        status = asyncio.run(_with_uow(get_settings(), lambda f: outbox.status(f, limit=limit)))
    if json_output:
        sys.stdout.write(outbox_json(status) + "\n")
        return
    for table in outbox_tables(status):
        console.print(table)


@outbox_app.command("requeue")
def outbox_requeue(
    ids: Annotated[
        list[int] | None, typer.Option("--id", min=1, max=PK_MAX, help="A dead row's id.")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every dead row.")] = False,
) -> None:
    """Give dead notifications a new retry budget (after fixing what Augur refused)."""
    from noctis import outbox
    from noctis.settings import get_settings

    if not ids and not every:
        err.print("Say which rows: --id N (repeatable) or --all")
        raise typer.Exit(2)
    with _one_line("Could not requeue"):
        count = asyncio.run(
            _with_uow(get_settings(), lambda f: outbox.requeue(f, None if every else ids))
        )
    console.print(f"{count} notification(s) back in the queue")


@study_app.command("close")
def study_close(
    imagery_finder_pk: FinderPk,
    dream_pk: DreamPk,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Close a standing study: scenes ingested from now on are not matched to it."""
    from noctis import standing
    from noctis.flows.standing import closed_summary
    from noctis.settings import get_settings

    async def close(open_uow: OpenUnitOfWork) -> standing.ClosedStudy:
        async with open_uow() as uow:
            return await standing.close_study(
                uow, finder_id=imagery_finder_pk, dream_id=dream_pk, grace=settings.standing_grace
            )

    with _one_line("Could not close the study"):
        settings = get_settings()
        closed = asyncio.run(_with_uow(settings, close))
    if json_output:
        sys.stdout.write(json.dumps(closed_summary(closed)) + "\n")
        return
    when = closed.state.closed_at
    console.print(
        f"ImageryFinder {imagery_finder_pk} for Dream {dream_pk} "
        + ("was already closed" if closed.already else "is closed")
        + (f" (since {when:%Y-%m-%d %H:%M:%S %Z})" if when else ""),
        highlight=False,
    )


@standing_app.command("match")
def standing_match(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    max_batches: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many batches.")
    ] = None,
) -> None:
    """One pass of the standing matcher: the queued scenes against every standing study."""
    from noctis.console import pass_summary, pass_table
    from noctis.flows.standing import run_pass
    from noctis.settings import get_settings

    with _one_line("Standing match failed"):
        settings = get_settings()
        report = asyncio.run(run_pass(settings, max_batches=max_batches))
    if json_output:
        sys.stdout.write(json.dumps(pass_summary(report)) + "\n")
    else:
        console.print(pass_table(report, augur=settings.augur_enabled))


@app.command()
def demo(
    size: Annotated[int, typer.Option(min=1_000, help="Synthetic archive items.")] = 100_000,
    keep: Annotated[bool, typer.Option(help="Leave the database running.")] = False,
    map_path: Annotated[Path, typer.Option("--map", help="Where to write the PNG map.")] = Path(
        "noctis-demo-map.png"
    ),
    city: Annotated[str, typer.Option(help="City at the centre of the demo AOI.")] = "Paris",
) -> None:
    """The whole job on a throwaway PostGIS and a synthetic archive, with a map."""
    from noctis.devtools.demo import run_demo  # the only way the product reaches the tooling

    with _one_line("noctis demo failed"):
        run_demo(size=size, keep=keep, map_path=map_path, city=city, console=console)


def main() -> None:  # pragma: no cover - the console script
    app()
