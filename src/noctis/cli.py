"""``noctis``: run, serve and deploy the imagery-finder-study flow; migrate Atlas; the demo."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from noctis.results import StudyResult

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


def result_table(result: StudyResult) -> Table:
    table = Table(title=f"ImageryFinder {result.imagery_finder_pk} for Dream {result.dream_pk}")
    table.add_column("", style="bold")
    table.add_column("")
    coverage = "n/a (point AOI)" if result.coverage is None else f"{result.coverage:.1%}"
    rows = [
        ("Finder", f"{result.imagery_finder_pk} {result.finder_name or ''} "
                   f"({result.location_type})"),
        ("Dream", f"{result.dream_pk} {result.dream_name}"),
        ("Window (UTC days)", result.window),
        ("Matched items", str(result.matched_count)),
        ("New this run", str(result.new_count)),
        ("Union coverage", coverage),
        ("Augur notified", "yes" if result.notified else "no (NOCTIS_AUGUR_API_URL is empty)"),
        ("Flow run", result.flow_run_id or "-"),
    ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    return table


async def run_study(imagery_finder_pk: int, dream_pk: int) -> tuple[StudyResult | None, str]:
    """Run the flow in this process; (result, "") or (None, the failed run's message)."""
    from noctis.flows.imagery_finder_study import imagery_finder_study

    state = await imagery_finder_study(
        imagery_finder_pk=imagery_finder_pk, dream_pk=dream_pk, return_state=True
    )
    if not state.is_completed():
        return None, state.message or state.type.value
    result: StudyResult = await state.aresult()
    return result, ""


@app.command()
def run(
    imagery_finder_pk: FinderPk,
    dream_pk: DreamPk,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the flow here (an ephemeral Prefect server when PREFECT_API_URL is not set)."""
    result, failure = asyncio.run(run_study(imagery_finder_pk, dream_pk))
    if result is None:
        err.print(f"[red]Study failed:[/red] {failure}", soft_wrap=True)
        raise typer.Exit(1)
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

    pool = work_pool or get_settings().noctis_work_pool
    deployment_id = asyncio.run(register(work_pool=pool))
    console.print(f"Registered [bold]{FULL_NAME}[/bold] on work pool {pool!r} ({deployment_id})")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the Atlas database (ATLAS_DB_*) to REVISION (default: head)."""
    from noctis import migrate
    from noctis.settings import get_settings

    settings = get_settings()
    migrate.upgrade(settings, revision)
    console.print(f"Atlas at {settings.atlas_url.render_as_string()} is at {revision}")


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
    from noctis import synthetic
    from noctis.demo import run_demo
    from noctis.errors import NoctisError

    if city not in {c.name for c in synthetic.CITIES}:
        err.print(f"[red]Unknown city {city!r}[/red]; try Paris, Tokyo, New York, Suva")
        raise typer.Exit(2)
    try:
        run_demo(size=size, keep=keep, map_path=map_path, city=city, console=console)
    except NoctisError as e:
        err.print(f"[red]noctis demo failed:[/red] {e}", soft_wrap=True)
        raise typer.Exit(1) from e


def main() -> None:  # pragma: no cover - the console script
    app()
