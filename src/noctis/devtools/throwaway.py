"""A throwaway PostGIS for the demo: local binaries first, then Docker; a clear error otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
from rich.console import Console
from sqlalchemy.engine import URL

from noctis.db import libpq_dsn
from noctis.devtools.localdb import INSTALL_HINT, LocalPostgis, LocalPostgisUnavailable, free_port
from noctis.errors import NoctisError

DOCKER_IMAGE = "postgis/postgis:15-3.5"


@dataclass(frozen=True)
class DemoDatabase:
    server: URL
    how: str
    stop_hint: str


@contextlib.contextmanager
def throwaway_postgis(console: Console, *, keep: bool) -> Iterator[DemoDatabase]:
    """A private PostGIS: local binaries first, then Docker; a clear error otherwise."""
    try:
        pg = LocalPostgis().start()
    except LocalPostgisUnavailable as local_error:
        if (
            shutil.which("docker") is None
            or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
        ):
            raise NoctisError(
                f"noctis demo needs PostGIS and found none ({local_error}). "
                f"To fix it: {INSTALL_HINT}"
            ) from local_error
        with _docker_postgis(console, keep=keep) as db:
            yield db
        return
    stop = f"pg_ctl -D {pg.datadir} stop && rm -rf {pg.root}"
    try:
        yield DemoDatabase(pg.url(), f"local PostgreSQL ({pg.bindir})", stop)
    finally:
        if not keep:
            pg.stop()


@contextlib.contextmanager
def _docker_postgis(console: Console, *, keep: bool) -> Iterator[DemoDatabase]:
    port = free_port()
    name = f"noctis-demo-{port}"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, "-e", "POSTGRES_PASSWORD=demo",
         "-p", f"127.0.0.1:{port}:5432", DOCKER_IMAGE],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        url = URL.create("postgresql+asyncpg", username="postgres", password="demo",  # noqa: S106
                         host="127.0.0.1", port=port, database="postgres")  # fmt: skip
        asyncio.run(_wait_for(url))
        yield DemoDatabase(url, f"Docker ({DOCKER_IMAGE})", f"docker stop {name}")
    finally:
        if not keep:
            subprocess.run(["docker", "stop", name], capture_output=True, check=False)


async def _wait_for(url: URL, wait_seconds: float = 60) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            conn = await asyncpg.connect(libpq_dsn(url))
            await conn.close()
            return
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
