"""TLS to Atlas as libpq users expect it: ``sslmode`` (disable, require, verify-ca,
verify-full) and ``sslrootcert`` in ATLAS_DB_URL, on a real PostGIS serving TLS.

The test turns TLS on in the tests' own server (superuser: ``ALTER SYSTEM``), with a
certificate it signs with a throwaway CA. PostgreSQL reads the key only from a file its own
user owns with mode 0600, so the server must run on this machine (the local binaries of the
test bed, or a local NOCTIS_TEST_DATABASE_URL); the test fails, never skips, otherwise.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from noctis.db import libpq_dsn, make_engine, sync_session
from noctis.errors import DatabaseError, DatabaseUnavailable
from noctis.settings import Settings

pytestmark = pytest.mark.reliability


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    server_cert: str
    server_key: str


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for 127.0.0.1 / localhost signed by it, and another CA."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-subj", f"/CN=noctis-test-{ca}",
                 cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
             "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", "server.crt", "-extfile", "san.cnf",
             cwd=d)  # fmt: skip
    return Pki(
        ca=d / "ca.crt",
        other_ca=d / "other.crt",
        server_cert=(d / "server.crt").read_text(),
        server_key=(d / "server.key").read_text(),
    )


def _place_for_server(data_directory: Path, name: str, pem: str) -> str:
    """Write ``pem`` beside the server's data directory, owned by its user, mode 0600."""
    if not data_directory.is_dir():
        pytest.fail(
            f"The TLS tests need the tests' PostgreSQL server on this machine (its data "
            f"directory {data_directory} is not here): use the local binaries of the test bed",
            pytrace=False,
        )
    owner = data_directory.stat()
    path = data_directory / name
    path.write_text(pem)
    path.chmod(0o600)
    os.chown(path, owner.st_uid, owner.st_gid)
    return str(path)


@pytest.fixture(scope="module")
def tls_server(postgis_url: URL, pki: Pki) -> Iterator[URL]:
    """The tests' server with TLS on; yields its admin URL (TLS off again afterwards)."""
    suffix = uuid.uuid4().hex[:6]
    with psycopg.connect(libpq_dsn(postgis_url), autocommit=True) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None
        data = Path(row[0])
        cert = _place_for_server(data, f"noctis_test_{suffix}.crt", pki.server_cert)
        key = _place_for_server(data, f"noctis_test_{suffix}.key", pki.server_key)
        conn.execute(f"ALTER SYSTEM SET ssl_cert_file = '{cert}'")
        conn.execute(f"ALTER SYSTEM SET ssl_key_file = '{key}'")
        conn.execute("ALTER SYSTEM SET ssl = on")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)  # the postmaster reloads asynchronously
        (ssl_on,) = conn.execute("SHOW ssl").fetchone() or ("off",)
        assert ssl_on == "on", "the server did not take the TLS configuration (see its log)"
    try:
        yield postgis_url
    finally:
        with psycopg.connect(libpq_dsn(postgis_url), autocommit=True) as conn:
            for name in ("ssl", "ssl_cert_file", "ssl_key_file"):
                conn.execute(f"ALTER SYSTEM RESET {name}")
            conn.execute("SELECT pg_reload_conf()")
        for path in (cert, key):
            Path(path).unlink(missing_ok=True)


def _settings(server: URL, database: str | None, **query: str) -> Settings:
    url = server.set(drivername="postgresql", host="127.0.0.1", database=database)
    url = url.update_query_dict(query)
    return Settings(atlas_db_url=url.render_as_string(hide_password=False), _env_file=None)


async def _uses_tls(settings: Settings) -> bool:
    engine = make_engine(settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            query = text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            return bool((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


@pytest.fixture
async def database(tls_server: URL, atlas_settings: Settings) -> AsyncIterator[str]:
    assert atlas_settings.atlas_url.database is not None
    yield atlas_settings.atlas_url.database


async def test_require_encrypts(tls_server: URL, database: str) -> None:
    assert await _uses_tls(_settings(tls_server, database, sslmode="require"))


async def test_disable_does_not(tls_server: URL, database: str) -> None:
    assert not await _uses_tls(_settings(tls_server, database, sslmode="disable"))


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_verify_modes_check_the_certificate_against_the_root(
    tls_server: URL, database: str, pki: Pki, mode: str
) -> None:
    assert await _uses_tls(_settings(tls_server, database, sslmode=mode, sslrootcert=str(pki.ca)))


async def test_a_certificate_from_another_ca_is_refused_and_not_retried(
    tls_server: URL, database: str, pki: Pki
) -> None:
    settings = _settings(tls_server, database, sslmode="verify-full", sslrootcert=str(pki.other_ca))
    with pytest.raises(DatabaseError, match="certificate verify failed") as refused:
        from noctis.db import translated

        async with translated("connecting to Atlas"):
            await _uses_tls(settings)
    assert not isinstance(refused.value, DatabaseUnavailable)


def test_the_sync_session_takes_the_same_parameters(
    tls_server: URL, database: str, pki: Pki
) -> None:
    settings = _settings(tls_server, database, sslmode="verify-full", sslrootcert=str(pki.ca))
    with sync_session(settings) as session:
        ssl = session.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
        assert ssl.scalar_one() is True
