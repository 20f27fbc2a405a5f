"""Where the tests get their PostGIS from, in this order:

1. ``NOCTIS_TEST_DATABASE_URL``: a server on which the tests may create databases;
2. local PostgreSQL + PostGIS binaries: a throwaway cluster (started as the
   ``postgres`` user when the tests run as root), removed at the end;
3. Docker through testcontainers (``postgis/postgis``).

Otherwise the run fails with one message naming the three. It never skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator

from sqlalchemy.engine import URL, make_url

from noctis.devtools.localdb import LocalPostgis, find_bindir

POSTGIS_IMAGE = "postgis/postgis:15-3.5"
NO_POSTGIS = (
    "The tests need a real PostGIS and found none. Give them one of: "
    "(1) NOCTIS_TEST_DATABASE_URL=postgresql://user:password@host:port/db (a server where the "
    "tests may CREATE DATABASE); (2) local PostgreSQL + PostGIS binaries "
    "(apt-get install postgresql-15-postgis-3); (3) a running Docker engine (testcontainers "
    f"starts {POSTGIS_IMAGE})."
)


def _docker_running() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=20)
    return probe.returncode == 0


@contextlib.contextmanager
def postgis_server() -> Iterator[tuple[URL, str]]:
    """Yields (an admin URL with the asyncpg driver, where it came from)."""
    if env_url := os.environ.get("NOCTIS_TEST_DATABASE_URL"):
        yield make_url(env_url).set(drivername="postgresql+asyncpg"), "NOCTIS_TEST_DATABASE_URL"
        return
    if find_bindir() is not None:
        with LocalPostgis() as pg:
            yield pg.url(), f"local binaries in {pg.bindir}"
        return
    if _docker_running():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(POSTGIS_IMAGE, driver=None) as container:
            url = make_url(container.get_connection_url()).set(drivername="postgresql+asyncpg")
            yield url, f"testcontainers ({POSTGIS_IMAGE})"
        return
    raise RuntimeError(NO_POSTGIS)
