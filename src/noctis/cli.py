"""``noctis``: run, serve and deploy the imagery-finder-study flow; migrate Atlas; export a
study; the demo.

Every failure the user can act on ends in one line on stderr and exit code 1, never a
traceback: Noctis' own errors carry their message, and the command says what it was doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from noctis import __version__
from noctis.errors import NoctisError

app = typer.Typer(
    name="noctis",
    help="Noctis: find the archive imagery of a study and record it for Augur.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The Atlas database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
err = Console(stderr=True)

FinderPk = Annotated[int, typer.Option("--imagery-finder-pk", min=1, help="ImageryFinder id.")]
DreamPk = Annotated[int, typer.Option("--dream-pk", min=1, help="Dream id.")]


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
    """Run the flow here (an ephemeral Prefect server when PREFECT_API_URL is not set)."""
    from noctis.console import result_table
    from noctis.flows.imagery_finder_study import run_here

    with _one_line("Study failed"):
        result = asyncio.run(run_here(imagery_finder_pk, dream_pk))
    if json_output:
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        console.print(result_table(result))


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
    """Register imagery-finder-study/default on the work pool (idempotent)."""
    from noctis.deployment import FULL_NAME, register
    from noctis.settings import get_settings

    with _one_line("Could not register the deployment"):
        pool = work_pool or get_settings().noctis_work_pool
        deployment_id = asyncio.run(register(work_pool=pool))
    console.print(f"Registered [bold]{FULL_NAME}[/bold] on work pool {pool!r} ({deployment_id})")


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


@app.command()
def export(
    imagery_finder_pk: FinderPk,
    dream_pk: DreamPk,
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", help="parquet (GeoParquet), geojson, stac (ItemCollection), csv."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
) -> None:
    """Write a study's lookup rows to a file: GeoParquet, GeoJSON, STAC or CSV."""
    from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn

    from noctis.exports import export_study

    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn())
    bar = Progress(*columns, console=err, transient=True, disable=not err.is_terminal)
    task = bar.add_task(f"{fmt.value} -> {output.name}", total=None)

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with _one_line("Export failed"), bar:
        result = export_study(
            imagery_finder_pk, dream_pk, fmt=fmt.value, output=output, progress=progress
        )
    console.print(
        f"Wrote {result.rows:,} rows of ImageryFinder {imagery_finder_pk} for Dream "
        f"{dream_pk} to {result.path} ({result.fmt})",
        highlight=False,
    )


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
