"""``plugins.proxy``: upstream services, their path rules, timeouts and proxy functions."""

from __future__ import annotations

from functools import cached_property
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from framex.http.auth import match_rule, rule_table


def matches(rules: list[str], path: str) -> bool:
    """Whether ``path`` matches one of ``rules``: exact paths, or prefixes ending in ``*``."""
    for rule in rules:
        if rule.endswith("*"):
            if path.startswith(rule[:-1]):
                return True
        elif rule == path:
            return True
    return False


def _check_rules(rules: list[str]) -> list[str]:
    for rule in rules:
        if not rule.startswith("/") and rule != "*":
            raise ValueError(f"path rule {rule!r} must start with `/` (or be `*`)")
    return rules


def normalize_url(url: str) -> str:
    """``http://host:port`` without a trailing slash; anything else is refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or not url.isascii():
        raise ValueError(f"upstream {url!r} must be an http:// or https:// URL, like `http://127.0.0.1:9000`")
    if parts.query or parts.fragment:
        raise ValueError(f"upstream {url!r} must have no query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


class UpstreamSettings(BaseModel):
    """One upstream service: which of its paths to serve, and the keys it wants."""

    model_config = ConfigDict(extra="forbid")

    enable: list[str] = Field(default_factory=lambda: ["/api/v1/*"], description="Paths to mirror (`*` = prefix).")
    disable: list[str] = Field(default_factory=list, description="Paths never mirrored; wins over `enable`.")
    openapi_path: str = Field("/api/v1/openapi.json", description="Where the upstream serves its OpenAPI document.")
    auth: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Keys sent upstream in `Authorization`, by path rule (exact path or prefix ending in `*`).",
    )

    _check = field_validator("enable", "disable")(_check_rules)

    @field_validator("openapi_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with `/`")
        return value

    @field_validator("auth")
    @classmethod
    def _auth_rules(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        _check_rules(list(value))
        for rule, key in value.items():
            secret = key.get_secret_value()
            # The key goes into a header line: a line break would start a header of its own.
            if not secret.isascii() or any(c < " " or c == "\x7f" for c in secret if c != "\t"):
                raise ValueError(f"the key for {rule!r} must be printable ASCII (no line breaks or control characters)")
        return value

    def allows(self, path: str) -> bool:
        """Mirror ``path``? ``disable`` wins over ``enable``."""
        return not matches(self.disable, path) and matches(self.enable, path)

    def key_for(self, path: str) -> str | None:
        """The key to send for ``path``: an exact rule, else the longest matching prefix."""
        key = match_rule(self._keys, path)
        return key.get_secret_value() if key is not None else None

    @cached_property
    def _keys(self) -> tuple[dict[str, SecretStr], tuple[tuple[str, SecretStr], ...]]:
        return rule_table(self.auth)


class ProxySettings(BaseModel):
    """The ``plugins.proxy`` section."""

    model_config = ConfigDict(extra="forbid")

    upstreams: dict[str, UpstreamSettings] = Field(default_factory=dict, description="Upstream base URL -> rules.")
    timeout: float = Field(60.0, gt=0, description="Seconds for a whole forwarded request (streams: between chunks).")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to open a connection to an upstream.")
    force_stream_apis: list[str] = Field(
        default_factory=list, description="Paths whose responses are always streamed, never read whole first."
    )
    max_connections: int = Field(100, ge=1, description="Pooled connections per upstream.")
    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest header block accepted from an upstream; a larger one is a 502."
    )
    max_body_in_memory: int = Field(
        1 << 20, ge=0, description="Request bodies up to this many bytes are sent in one piece; larger ones stream."
    )
    startup_retries: int = Field(3, ge=0, description="Tries after the first to read an upstream's OpenAPI at start.")
    retry_interval: float = Field(0.5, gt=0, description="Seconds before the first retry; doubles each time.")
    max_retry_interval: float = Field(30.0, gt=0, description="Longest wait between two tries.")
    proxy_functions: dict[str, list[str]] = Field(
        default_factory=dict, description="FrameX service URL -> `module.function` names run there."
    )

    _check = field_validator("force_stream_apis")(_check_rules)

    @field_validator("upstreams")
    @classmethod
    def _urls(cls, value: dict[str, UpstreamSettings]) -> dict[str, UpstreamSettings]:
        return {normalize_url(url): rules for url, rules in value.items()}

    @field_validator("proxy_functions")
    @classmethod
    def _function_urls(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {normalize_url(url): names for url, names in value.items()}

    @model_validator(mode="after")
    def _one_home_per_function(self) -> ProxySettings:
        seen: dict[str, str] = {}
        for url, names in self.proxy_functions.items():
            for name in names:
                if "." not in name:
                    raise ValueError(f"proxy function {name!r} must be `module.function`")
                if name in seen:
                    raise ValueError(f"proxy function {name!r} is listed under both {seen[name]} and {url}")
                seen[name] = url
        return self

    def function_home(self, name: str) -> str | None:
        """The URL of the service that runs proxy function ``name``, or None (run it here)."""
        for url, names in self.proxy_functions.items():
            if name in names:
                return url
        return None
