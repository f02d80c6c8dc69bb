"""Constants shared across FrameX."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION: str = version("framex")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0.0.0"

API_STR = "/api/v1"
"""Prefix given to every plugin HTTP path that does not already start with it."""

CONFIG_ENV = "FRAMEX_CONFIG"
"""Environment variable naming the YAML file to load."""

ENV_PREFIX = "FRAMEX__"
"""Prefix of environment overrides: ``FRAMEX__SERVER__PORT=9000``."""

DEFAULT_CONFIG_PATH = "config/local.yaml"
REQUEST_ID_HEADER = "X-Request-ID"
