"""Security: secrets stay secret, SQL is built from bound parameters, the least-privilege role.

The secrets (the Atlas password in ATLAS_DB_URL, the Augur token, PREFECT_API_AUTH_STRING)
are searched for, in clear, base64 and URL-quoted, in everything a run leaves behind: every log
record at DEBUG (Noctis, Prefect, SQLAlchemy, asyncpg, httpx, httpcore, the root), the logs,
artifacts, events, flow and task runs the Prefect server stored, the persisted results, the
state messages and exception chains of failing runs, the notifications' bodies, the reprs of
the settings, runtime, engine and client, and the process' stdout/stderr.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import json
import logging
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, quote_plus

import prefect.settings
import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import State
from prefect.events.filters import EventFilter, EventOccurredFilter
from sqlalchemy.engine import URL

import noctis
import noctis.flows.imagery_finder_study
from noctis.runtime import open_runtime
from noctis.settings import Settings, get_settings
from tests.support.augur_stub import AugurStub, Reply
from tests.support.factories import box
from tests.support.studies import (
    AUGUR_TOKEN,
    add_dream,
    add_finder,
    admin_dsn,
    linked_ids,
    outbox_rows,
    reference_ids,
    run_study,
    seed_grid,
)

pytestmark = pytest.mark.reliability


DB_PASSWORD = "atlas-secret-pw-73c1a9"
PREFECT_AUTH = "noctis-admin:prefect-auth-secret-5e8d41"

# The least-privilege role of Noctis (docs/reliability.md has the same, ready to paste).
LEAST_PRIVILEGE_GRANTS = """
GRANT CONNECT ON DATABASE {database} TO {role};
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT ON dream, imagery_finder, archive_item TO {role};
GRANT SELECT, INSERT ON archive_lookup_item TO {role};
GRANT SELECT, INSERT, DELETE ON notification_outbox TO {role};
GRANT UPDATE (state, attempts, history, last_error, queued_at, requeued_at, delivered_at)
    ON notification_outbox TO {role};
GRANT SELECT, INSERT, DELETE ON coverage_plan, coverage_plan_item TO {role};
GRANT DELETE, UPDATE (coverage) ON archive_lookup_item TO {role};
GRANT SELECT, INSERT, UPDATE ON standing_study TO {role};
GRANT SELECT, UPDATE (enqueued_at), DELETE ON standing_change TO {role};
"""


@contextlib.asynccontextmanager
async def _role(
    postgis_url: URL, settings: Settings, *, grants: str = LEAST_PRIVILEGE_GRANTS
) -> AsyncIterator[str]:
    """A login role with a password and ``grants`` on the test's database; yields its URL."""
    role = f"noctis_app_{uuid.uuid4().hex[:8]}"
    database = settings.atlas_url.database
    async with await psycopg.AsyncConnection.connect(admin_dsn(settings), autocommit=True) as admin:
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{DB_PASSWORD}'")
        await admin.execute(f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC')
        await admin.execute(grants.format(database=f'"{database}"', role=role))
        try:
            yield (
                postgis_url.set(
                    drivername="postgresql", username=role, password=DB_PASSWORD, database=database
                ).render_as_string(hide_password=False)
            )
        finally:
            await admin.execute(f"DROP OWNED BY {role}")
            await admin.execute(f"DROP ROLE {role}")


@pytest.fixture
async def as_app_role(
    study_env: Settings, postgis_url: URL, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """The worker's environment, with ATLAS_DB_URL for the least-privilege role."""
    async with _role(postgis_url, study_env) as url:
        monkeypatch.setenv("ATLAS_DB_URL", url)
        get_settings.cache_clear()
        yield url
        get_settings.cache_clear()


async def _seed(admin: psycopg.AsyncConnection) -> tuple[int, int, list[int]]:
    await seed_grid(admin, n=400)
    dream = await add_dream(admin)
    finder = await add_finder(admin, box(10.5, 44.5, 11.5, 45.5), start="2024-01-01")
    return finder, dream, await reference_ids(admin, finder)


# ----------------------------------------------------------------------------- least privilege


async def test_the_flow_runs_under_the_least_privilege_role(
    as_app_role: str, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    finder, dream, expected = await _seed(admin)
    state = await run_study(finder, dream)
    assert state.is_completed(), state.message
    assert await linked_ids(admin, finder, dream) == expected
    assert (await state.aresult()).coverage is not None
    [row] = await outbox_rows(admin)  # written, taken FOR UPDATE, delivered under the role
    assert row["state"] == "delivered" and len(augur_stub.accepted()) == 1
    assert (await state.aresult()).plan_scenes is not None  # stored under the role's grants
    # No sequence grant: an identity column's sequence needs none for INSERT. No grant for
    # pg_advisory_xact_lock or set_config('plan_cache_mode') either.
    role = psycopg.conninfo.conninfo_to_dict(as_app_role)["user"]
    async with await psycopg.AsyncConnection.connect(as_app_role, autocommit=True) as app:
        cur = await app.execute(
            "SELECT has_sequence_privilege(%s, pg_get_serial_sequence('archive_lookup_item', "
            "'id'), 'USAGE')",
            (role,),
        )
        assert (await cur.fetchone()) == (False,)
        for forbidden in (
            # The standing matcher refreshes a coverage and removes rows; nothing else changes.
            "UPDATE archive_lookup_item SET archive_item_id = 0, dream_id = 0",
            "INSERT INTO standing_change (archive_item_id) VALUES (1)",
            "DELETE FROM standing_study",
            "INSERT INTO dream (name) VALUES ('x')",
            "UPDATE imagery_finder SET name = 'x'",
            "CREATE TABLE public.x (id int)",
            "TRUNCATE archive_lookup_item",
            # What Augur is to receive, and under which key, is never rewritten.
            "UPDATE notification_outbox SET payload = '{}'",
            "UPDATE notification_outbox SET event = 'imagery-finder-study.failed'",
            "UPDATE notification_outbox SET flow_run_id = 'x', dream_id = 0",
            "TRUNCATE notification_outbox",
            "UPDATE coverage_plan SET scenes = 0",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await app.execute(forbidden)
        await app.execute("UPDATE notification_outbox SET attempts = attempts")  # allowed


async def test_without_insert_the_link_fails_clearly_and_is_not_retried(
    study_env: Settings,
    postgis_url: URL,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finder, dream, _ = await _seed(admin)
    grants = LEAST_PRIVILEGE_GRANTS.replace("SELECT, INSERT ON", "SELECT ON")
    async with _role(postgis_url, study_env, grants=grants) as url:
        monkeypatch.setenv("ATLAS_DB_URL", url)
        get_settings.cache_clear()
        state = await run_study(finder, dream)
    assert state.is_failed()
    message = state.message or ""
    assert f"Atlas database error while linking ImageryFinder {finder} to Dream {dream}" in message
    assert "permission denied for table archive_lookup_item" in message
    assert DB_PASSWORD not in message


async def test_without_insert_on_the_outbox_the_rows_are_not_committed_either(
    study_env: Settings,
    postgis_url: URL,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The notification and the rows it reports are one transaction: no notification, no rows."""
    finder, dream, _ = await _seed(admin)
    grants = LEAST_PRIVILEGE_GRANTS.replace(
        "SELECT, INSERT, DELETE ON notification_outbox", "SELECT, DELETE ON notification_outbox"
    )
    async with _role(postgis_url, study_env, grants=grants) as url:
        monkeypatch.setenv("ATLAS_DB_URL", url)
        get_settings.cache_clear()
        state = await run_study(finder, dream)
    assert state.is_failed()
    assert "permission denied for table notification_outbox" in (state.message or "")
    assert await linked_ids(admin, finder, dream) == []
    assert await outbox_rows(admin) == []


# ----------------------------------------------------------------------------- no secret anywhere


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        self.texts.append(f"{text} {record.args!r} {record.__dict__!r}")


# Loggers that do not propagate to the root (Prefect's logging.yml) get the handler too.
_LOGGERS = [
    "",
    "noctis",
    "prefect",
    "prefect.extra",
    "prefect._internal",
    "prefect.client",
    "prefect.flow_runs",
    "prefect.task_runs",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "asyncpg",
    "httpx",
    "httpcore",
    "uvicorn",
    "fastapi",
]


@contextlib.contextmanager
def _every_log_record() -> Iterator[list[str]]:
    handler = _Everything()
    saved = []
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield handler.texts
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)


def _secret_forms(secret: str) -> set[str]:
    """Every form a secret takes in text: raw and stripped (a secret read from a file ends in a
    newline), escaped as in a repr or a bytes repr, URL- and JSON-encoded, base64."""
    forms = set()
    for value in {secret, secret.strip()}:
        forms |= {
            value,
            repr(value)[1:-1],
            repr(value.encode())[2:-1],
            quote(value, safe=""),
            quote_plus(value, safe=""),
            json.dumps(value)[1:-1],
            base64.b64encode(value.encode()).decode(),
        }
        if ":" in value:  # user:password, as in a Basic header
            forms.add(value.split(":", 1)[1])
    return {f for f in forms if len(f) >= 6}


def _leaks(texts: list[str], secrets: list[str]) -> list[str]:
    found = []
    for text in texts:
        for secret in secrets:
            for form in _secret_forms(secret):
                if form in text:
                    found.append(f"{form!r} in {text[:300]!r}")
    return found


def _chain(error: BaseException | None) -> str:
    return "".join(traceback.format_exception(error)) if error is not None else ""


async def _server_side(states: list[State[Any]], since: datetime) -> list[str]:
    """What the Prefect server stored about these runs (and every event since ``since``)."""
    ids = [s.state_details.flow_run_id for s in states if s.state_details.flow_run_id]
    texts: list[str] = []
    async with get_client() as client:
        for run in await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
        ):
            texts.append(run.model_dump_json())
        for task_run in await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
        ):
            texts.append(task_run.model_dump_json())
        for log in await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids))
        ):
            texts.append(log.model_dump_json())
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
        texts += [a.model_dump_json() for a in artifacts]
        assert artifacts, "the artifact was not stored"
        window = EventFilter(
            occurred=EventOccurredFilter(
                since=since, until=datetime.now(UTC) + timedelta(minutes=1)
            )
        )
        page = await client.read_events(filter=window, limit=50)
        events = list(page.events)
        while page.next_page is not None:
            page = await client.read_events_page(str(page.next_page))
            events += page.events
        texts += [e.model_dump_json() for e in events]
    names = {e.event for e in events}
    assert "noctis.imagery-finder.studied" in names, sorted(names)
    assert "prefect.flow-run.Failed" in names, sorted(names)
    return texts


def _persisted_results(states: list[State[Any]]) -> list[str]:
    """The result files Prefect wrote for these runs, raw and decoded (base64 of a pickle)."""
    texts = []
    for state in states:
        key = getattr(getattr(state.data, "metadata", None), "storage_key", None)
        if key and Path(key).is_file():
            raw = Path(key).read_bytes()
            texts.append(raw.decode("latin-1"))
            with contextlib.suppress(ValueError):
                texts.append(base64.b64decode(raw, validate=False).decode("latin-1"))
    return texts


async def test_no_secret_in_logs_reprs_artifacts_events_results_or_errors(
    as_app_role: str,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:

    secrets = [DB_PASSWORD, AUGUR_TOKEN, PREFECT_AUTH]
    assert DB_PASSWORD in as_app_role  # the password really is configured
    finder, dream, expected = await _seed(admin)
    since = datetime.now(UTC) - timedelta(seconds=5)
    states: list[State[Any]] = []
    errors: list[str] = []

    with (
        prefect.settings.temporary_settings(
            updates={prefect.settings.PREFECT_API_AUTH_STRING: PREFECT_AUTH}
        ),
        _every_log_record() as records,
    ):
        # 1. A run that works (under the least-privilege role, password in ATLAS_DB_URL).
        states.append(await run_study(finder, dream))
        assert states[-1].is_completed(), states[-1].message
        # 2. Augur rejects it and echoes the token back.
        augur_stub.script([Reply(401, json={"detail": f"bad token Bearer {AUGUR_TOKEN}"})])
        states.append(await run_study(finder, dream))
        # 3. Atlas refuses the connection: a wrong database in the URL with the password.
        url = as_app_role.rsplit("/", 1)[0] + "/no_such_database"
        monkeypatch.setenv("ATLAS_DB_URL", url)
        get_settings.cache_clear()
        states.append(await run_study(finder, dream))
        # 4. The reprs of everything that holds a secret.
        settings = get_settings()
        async with open_runtime(settings) as runtime:
            errors += [repr(settings), str(settings), repr(runtime), repr(runtime.engine)]
            errors += [repr(runtime.engine.url), str(runtime.engine.url), repr(runtime.augur)]
            errors += [repr(settings.atlas_url), str(settings.atlas_url)]

    assert [s.type.value for s in states] == ["COMPLETED", "FAILED", "FAILED"]
    assert "HTTP 401" in (states[1].message or "")
    assert 'database "no_such_database" does not exist' in (states[2].message or "")
    assert await linked_ids(admin, finder, dream) == expected
    for state in states:
        errors.append(state.message or "")
        if state.is_failed():
            errors.append(_chain(await state.aresult(raise_on_failure=False)))
    texts = (
        records
        + errors
        + [r.body.decode() for r in augur_stub.requests]
        + await _server_side(states, since)
        + (persisted := _persisted_results(states))
    )
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]

    assert persisted, "no persisted result was read"
    assert len(records) > 100  # DEBUG really was on: SQL, HTTP, Prefect's client
    assert any(r.startswith("sqlalchemy.engine") for r in records)
    assert any(r.startswith("httpcore") for r in records)
    assert _leaks(texts, secrets) == []
    # The search itself finds each form it looks for.
    planted = [f"x{quote(DB_PASSWORD)}x", base64.b64encode(PREFECT_AUTH.encode()).decode()]
    assert len(_leaks(planted, secrets)) == 2


# ----------------------------------------------------------------------------- SQL construction

SQL_CALLS = {"text", "execute", "exec_driver_sql", "fetch", "fetchrow", "fetchval", "executemany"}
# Statements built from text that cannot be bound parameters, each with its reason.
ALLOWED = {
    ("demo.py", 'DROP DATABASE IF EXISTS "{DEMO_DB}" WITH (FORCE)'): "identifier, a constant",
    ("demo.py", 'CREATE DATABASE "{DEMO_DB}"'): "identifier, a constant",
    # The loader's staging table and upsert: module constants (column names, the table's
    # name), no value from a file or a caller.
    (
        "scenes.py",
        "CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (external_id text NOT NULL, collection text "
        "NOT NULL, footprint bytea NOT NULL, acquired_at timestamptz NOT NULL, cloud_cover real, "
        "gsd real, properties jsonb NOT NULL) ON COMMIT DROP",
    ): "identifier, a constant",
    ("scenes.py", "TRUNCATE {STAGE}"): "identifier, a constant",
    (
        "scenes.py",
        "WITH written AS ( INSERT INTO archive_item AS item ({', '.join(COLUMNS)}) SELECT "
        "{_SELECTED} FROM {STAGE} ORDER BY external_id ON CONFLICT (external_id) DO UPDATE SET "
        "{_SET} WHERE ({_MINE}) IS DISTINCT FROM ({_THEIRS}) RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT "
        "inserted) AS updated FROM written",
    ): "column names, constants",
    # noctis db check-indexes: EXPLAIN of a count built with SQLAlchemy from the schema's tables
    # (literal binds: two constant envelope corners), to prove it reads the GiST.
    ("indexes.py", "'EXPLAIN (FORMAT JSON) ' + str(compiled)"): "a construct compiled, constants",
}


def _built_sql(node: ast.expr) -> str | None:
    """The source of a string built at run time (f-string, %, +, .format), else None."""
    if isinstance(node, ast.JoinedStr):
        return "".join(
            # An f-string's constant parts are str (typeshed: any constant's type).
            cast(str, v.value) if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"
            for v in node.values
            if isinstance(v, ast.Constant | ast.FormattedValue)
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return ast.unparse(node)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        return ast.unparse(node)
    return None


def test_sql_is_only_built_from_bound_parameters_and_constructs() -> None:
    root = Path(noctis.__file__).parent
    found = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else getattr(node.func, "id", None)
            )
            if name in SQL_CALLS and (sql := _built_sql(node.args[0])) is not None:
                found[(path.name, sql)] = f"{path.relative_to(root)}:{node.lineno}"
    unexpected = {k: v for k, v in found.items() if k not in ALLOWED}
    assert unexpected == {}
    assert set(ALLOWED) <= set(found), "an allowed exception is gone: update ALLOWED"


# Secrets as operators really write them: read from files (a trailing newline), with spaces,
# URL-special and non-ASCII characters. The token must be a bearer token (RFC 6750), so it has
# only the URL-special characters a token may have.
AWKWARD_DB_PASSWORD = "pw with space/#?&=%é-\u00fc-9f3\n"
AWKWARD_TOKEN = "tok-+/=~._8c1e2d\n"


async def test_awkward_secrets_never_leak_whatever_fails(
    study_env: Settings,
    postgis_url: URL,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Secrets with a trailing newline, spaces, URL-special and non-ASCII characters: they
    work (surrounding whitespace is stripped), and no form of them appears anywhere when the
    database is down, when Augur refuses, and when Augur echoes the token back."""
    role = f"noctis_awkward_{uuid.uuid4().hex[:6]}"
    password = AWKWARD_DB_PASSWORD.strip()
    database = study_env.atlas_url.database
    await admin.execute(
        psycopg.sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(password)
        )
    )
    try:
        url = postgis_url.set(
            drivername="postgresql", username=role, password=password, database=database
        ).render_as_string(hide_password=False)
        monkeypatch.setenv("ATLAS_DB_URL", url + "\n")  # as read from a file
        monkeypatch.setenv("NOCTIS_AUGUR_API_TOKEN", AWKWARD_TOKEN)
        get_settings.cache_clear()
        finder, dream, expected = await _seed(admin)
        since = datetime.now(UTC) - timedelta(seconds=5)
        states: list[State[Any]] = []
        with _every_log_record() as records:
            states.append(await run_study(finder, dream))  # works: secrets stripped
            assert states[-1].is_completed(), states[-1].message
            token = AWKWARD_TOKEN.strip()
            augur_stub.script([Reply(403, json={"detail": f"refused Bearer {token}"})])
            states.append(await run_study(finder, dream))  # Augur refuses, echoing the token
            augur_stub.script([Reply(503, text=f"down; you sent {token!r}")] * 9)
            states.append(await run_study(finder, dream))  # Augur down, echoing it escaped
            down = postgis_url.set(port=1, username=role, password=password, database=database)
            monkeypatch.setenv("ATLAS_DB_URL", down.render_as_string(hide_password=False))
            monkeypatch.setenv("ATLAS_DB_CONNECT_TIMEOUT", "1")
            get_settings.cache_clear()
            states.append(await run_study(finder, dream))  # Atlas down
        assert [s.type.value for s in states] == ["COMPLETED", "FAILED", "FAILED", "FAILED"]
        assert augur_stub.requests[0].header("Authorization") == f"Bearer {token}"
        assert await linked_ids(admin, finder, dream) == expected
        texts = records + [r.body.decode() for r in augur_stub.requests]
        for state in states:
            texts.append(state.message or "")
            if state.is_failed():
                texts.append(_chain(await state.aresult(raise_on_failure=False)))
        texts += await _server_side(states, since)
        captured = capfd.readouterr()
        texts += [captured.out, captured.err]
        leaks = _leaks(texts, [AWKWARD_DB_PASSWORD, AWKWARD_TOKEN])
        assert leaks == []
        # The search finds each form it looks for.
        planted = [repr(AWKWARD_TOKEN.encode()), quote(AWKWARD_DB_PASSWORD.strip(), safe="")]
        assert all(_leaks([text], [AWKWARD_DB_PASSWORD, AWKWARD_TOKEN]) for text in planted)
    finally:
        get_settings.cache_clear()
        await admin.execute(
            psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(role))
        )


async def test_an_unexpected_error_quoting_a_secret_is_masked_in_the_failed_notification(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Noctis' own errors hold no secret; another library's may (a driver quoting its DSN):
    the ``failed`` notification carries its text masked."""
    token = study_env.noctis_augur_api_token
    assert token is not None
    secrets = [token.get_secret_value(), study_env.atlas_db_password.get_secret_value()]

    async def quoting(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"boom: token {secrets[0]} password {secrets[1]}")

    monkeypatch.setattr(noctis.flows.imagery_finder_study, "check", quoting)
    finder, dream, _ = await _seed(admin)
    state = await run_study(finder, dream)
    assert state.is_failed()
    (request,) = augur_stub.requests
    body = request.json
    assert body["event"] == "imagery-finder-study.failed"
    assert body["error"].startswith("RuntimeError: boom: token ")
    assert _leaks([request.body.decode()], secrets) == []
