"""Settings are checked when read: one ConfigurationError naming each variable, never a value;
secrets lose surrounding whitespace; libpq's TLS parameters are understood."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from noctis.db import ssl_argument
from noctis.errors import ConfigurationError
from noctis.settings import (
    Settings,
    TlsSettings,
    get_settings,
    given_settings,
    load_settings,
    use_settings,
)


def _load(**values: object) -> Settings:
    return load_settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"atlas_db_url": "postgresql://u:s3cr3t@h:notaport/db"}, "ATLAS_DB_URL is not a URL"),
        ({"atlas_db_url": "postgresql://u:s3cr3t@h:99999/db"}, "has port 99999: it must be"),
        ({"atlas_db_url": "mysql://u:s3cr3t@h/db"}, "must be a PostgreSQL URL, not mysql"),
        ({"atlas_db_url": "postgresql://u:s3cr3t@h/db?sslmode=on"}, "has sslmode=on: use one"),
        ({"atlas_db_port": "99999"}, "ATLAS_DB_PORT Input should be less than 65536"),
        ({"atlas_db_port": "notaport"}, "ATLAS_DB_PORT Input should be a valid integer"),
        ({"atlas_db_password": "s3cr3t\nmore"}, "ATLAS_DB_PASSWORD holds a control character"),
        ({"atlas_db_sslmode": "sure"}, "ATLAS_DB_SSLMODE must be one of disable, allow"),
        ({"noctis_augur_api_token": "s3cr3t\tx"}, "NOCTIS_AUGUR_API_TOKEN holds a control"),
        ({"noctis_augur_api_token": "s3cr3t é"}, "NOCTIS_AUGUR_API_TOKEN must be printable ASCII"),
        ({"noctis_augur_api_url": "ftp://augur"}, "NOCTIS_AUGUR_API_URL must be an http(s) URL"),
        ({"noctis_augur_api_url": "https://me:s3cr3t@augur"}, "must hold no credentials"),
        ({"noctis_augur_notify_path": "/{dream_pk.__class__}"}, "may only use the placeholders"),
        ({"noctis_augur_notify_path": "/{dream_pk!r}"}, "may only use the placeholders"),
        ({"noctis_augur_notify_path": "/{0}"}, "may only use the placeholders"),
        ({"noctis_augur_notify_path": "/{dream_pk"}, "is not a valid path template"),
        (
            {"atlas_db_url": "postgresql://u:s3cr3t@h/db?keepalives=1"},
            "has the parameter(s) keepalives, which Noctis does not pass on",
        ),
        ({"atlas_db_url": "postgresql://u:s3cr3t@h/db?connect_timeout=x"}, "connect_timeout=x"),
        ({"atlas_db_url": "postgresql://u:s3cr3t@h/db?connect_timeout=0"}, "connect_timeout=0"),
        (
            {"atlas_db_url": "postgresql://u:s3cr3t@h/db?options=--search_path%3Dx"},
            "Noctis takes only '-c name=value' settings",
        ),
        ({"atlas_db_connect_timeout": "inf"}, "ATLAS_DB_CONNECT_TIMEOUT"),
        ({"atlas_db_url": "postgresql://u:s3cr3t@h/db?connect_timeout=%C2%B2"}, "connect_timeout"),
        ({"atlas_db_url": "postgresql://u@h/db?password=s3%0Acr3t"}, "a control character"),
        ({"atlas_db_url": "postgresql://u:s3cr3t@h/db?password=other"}, "two different passwords"),
        (
            {"atlas_db_url": "postgresql://u:s3cr3t@h/db?options=-c%20statement_timeout%3D5"},
            "sets statement_timeout in options: Noctis sets it itself",
        ),
        ({"noctis_augur_timeout": "nan"}, "NOCTIS_AUGUR_TIMEOUT"),
    ],
)
def test_a_refused_setting_is_named_and_its_value_is_not(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        _load(**values)
    text = str(refused.value)
    assert text.startswith("Configuration refused: ")
    assert message in text
    assert "s3cr3t" not in text and "\n" not in text
    assert refused.value.__cause__ is None  # pydantic's error quotes the input: not chained


def test_several_refused_settings_are_reported_together() -> None:
    with pytest.raises(ConfigurationError) as refused:
        _load(atlas_db_port="0", noctis_augur_api_url="nope")
    assert "ATLAS_DB_PORT" in str(refused.value) and "NOCTIS_AUGUR_API_URL" in str(refused.value)


def test_secrets_lose_surrounding_whitespace_read_from_a_file() -> None:
    settings = _load(
        noctis_augur_api_token="tok-+/=~._1\n",
        atlas_db_password="  pw with inner space\r\n",
        atlas_db_url="postgresql://u:p%20w@h:5432/db\n",
    )
    assert settings.noctis_augur_api_token is not None
    assert settings.noctis_augur_api_token.get_secret_value() == "tok-+/=~._1"
    assert settings.atlas_db_password.get_secret_value() == "pw with inner space"
    assert settings.atlas_url.password == "p w"
    assert sorted(settings.secrets()) == ["p w", "pw with inner space", "tok-+/=~._1"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/dreams/{dream_pk}/divinations/continue",
        "/finders/{imagery_finder_pk}/dreams/{dream_pk}",
        "/static",
        "/literal/{{braces}}",
    ],
)
def test_the_documented_placeholders_are_accepted(path: str) -> None:
    assert _load(noctis_augur_notify_path=path).noctis_augur_notify_path == path


def test_libpq_tls_parameters_leave_the_asyncpg_url_and_reach_libpq_clients() -> None:
    settings = _load(
        atlas_db_url="postgresql://u:p@h/db?sslmode=verify-full&sslrootcert=/r.crt&application_name=x"
    )
    assert settings.atlas_url.query == {}
    assert settings.atlas_connection == (10.0, {"application_name": "x"})
    assert settings.atlas_libpq_url.query["sslmode"] == "verify-full"
    assert settings.atlas_sync_url.drivername == "postgresql+psycopg"
    assert settings.atlas_tls == TlsSettings(mode="verify-full", root_cert="/r.crt")


def test_libpq_connection_parameters_reach_the_async_engine_as_its_own() -> None:
    """asyncpg takes no connect_timeout, application_name or options keyword: every database
    command crashed with a TypeError on these libpq parameters (found by a review)."""
    settings = _load(
        atlas_db_url="postgresql://u:p@h/db?connect_timeout=3&application_name=etl"
        "&options=-c%20lock_timeout%3D5000%20-cwork_mem%3D64MB&target_session_attrs=any"
    )
    assert settings.atlas_url.query == {"target_session_attrs": "any"}  # asyncpg takes it
    assert settings.atlas_connection == (
        3.0,
        {"application_name": "etl", "lock_timeout": "5000", "work_mem": "64MB"},
    )
    assert settings.atlas_libpq_url.query["connect_timeout"] == "3"  # libpq reads them itself


def test_a_password_in_the_query_is_the_urls_hidden_and_redacted() -> None:
    settings = _load(atlas_db_url="postgresql://u@h/db?password=s3cr3t")
    assert settings.atlas_url.password == "s3cr3t"
    assert "s3cr3t" not in settings.atlas_url.render_as_string()
    assert "s3cr3t" not in str(settings.atlas_libpq_url)
    assert "s3cr3t" in settings.secrets()


def test_options_take_libpq_escaped_spaces() -> None:
    settings = _load(atlas_db_url=r"postgresql://u:p@h/db?options=-c%20search_path%3Da,\%20b")
    assert settings.atlas_connection[1] == {"search_path": "a, b"}


def test_tls_from_the_five_part_settings() -> None:
    settings = _load(atlas_db_sslmode="require", atlas_db_sslrootcert="/ca.crt")
    assert settings.atlas_tls == TlsSettings(mode="require", root_cert="/ca.crt")
    assert settings.atlas_libpq_url.query == {"sslmode": "require", "sslrootcert": "/ca.crt"}


def test_ssl_argument_follows_libpq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.postgresql/root.crt
    assert ssl_argument(TlsSettings()) is None
    assert ssl_argument(TlsSettings(mode="disable")) is False
    assert ssl_argument(TlsSettings(mode="prefer")) == "prefer"
    require = ssl_argument(TlsSettings(mode="require"))
    assert isinstance(require, ssl.SSLContext)
    assert require.verify_mode == ssl.CERT_NONE and not require.check_hostname
    with pytest.raises(ConfigurationError, match="sslmode=verify-full needs the server's root"):
        ssl_argument(TlsSettings(mode="verify-full"))
    with pytest.raises(ConfigurationError, match=r"sslrootcert .* names no readable file"):
        ssl_argument(TlsSettings(mode="verify-ca", root_cert=str(tmp_path / "missing.crt")))


def test_use_settings_overrides_the_environment_within_the_block() -> None:
    mine = _load(atlas_db_name="inside")
    with use_settings(mine):
        assert get_settings() is mine
    assert get_settings() is not mine


def test_given_settings_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """noctis demo's settings: the shell's ATLAS_* and NOCTIS_* are not the demo's (an
    ATLAS_DB_SSLMODE=verify-full there failed the demo; a review)."""
    monkeypatch.setenv("ATLAS_DB_SSLMODE", "verify-full")
    monkeypatch.setenv("ATLAS_DB_STATEMENT_TIMEOUT_MS", "5")
    monkeypatch.setenv("NOCTIS_AUGUR_API_TOKEN", "has space")  # refused, were it read
    settings = given_settings(atlas_db_url="postgresql://u:p@h/db", noctis_augur_api_url="")
    assert settings.atlas_tls == TlsSettings()
    assert (
        settings.atlas_db_statement_timeout_ms
        == Settings.model_fields["atlas_db_statement_timeout_ms"].default
    )
    assert settings.noctis_augur_api_token is None
    with pytest.raises(ConfigurationError, match="ATLAS_DB_URL must be a PostgreSQL URL"):
        given_settings(atlas_db_url="mysql://u:p@h/db")
