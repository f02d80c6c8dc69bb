"""The configuration schema and how a configuration document is assembled.

Sources, from weakest to strongest: built-in defaults, the YAML file (with ``${VAR}`` /
``${VAR:default}`` interpolation), ``FRAMEX__A__B=value`` environment variables, then
explicit overrides (CLI flags, ``create_container(**overrides)``). The merged document is
validated by :class:`Settings`; every failure becomes one :class:`ConfigError` naming the
source, the key path and the fix.
"""

from __future__ import annotations

import os
import re
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from framex.config_sources import deep_merge, env_overrides, nest_overrides, read_yaml, resolve_config_path
from framex.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]+")


def _origin(value: str) -> str:
    if value != "*" and not _ORIGIN.fullmatch(value):
        raise ValueError(
            "an origin is `*` or `scheme://host[:port]` without a path or trailing slash, "
            "like `https://app.example.com` (browsers send it in that form)"
        )
    return value


class CorsSettings(_Strict):
    """Cross-origin requests from browsers (Starlette's CORSMiddleware); see security.md."""

    allow_origins: list[Annotated[str, AfterValidator(_origin)]] = Field(
        min_length=1, description="Origins allowed to call the service; `*` for any."
    )
    allow_methods: list[Annotated[str, AfterValidator(str.upper)]] = Field(
        default_factory=lambda: ["GET"], description="Methods allowed cross-origin; `*` for any."
    )
    allow_headers: list[str] = Field(
        default_factory=list, description="Request headers allowed besides the CORS-safelisted ones (`Authorization`)."
    )
    allow_credentials: bool = False
    expose_headers: list[str] = Field(default_factory=list, description="Response headers scripts may read.")
    max_age: int = Field(600, ge=0, description="Seconds browsers may cache a preflight answer.")

    @model_validator(mode="after")
    def _no_credentials_for_any_origin(self) -> CorsSettings:
        if self.allow_credentials and "*" in self.allow_origins:
            # Starlette would echo any origin back with credentials allowed: every web
            # site could then call the service with its visitors' cookies.
            raise ValueError("`allow_credentials: true` needs explicit `allow_origins`, not `*`")
        return self


class ServerSettings(_Strict):
    """Where and how the HTTP service listens."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    title: str = "FrameX"
    workers: int = Field(
        1,
        ge=1,
        description="Worker processes serving one port (`framex run`, local backend); each has its own container.",
    )
    shutdown_timeout_s: int = Field(
        30, ge=0, description="On SIGTERM / Ctrl-C, how long in-flight requests may take to finish."
    )
    loop_block_warn_ms: int = Field(
        100, ge=0, description="Warn when the event loop is blocked longer than this (ms); 0 turns the watchdog off."
    )
    cors: CorsSettings | None = Field(None, description="Cross-origin access from browsers; off when null.")
    max_body_bytes: int | None = Field(
        16 * 1024 * 1024, ge=0, description="Largest request body accepted (413 above it); null: no limit."
    )
    compiled_routes: bool = Field(
        True,
        description="Serve plugin routes through their compiled request path; false: FastAPI's path for every route.",
    )


class LocalSettings(_Strict):
    """The in-process backend."""

    max_workers: int = Field(32, ge=1, description="Thread pool size for sync @remote work.")
    executor: Literal["thread", "process"] = Field(
        "thread", description="Where sync @remote work runs unless a function says otherwise."
    )
    max_processes: int | None = Field(
        None, ge=1, description="Process pool size for `executor: process` work (default: the number of CPUs)."
    )


class RaySettings(_Strict):
    """The Ray backend. ``address`` null starts a private local Ray instance on 127.0.0.1."""

    address: str | None = Field(None, description='Join a running cluster: "auto" or "host:port".')
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a private instance (default: all).")
    namespace: str = "framex"
    dashboard: bool = False
    log_to_driver: bool = True
    runtime_env: dict[str, Any] = Field(default_factory=dict, description="Passed to `ray.init`.")
    auth_mode: Literal["token", "disabled"] | None = Field(
        None, description="Sets RAY_AUTH_MODE for this process (token auth of clusters started with `ray start`)."
    )
    auth_token: str | None = Field(None, description="Sets RAY_AUTH_TOKEN; use ${VAR} to keep it out of the file.")
    auth_token_path: str | None = Field(None, description="Sets RAY_AUTH_TOKEN_PATH.")
    app_name: str = "framex"
    deployment_defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Ray Serve deployment options for every plugin class; `@on_register(...)` wins.",
    )
    ingress_options: dict[str, Any] = Field(
        default_factory=dict, description="Ray Serve deployment options of the HTTP ingress."
    )


def _ttl(value: int) -> int:
    if value != -1 and value <= 0:
        raise ValueError("the ttl is a number of seconds > 0, or -1 for entries that never expire")
    return value


class CacheSettings(_Strict):
    """Caching of the routes that opt in with ``@on_request(..., cache={...})``; see caching.md."""

    enabled: bool = Field(False, description="Off: opted-in routes run every time (`X-FrameX-Cache-Status: DISABLED`).")
    mode: Literal["memory", "file"] = Field("memory", description="memory: per process; file: files in `file_dir`.")
    ttl: Annotated[int, AfterValidator(_ttl)] = Field(
        300, description="Seconds an entry is served, unless its route sets its own; -1: no expiry."
    )
    max_size: int = Field(1024, ge=1, description="Entries kept; storing one more evicts the oldest.")
    file_dir: str = Field(".framex-cache", description="The folder of `mode: file` (relative: to the working dir).")


def _rule_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("a rule path must start with `/`, like `/api/v1/base/version` or `/api/v1/base/*`")
    if "*" in value[:-1]:
        raise ValueError("`*` may only be the last character of a rule path (`/prefix/*` covers the paths under it)")
    if "?" in value or "#" in value:
        raise ValueError("a rule path is matched against the request path only: leave out `?query` and `#fragment`")
    return value


_API_KEY = re.compile(r"[!-~]+")


def _api_key(value: object) -> str:
    # Before validation: a number or boolean from YAML would otherwise become other text.
    if not isinstance(value, str):
        raise ValueError(
            f"an API key must be a string, not {type(value).__name__}: quote it in the YAML "
            "(a key from `${VAR}` must not read as a number or boolean)"
        )
    if not _API_KEY.fullmatch(value):
        # It travels in the `Authorization` header: a space would be ambiguous with `Bearer <key>`.
        raise ValueError("an API key must be a non-empty string of visible ASCII characters, without spaces")
    return value


def _key_list(keys: list[str]) -> list[str]:
    if not keys:
        raise ValueError("a rule needs at least one key (remove the rule to make its paths public)")
    return keys


class AuthSettings(_Strict):
    """API keys required by request path; see security.md."""

    rules: dict[
        Annotated[str, AfterValidator(_rule_path)],
        Annotated[list[Annotated[str, BeforeValidator(_api_key)]], AfterValidator(_key_list)],
    ] = Field(
        default_factory=dict,
        repr=False,  # keys stay out of reprs and logs
        description="Path (exact, or a prefix ending in `*`) -> the API keys accepted there.",
    )


def _url_path(value: str) -> str:
    if not value.startswith("/") or "?" in value or "#" in value:
        raise ValueError("give a URL path starting with `/`, without `?query` or `#fragment`, like `/metrics`")
    return value


class MetricsSettings(_Strict):
    """Prometheus metrics of the HTTP service and of ``@remote`` calls; see observability.md."""

    enabled: bool = Field(False, description="Serve metrics at `path` and count requests and @remote calls.")
    path: Annotated[str, AfterValidator(_url_path)] = Field(
        "/metrics", description="Where the Prometheus text is served (protect it with `auth.rules` if needed)."
    )


def _page_path(value: str) -> str:
    value = _url_path(value)
    if value.endswith("/"):
        raise ValueError("give the page's path without a trailing `/`, like `/console` (its JSON is under it)")
    return value


class ConsoleSettings(_Strict):
    """The live console page and its JSON; see console.md."""

    enabled: bool = Field(True, description="Serve the console page at `path` and its JSON at `<path>/api/state`.")
    path: Annotated[str, AfterValidator(_page_path)] = Field(
        "/console", description="Where the console is served (protect it with `auth.rules` if needed)."
    )
    interval_s: float = Field(
        5.0, ge=1.0, le=60.0, description="Seconds between two latency samples, and between two page refreshes."
    )
    history_minutes: int = Field(10, ge=1, le=120, description="How far back the latency sparklines reach.")


class LogSettings(_Strict):
    """The process's logging under ``framex run``, and the access log; see observability.md."""

    level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    format: Literal["text", "json"] = Field(
        "text", description="text: `LEVEL logger: message` lines; json: one JSON object per line."
    )
    access_log: bool = Field(True, description="One `framex.access` line per request (INFO).")
    exclude_paths: list[Annotated[str, AfterValidator(_url_path)]] = Field(
        default_factory=list, description="Request paths (exact) that write no access line, e.g. health probes."
    )


def _endpoint(value: str) -> str:
    if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value):
        raise ValueError("give the collector's OTLP/HTTP traces URL, like `http://127.0.0.1:4318/v1/traces`")
    return value


class TracingSettings(_Strict):
    """OpenTelemetry traces of requests, plugin calls, ``@remote`` work and upstream calls; see observability.md."""

    enabled: bool = Field(False, description="Make spans and export them (needs `pip install 'framex[tracing]'`).")
    service_name: str = Field("framex", min_length=1, description="The `service.name` resource attribute.")
    exporter: Literal["otlp", "console", "none"] = Field(
        "otlp", description="otlp: OTLP over HTTP to `endpoint`; console: print spans; none: make spans only."
    )
    endpoint: Annotated[str, AfterValidator(_endpoint)] = Field(
        "http://127.0.0.1:4318/v1/traces", description="Where the OTLP/HTTP exporter posts spans."
    )
    sample_ratio: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of new traces recorded; a caller's sampled flag wins."
    )
    resource_attributes: dict[str, str] = Field(
        default_factory=dict, description="Extra resource attributes (`deployment.environment: prod`)."
    )


class Settings(_Strict):
    """The whole validated configuration of one FrameX service."""

    adapter: Literal["local", "ray"] = "local"
    server: ServerSettings = ServerSettings()
    local: LocalSettings = LocalSettings()
    ray: RaySettings = RaySettings()
    load_plugins: list[str] = Field(default_factory=list)
    load_builtin_plugins: list[str] = Field(default_factory=list)
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    auth: AuthSettings = AuthSettings()
    cache: CacheSettings = CacheSettings()
    metrics: MetricsSettings = MetricsSettings()
    console: ConsoleSettings = ConsoleSettings()
    log: LogSettings = LogSettings()
    tracing: TracingSettings = TracingSettings()


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Assemble and validate the configuration; raise :class:`ConfigError` on any problem."""
    path = resolve_config_path(config_path)
    document: dict[str, Any] = read_yaml(path) if path is not None and not _is_kit_file(path) else {}
    source = f"`{path}`" if path is not None else "the built-in defaults"
    kit = _kit_document(path, os.environ if environ is None else environ)
    if kit is not None:
        document, source = kit
    env_tree, env_origin = env_overrides(os.environ if environ is None else environ)
    deep_merge(document, env_tree)
    deep_merge(document, nest_overrides(overrides or {}))
    return validate_settings(document, source, env_origin)


def _is_kit_file(path: Path) -> bool:
    return path.suffix == ".toml" or path.name.startswith(".env")


def _kit_document(path: Path | None, environ: Mapping[str, str]) -> tuple[dict[str, Any], str] | None:
    """A FrameX-kit configuration (TOML, ``.env``, unprefixed environment), converted.

    Used for a TOML or ``.env`` file named explicitly, or when no FrameX YAML exists.
    """
    if path is not None and not _is_kit_file(path):
        return None
    from framex.kit_migrate import kit_document  # imports only framex.errors and framex.kit_config

    return kit_document(path, environ)


def validate_settings(
    document: Mapping[str, Any], source: str = "the configuration", env_origin: Mapping[str, str] | None = None
) -> Settings:
    """Validate a configuration mapping into :class:`Settings`."""
    try:
        return Settings.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, Settings, source, env_origin or {})) from None


_GOT = reprlib.Repr()
"""Quotes what was given in messages: a huge or deeply nested value is abbreviated."""
_GOT.maxlevel, _GOT.maxstring, _GOT.maxother = 3, 80, 80

_MOVED = {"server.log_level": "log.level"}
"""Keys of earlier versions, and where they live now."""


def format_validation_error(
    exc: ValidationError, model: type[BaseModel], source: str, env_origin: Mapping[str, str]
) -> str:
    """One readable message for every problem pydantic found."""
    lines = [f"Invalid configuration in {source}:"]
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        path = ".".join(loc) or "(top level)"
        via = f" (set by environment variable `{env_origin[path]}`)" if path in env_origin else ""
        if error["type"] == "extra_forbidden" and path in _MOVED:
            lines.append(f"  - `{path}`{via}: this key moved to `{_MOVED[path]}`; set that instead.")
        elif error["type"] == "extra_forbidden":
            accepted = _accepted_keys(model, loc[:-1])
            hint = f" Accepted keys here: {', '.join(accepted)}." if accepted else ""
            lines.append(f"  - `{path}`{via}: unknown key.{hint} Fix the spelling or remove it.")
        else:
            # What was given under `auth` may hold API keys: never repeat it.
            got = "" if loc[:1] == ["auth"] else f" (got {_GOT.repr(error.get('input'))})"
            lines.append(f"  - `{path}`{via}: {error['msg']}{got}.")
    return "\n".join(lines)


def _accepted_keys(model: type[BaseModel], parents: list[str]) -> list[str]:
    current: Any = model
    for part in parents:
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return []
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


M = TypeVar("M", bound=BaseModel)


def validate_plugin_config(name: str, raw: Mapping[str, Any] | None, model: type[M]) -> M:
    """Validate ``plugins.<name>`` against ``model``; unknown keys are rejected."""
    data = dict(raw or {})
    accepted = {f.alias or key for key, f in model.model_fields.items()} | set(model.model_fields)
    unknown = sorted(set(data) - accepted)
    if unknown:
        raise ConfigError(
            f"Plugin `{name}` config (`plugins.{name}`) has unknown key(s): {', '.join(unknown)}. "
            f"Accepted keys: {', '.join(sorted(model.model_fields)) or '(none)'}."
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"`plugins.{name}.{'.'.join(map(str, e['loc']))}`: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"Plugin `{name}` config is invalid: {problems}.") from None


def __getattr__(name: str) -> Any:
    # FrameX-kit code reads `from framex.config import settings`: a view of the active
    # container's settings under the kit's names, resolved when it is read.
    if name == "settings":
        from framex.kit import settings

        return settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AuthSettings",
    "CacheSettings",
    "ConsoleSettings",
    "CorsSettings",
    "LocalSettings",
    "LogSettings",
    "MetricsSettings",
    "RaySettings",
    "ServerSettings",
    "Settings",
    "TracingSettings",
    "deep_merge",
    "env_overrides",
    "format_validation_error",
    "load_settings",
    "nest_overrides",
    "read_yaml",
    "resolve_config_path",
    "validate_plugin_config",
    "validate_settings",
]
