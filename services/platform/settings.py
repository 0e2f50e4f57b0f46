"""Frozen, typed service settings built once from an environment mapping; secrets redacted.

A service declares its settings as a frozen keyword-only dataclass whose fields name their variable::

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class BrokerSettings(ServerSettings):
        env_prefix: ClassVar[str] = "BROKER_"
        port: int = env("PORT", default=8081, ge=0, le=65535)
        client_secret: Secret = env("CLIENT_SECRET")            # required: BROKER_CLIENT_SECRET

    settings = BrokerSettings.from_env(os.environ)               # in __main__, once

Field types understood: ``str``, ``int``, ``float``, ``bool``, ``Secret``, ``tuple[str, ...]`` (comma
separated) and ``X | None`` of those (empty or unset gives None).
"""

from __future__ import annotations

import dataclasses
import hmac
import math
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, NoReturn, Self, TypeVar

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "InvalidSettingError",
    "MissingSettingError",
    "Secret",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "env",
    "exit_on_settings_error",
]

MiB = 1024 * 1024
# Batches (columns of a whole option chain, report chunks) exceed gRPC's 4 MiB default on purpose.
DEFAULT_MAX_MESSAGE_BYTES = 64 * MiB

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingsError(Exception):
    """A setting is missing or malformed; start-up must stop."""


class MissingSettingError(SettingsError):
    """A required environment variable is not set (the message names it)."""

    def __init__(self, variable: str, help_text: str = "") -> None:
        """Create the error for ``variable``."""
        hint = f" ({help_text})" if help_text else ""
        super().__init__(f"missing required setting {variable}{hint}")
        self.variable = variable


class InvalidSettingError(SettingsError):
    """An environment variable is set to something its field cannot take (the message names it)."""

    def __init__(self, variable: str, problem: str) -> None:
        """Create the error for ``variable``; ``problem`` must not quote a secret's value."""
        super().__init__(f"invalid setting {variable}: {problem}")
        self.variable = variable


class Secret:
    """A secret string that never shows itself in ``repr``, ``str`` or logs; read it with ``reveal()``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        """Wrap ``value``."""
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself (pass it straight to the library that needs it)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values are not picklable")


T = TypeVar("T")


def env(
    name: str,
    *,
    default: Any = dataclasses.MISSING,
    help: str = "",  # noqa: A002  # reads naturally at the declaration site
    absolute: bool = False,
    ge: float | None = None,
    le: float | None = None,
) -> Any:
    """Declare a settings field read from an environment variable.

    Args:
        name: Variable name, prefixed with the class's ``env_prefix`` unless ``absolute``.
        default: Value when unset; without one the variable is required.
        help: What the value is, quoted in the missing-setting message.
        absolute: Use ``name`` as is (shared variables such as ``DATABASE_URL``).
        ge: Inclusive lower bound for numbers.
        le: Inclusive upper bound for numbers.

    Returns:
        A ``dataclasses.field`` carrying the declaration.
    """
    metadata = {"env": name, "help": help, "absolute": absolute, "ge": ge, "le": le}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _fail_invalid(variable: str, problem: str) -> NoReturn:
    raise InvalidSettingError(variable, problem)


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


def _parse(variable: str, raw: str, annotation: Any, ge: float | None, le: float | None) -> Any:
    kind, optional = _unwrap_optional(annotation)
    text = raw.strip()
    if optional and text == "":
        return None
    if kind is Secret:
        if raw == "":
            _fail_invalid(variable, "empty secret")
        return Secret(raw)
    if kind is str:
        return raw
    if kind is bool:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        _fail_invalid(variable, f"expected one of true/false/1/0/yes/no/on/off, got {raw!r}")
    if kind is int or kind is float:
        try:
            value: int | float = int(text) if kind is int else float(text)
        except ValueError:
            _fail_invalid(variable, f"expected {'an integer' if kind is int else 'a number'}, got {raw!r}")
        if isinstance(value, float) and not math.isfinite(value):
            _fail_invalid(variable, f"expected a finite number, got {raw!r}")
        if ge is not None and value < ge:
            _fail_invalid(variable, f"must be >= {_bound(ge)}, got {value!r}")
        if le is not None and value > le:
            _fail_invalid(variable, f"must be <= {_bound(le)}, got {value!r}")
        return value
    if typing.get_origin(kind) is tuple and typing.get_args(kind) == (str, Ellipsis):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    raise TypeError(f"settings field for {variable} has an unsupported type {annotation!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Base of every settings class: frozen, keyword-only, built by ``from_env``.

    Attributes:
        env_prefix: Prepended to each field's variable name (``"BROKER_"``).
    """

    env_prefix: ClassVar[str] = ""

    @classmethod
    def variable_name(cls, field_name: str) -> str:
        """Return the environment variable a field is read from."""
        for f in dataclasses.fields(cls):
            if f.name == field_name:
                return cls._variable(f)
        raise KeyError(field_name)

    @classmethod
    def _variable(cls, f: dataclasses.Field[Any]) -> str:
        name = f.metadata["env"]
        return str(name) if f.metadata.get("absolute") else f"{cls.env_prefix}{name}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Self:
        """Build the settings from ``environ`` (read it once, in ``__main__``).

        Args:
            environ: The environment, usually ``os.environ``.
            **overrides: Field values that win over the environment (the embedded runner, tests).

        Returns:
            The frozen settings.

        Raises:
            MissingSettingError: A required variable is unset; the message names it.
            InvalidSettingError: A variable cannot be parsed into its field's type or is out of bounds.
        """
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in overrides:
                values[f.name] = overrides[f.name]
                continue
            if "env" not in f.metadata:
                continue  # a plain field: its default applies
            variable = cls._variable(f)
            raw = environ.get(variable)
            if raw is None:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise MissingSettingError(variable, f.metadata.get("help", ""))
                continue
            values[f.name] = _parse(variable, raw, hints[f.name], f.metadata.get("ge"), f.metadata.get("le"))
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
        return cls(**values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerSettings(Settings):
    """The settings every gRPC server has; a service subclasses it and overrides ``port``'s default.

    Attributes:
        host: Listen address (``HOST``).
        port: Listen port (``PORT``); 0 takes a free one.
        grace_seconds: How long ``stop`` lets in-flight calls finish (``GRACE_SECONDS``).
        drain_seconds: Pause between NOT_SERVING and stop, so load balancers notice (``DRAIN_SECONDS``).
        max_message_bytes: Largest message sent or received (``MAX_MESSAGE_BYTES``).
        peer_timeout_seconds: Deadline given to a peer call that names none (``PEER_TIMEOUT_SECONDS``).
        peer_stream_timeout_seconds: The same for streaming peer calls (``PEER_STREAM_TIMEOUT_SECONDS``).
        log_level: Root log level (``LOG_LEVEL``).
    """

    host: str = env("HOST", default="0.0.0.0", help="listen address")
    port: int = env("PORT", ge=0, le=65535, help="listen port")
    grace_seconds: float = env("GRACE_SECONDS", default=10.0, ge=0.0)
    drain_seconds: float = env("DRAIN_SECONDS", default=1.0, ge=0.0)
    max_message_bytes: int = env("MAX_MESSAGE_BYTES", default=DEFAULT_MAX_MESSAGE_BYTES, ge=4 * MiB, le=2**31 - 1)
    peer_timeout_seconds: float = env("PEER_TIMEOUT_SECONDS", default=5.0, ge=0.001)
    peer_stream_timeout_seconds: float = env("PEER_STREAM_TIMEOUT_SECONDS", default=3600.0, ge=0.001)
    log_level: str = env("LOG_LEVEL", default="INFO")

    @property
    def listen_address(self) -> str:
        """``host:port`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


S = TypeVar("S", bound=Settings)


def exit_on_settings_error(cls: type[S], environ: Mapping[str, str], **overrides: Any) -> S:
    """Build settings for a ``__main__``; on a bad configuration print why to stderr and exit with status 2."""
    try:
        return cls.from_env(environ, **overrides)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
