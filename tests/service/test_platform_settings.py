"""Settings: typed, frozen, built from an environment mapping, secrets redacted, missing ones named."""

from __future__ import annotations

import dataclasses
import pickle
from typing import ClassVar

import pytest

from services.platform.settings import (
    DEFAULT_MAX_MESSAGE_BYTES,
    InvalidSettingError,
    MissingSettingError,
    Secret,
    ServerSettings,
    env,
    exit_on_settings_error,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BrokerSettings(ServerSettings):
    env_prefix: ClassVar[str] = "BROKER_"
    port: int = env("PORT", default=8081, ge=0, le=65535)
    client_secret: Secret = env("CLIENT_SECRET", help="Tastytrade OAuth client secret")
    sandbox: bool = env("SANDBOX", default=True)
    symbols: tuple[str, ...] = env("SYMBOLS", default=())
    refresh_token: Secret | None = env("REFRESH_TOKEN", default=None)
    database_url: str = env("DATABASE_URL", absolute=True, default="postgresql://localhost/tastyplat")


BASE = {"BROKER_CLIENT_SECRET": "s3cr3t-value"}


def test_missing_required_setting_names_the_variable() -> None:
    with pytest.raises(MissingSettingError, match="BROKER_CLIENT_SECRET") as info:
        BrokerSettings.from_env({})
    assert info.value.variable == "BROKER_CLIENT_SECRET"
    assert "OAuth client secret" in str(info.value)


def test_secret_is_redacted_in_repr_and_str() -> None:
    settings = BrokerSettings.from_env({**BASE, "BROKER_REFRESH_TOKEN": "rt-123"})
    for text in (repr(settings), str(settings), repr(settings.client_secret), str(settings.client_secret)):
        assert "s3cr3t" not in text and "rt-123" not in text
    assert settings.client_secret.reveal() == "s3cr3t-value"
    assert settings.refresh_token is not None and settings.refresh_token.reveal() == "rt-123"


def test_secret_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret("x"))


def test_settings_are_frozen() -> None:
    settings = BrokerSettings.from_env(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_defaults_and_typed_values() -> None:
    settings = BrokerSettings.from_env(BASE)
    assert (settings.port, settings.sandbox, settings.symbols, settings.refresh_token) == (8081, True, (), None)
    assert settings.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES == 64 * 1024 * 1024
    assert settings.database_url == "postgresql://localhost/tastyplat"
    parsed = BrokerSettings.from_env(
        {
            **BASE,
            "BROKER_PORT": "9000",
            "BROKER_SANDBOX": "off",
            "BROKER_SYMBOLS": "SPY, QQQ,,IWM",
            "BROKER_GRACE_SECONDS": "2.5",
            "DATABASE_URL": "postgresql://db/x",
        }
    )
    assert (parsed.port, parsed.sandbox, parsed.symbols) == (9000, False, ("SPY", "QQQ", "IWM"))
    assert parsed.grace_seconds == 2.5 and parsed.database_url == "postgresql://db/x"
    assert parsed.listen_address == "0.0.0.0:9000"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("BROKER_PORT", "eighty", "integer"),
        ("BROKER_PORT", "70000", "<= 65535"),
        ("BROKER_SANDBOX", "maybe", "true/false"),
        ("BROKER_GRACE_SECONDS", "nan", "finite"),
        ("BROKER_GRACE_SECONDS", "-1", ">= 0"),
        ("BROKER_MAX_MESSAGE_BYTES", "1024", ">= 4194304"),
    ],
)
def test_malformed_value_names_the_variable(variable: str, value: str, problem: str) -> None:
    with pytest.raises(InvalidSettingError, match=problem) as info:
        BrokerSettings.from_env({**BASE, variable: value})
    assert info.value.variable == variable and variable in str(info.value)


def test_empty_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(InvalidSettingError, match="BROKER_CLIENT_SECRET: empty secret"):
        BrokerSettings.from_env({"BROKER_CLIENT_SECRET": ""})


def test_overrides_win_over_the_environment() -> None:
    settings = BrokerSettings.from_env({**BASE, "BROKER_PORT": "9000"}, port=0)
    assert settings.port == 0
    with pytest.raises(TypeError, match="no fields"):
        BrokerSettings.from_env(BASE, nope=1)


def test_server_settings_require_a_port() -> None:
    with pytest.raises(MissingSettingError, match="^missing required setting PORT"):
        ServerSettings.from_env({})


def test_exit_on_settings_error_exits_2_with_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        exit_on_settings_error(BrokerSettings, {})
    assert info.value.code == 2
    assert "configuration error: missing required setting BROKER_CLIENT_SECRET" in capsys.readouterr().err


def test_variable_name_is_reported_with_prefix() -> None:
    assert BrokerSettings.variable_name("client_secret") == "BROKER_CLIENT_SECRET"
    assert BrokerSettings.variable_name("database_url") == "DATABASE_URL"
