"""The FrameX exception hierarchy.

Every error FrameX raises derives from :class:`FrameXError` and also from the builtin
exception that matches its meaning, so callers can catch either.
"""

from __future__ import annotations


class FrameXError(Exception):
    """Base class of every FrameX error."""


class ConfigError(FrameXError, ValueError):
    """The configuration (YAML, environment, CLI flags or plugin config) is invalid."""


class PluginLoadError(FrameXError, ImportError):
    """A plugin could not be imported or registered."""


class PluginDefinitionError(FrameXError, TypeError):
    """A plugin declares its APIs in a way FrameX cannot serve."""


class PluginStartError(FrameXError, RuntimeError):
    """A plugin's ``on_start`` hook failed."""


class ApiNotFoundError(FrameXError, LookupError, RuntimeError):
    """``call_plugin_api`` named an API that no loaded plugin provides.

    Also a ``RuntimeError``, which FrameX-kit code catches."""


class ApiNotDeclaredError(FrameXError, PermissionError, RuntimeError):
    """A plugin called an API missing from its ``required_remote_apis``.

    Also a ``RuntimeError``, which FrameX-kit code catches."""


class RemoteError(FrameXError, RuntimeError):
    """A ``@remote`` call could not be executed by its backend."""


class RemoteTimeoutError(FrameXError, TimeoutError):
    """A ``@remote`` call took longer than its ``timeout``."""


class BatchResultError(FrameXError, TypeError):
    """A batched ``@remote`` function did not return one result per item."""


class UpstreamError(FrameXError, ConnectionError):
    """A call to another service (an upstream) failed: it is unreachable, timed out, or
    answered with an error (``status``)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
