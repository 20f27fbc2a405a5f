"""Throwaway PostGIS servers for tests, benchmarks and ``noctis demo``.

:class:`LocalPostgis` runs a private PostgreSQL cluster from the local
binaries (``initdb`` + ``pg_ctl``) in a temporary directory, listening on
127.0.0.1 and a free port, and removes it on exit. PostgreSQL refuses to run as
root, so when Noctis runs as root (CI, containers) the cluster is created and
started as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy.engine import URL

from noctis.errors import NoctisError

INSTALL_HINT = (
    "install PostgreSQL with PostGIS (Debian/Ubuntu: `apt-get install postgresql-15-postgis-3`), "
    "or start Docker, or point Noctis at a PostGIS server"
)


class LocalPostgisUnavailable(NoctisError):
    """No usable PostgreSQL + PostGIS binaries on this machine."""


def find_bindir() -> Path | None:
    """The directory of ``initdb``/``pg_ctl`` with PostGIS available, newest version first."""
    candidates: list[Path] = []
    if env := os.environ.get("NOCTIS_PG_BINDIR"):
        candidates.append(Path(env))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    for bindir in candidates:
        if (bindir / "initdb").exists() and _has_postgis(bindir):
            return bindir
    return None


def _has_postgis(bindir: Path) -> bool:
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        out = subprocess.run(
            [str(pg_config), "--sharedir"], capture_output=True, text=True, check=False
        )
        sharedir = Path(out.stdout.strip())
    else:  # Debian keeps pg_config elsewhere; the layout is /usr/share/postgresql/<major>
        sharedir = Path("/usr/share/postgresql") / bindir.parent.name
    return (sharedir / "extension" / "postgis.control").exists()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgis:
    """A private PostGIS cluster: ``with LocalPostgis() as pg: pg.url("mydb")``."""

    def __init__(self, *, bindir: Path | None = None, fast: bool = True) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise LocalPostgisUnavailable(f"No PostgreSQL + PostGIS binaries found: {INSTALL_HINT}")
        self.bindir = found
        self.fast = fast
        self.port = 0
        self.root: Path | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def datadir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalPostgisUnavailable(
                f"{Path(args[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def start(self) -> Self:
        self.root = Path(tempfile.mkdtemp(prefix="noctis-pg-"))
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        initdb = [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres"]
        self._run(*initdb, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
        options = [
            f"-p {self.port or free_port()}",
            f"-k {self.root}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=200",
            "-c shared_buffers=256MB",
            "-c work_mem=32MB",
            "-c maintenance_work_mem=512MB",
            "-c max_wal_size=4GB",
        ]
        if self.fast:  # a throwaway cluster needs no durability
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self.port = int(options[0].split()[1])
        pg_ctl = [str(self.bindir / "pg_ctl"), "-D", str(self.datadir)]
        log = str(self.root / "postgres.log")
        self._run(*pg_ctl, "-l", log, "-o", " ".join(options), "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        with contextlib.suppress(LocalPostgisUnavailable):
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-m",
                "immediate",
                "-w",
                "stop",
            )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def url(self, database: str = "postgres", *, driver: str = "postgresql+asyncpg") -> URL:
        return URL.create(
            driver, username="postgres", host="127.0.0.1", port=self.port, database=database
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
