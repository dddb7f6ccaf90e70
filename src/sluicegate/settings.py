"""Settings: the YAML config file, with `${VAR}` secrets taken from the environment."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml
from platformdirs import user_data_dir
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sluicegate.config_errors import validation_error, yaml_error
from sluicegate.governance.config import DatabaseConfig, GovernanceConfig, env_or_none
from sluicegate.providers.embedded.config import DEFAULT_EMBEDDINGS_MODEL, EmbeddedConfig, runtime_available
from sluicegate.providers.local.config import LocalConfig
from sluicegate.wiring.entry import ModelSpec, check_fallbacks

log = logging.getLogger("sluicegate.settings")
DEFAULT_LOCAL_MODEL = "smollm2-135m-instruct"
# Without a config file, code written for OpenAI (the usual guides say `gpt-4o`) runs unchanged
# against the embedded model; answers still name the model that wrote them.
DEFAULT_LOCAL_ALIASES = ("gpt-4o", "gpt-4o-mini")
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """The config file cannot be used; the message says where and why."""


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port
    cache_max_bytes: int = Field(default=64 << 20, ge=0)  # the response cache's memory; 0: no cache
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)  # a request body larger is 413
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    key_cache_seconds: float = Field(default=2.0, gt=0)  # a revoked key works at most this long
    # While a stream waits (for the upstream, its next chunk, a place in the local queue), the
    # client gets a keep-alive (an SSE comment; Anthropic's `ping`) after `keepalive_first_s` of
    # silence, then every `keepalive_interval_s`, so idle timeouts of proxies do not cut it.
    keepalive: bool = True
    keepalive_first_s: float = Field(default=5.0, gt=0)
    keepalive_interval_s: float = Field(default=10.0, gt=0)
    # On SIGTERM / Ctrl-C, requests in flight may finish for this long; then they end with the
    # door's error event (or a 503 when nothing was sent yet).
    shutdown_timeout_s: float = Field(default=10.0, ge=0)
    worker_timeout_s: float = Field(default=30.0, gt=0)  # a worker silent this long is restarted
    header_timeout_s: float = Field(default=10.0, gt=0)  # a request's headers must arrive within this
    metrics: bool = True  # GET /metrics (Prometheus)
    otel_endpoint: str | None = None  # OTLP/HTTP traces (the `otel` extra); else OTEL_EXPORTER_OTLP_*


class RedisConfig(BaseModel):
    """`redis://host:6379/0`, shared by every replica (deployment cooldowns, rate-limit
    counters); unset: each process keeps its own. The YAML wins over SLUICEGATE_REDIS_URL."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default_factory=lambda: env_or_none("SLUICEGATE_REDIS_URL"))
    # of every key and channel the gateway uses
    prefix: str = Field(default_factory=lambda: env_or_none("SLUICEGATE_REDIS_PREFIX") or "sluicegate:")


class ResponsesConfig(BaseModel):
    """The Responses door's kept responses and background mode (api/responses/background.py)."""

    model_config = ConfigDict(extra="forbid")

    # a stored response is forgotten this long after it was made (OpenAI keeps them 30 days);
    # null: kept until deleted
    store_ttl_days: float | None = Field(default=30.0, gt=0)
    # background responses in flight per API key (in each gateway process); 0: background mode off
    background_per_key: int = Field(default=16, ge=0)
    purge_interval_s: float = Field(default=3600.0, gt=0)  # how often expired responses are removed


class StreamsConfig(BaseModel):
    """The events kept for resuming a stream (background responses, resumable streams): in
    Redis when `redis.url` is set (shared by replicas), else in this process."""

    model_config = ConfigDict(extra="forbid")

    ttl_s: float = Field(default=600.0, gt=0)  # a stream's events are dropped this long after its last one
    max_events: int = Field(default=50_000, ge=1)  # per stream; the oldest go first
    max_streams: int = Field(default=10_000, ge=1)  # kept in memory (not in Redis); the oldest go first
    # a reader of a stream silent this long asks whether the process writing it is alive
    poll_s: float = Field(default=5.0, gt=0)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server: ServerConfig = Field(default_factory=ServerConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    models: list[ModelSpec] = Field(default_factory=lambda: default_models())
    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    governance: GovernanceConfig = Field(default_factory=GovernanceConfig)
    responses: ResponsesConfig = Field(default_factory=ResponsesConfig)
    streams: StreamsConfig = Field(default_factory=StreamsConfig)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelSpec]) -> list[ModelSpec]:
        seen: set[str] = set()
        for model in models:
            for name in (model.name, *model.aliases):
                if name in seen:
                    raise ValueError(
                        f"the name {name!r} is used twice (as a model name or an alias); each name must be unique"
                    )
                seen.add(name)
        if not models:
            raise ValueError("no models are configured; add at least one entry under `models:`")
        check_fallbacks(models)
        return models


def default_models() -> list[ModelSpec]:
    """The embedded chat model, and the embedded embeddings model where its extra is installed."""
    models: list[ModelSpec] = [
        LocalConfig(name=DEFAULT_LOCAL_MODEL, provider="local", aliases=list(DEFAULT_LOCAL_ALIASES))
    ]
    if runtime_available():
        models.append(EmbeddedConfig(name=DEFAULT_EMBEDDINGS_MODEL, provider="embedded"))
    return models


def default_data_dir() -> Path:
    env = os.environ.get("SLUICEGATE_DATA_DIR")
    return Path(env) if env else Path(user_data_dir("sluicegate", appauthor=False))


def interpolate(
    value: Any, environ: dict[str, str] | os._Environ[str] = os.environ, missing: set[str] | None = None
) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of the parsed YAML.

    Unset (or empty) variables without a default become empty strings and are added to `missing`.
    """

    def lookup(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if not environ.get(name) and default is None and missing is not None:
            missing.add(name)
        value = environ.get(name, "")
        # As the shell's `${VAR:-default}`: the default also stands in for a set but empty variable.
        return value if value or default is None else default

    if isinstance(value, str):
        return _ENV_PATTERN.sub(lookup, value)
    if isinstance(value, list):
        return [interpolate(item, environ, missing) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, environ, missing) for key, item in value.items()}
    return value


_warned: set[tuple[str, str]] = set()


def load_settings(config_file: str | Path | None = None, data_dir: str | Path | None = None) -> Settings:
    """Settings from the config file (argument, then SLUICEGATE_CONFIG), else the defaults."""
    path = str(config_file or os.environ.get("SLUICEGATE_CONFIG") or "") or None
    raw: dict[str, Any] = {}
    tree: yaml.Node | None = None
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a directory, not a config file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.__class__.__name__}: {exc})") from None
        try:
            tree = yaml.compose(text, Loader=yaml.SafeLoader)
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(yaml_error(path, exc)) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}, line 1: the top level must be a mapping (server:, models:...)")
        missing: set[str] = set()
        raw = interpolate(loaded, missing=missing)
        for name in sorted(missing):
            seen = (os.path.realpath(path), name)  # loaded more than once per process, by more than one path
            if seen not in _warned:
                _warned.add(seen)
                log.warning("%s: environment variable %s is not set; using an empty value", path, name)
    if data_dir is not None:
        raw["data_dir"] = str(data_dir)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(validation_error(path, exc, tree, Settings)) from None
