"""Serving on Ray Serve: one deployment per plugin class, and an HTTP ingress deployment.

Nothing built in the driver is pickled into Serve: each replica receives the validated
settings as a plain dict, builds its own container from it, imports the plugins and
makes its own FastAPI app or plugin instance. Calls to a plugin class go through its
deployment handle; module-level handlers run wherever they are called.
"""

from __future__ import annotations

import inspect
import logging
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, nullcontext
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from dependency_injector import providers
from ray import serve as _serve
from starlette.exceptions import HTTPException

from framex.adapters.ray import start_ray, stop_ray, unwrap_error
from framex.config import deep_merge, validate_settings
from framex.container import Container, container_of
from framex.context import use_container
from framex.errors import FrameXError, PluginDefinitionError
from framex.kit import health_check_of
from framex.logs import REQUEST_ID, configure_replica_logging
from framex.plugin.decorators import REGISTER_ATTR, RegisterSpec
from framex.plugin.loader import PluginApi
from framex.plugin.registry import PluginRegistry
from framex.plugin.runtime import PluginRuntime
from framex.summary import StartupSummary, url_of

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

    from framex.tracing import Tracing

CallContext = tuple["str | None", "dict[str, str] | None"]
"""What a call to a plugin deployment carries: the caller's request id and trace context."""

# Ray Serve's annotations are partial; FrameX checks its own code, not Serve's.
serve: Any = _serve

logger = logging.getLogger("framex.ray")


def deployment_name(plugin: str, cls: type) -> str:
    """The deployment serving a plugin class: ``@on_register(name=...)``, else ``<plugin>.<Class>``."""
    spec = cls.__dict__.get(REGISTER_ATTR)
    custom = spec.options.get("name") if isinstance(spec, RegisterSpec) else None
    return str(custom) if custom else f"{plugin}.{cls.__name__}"


def streams(api: PluginApi) -> bool:
    return api.spec.stream or inspect.isasyncgenfunction(api.func) or inspect.isgeneratorfunction(api.func)


def _replica_container(settings_doc: dict[str, Any]) -> Container:
    container = container_of(validate_settings(settings_doc, "the settings the driver shipped"))
    use_container(container)  # the replica's process default: plugin code finds it anywhere
    configure_replica_logging(container.settings().log)
    return container


class InTransitHTTPError(Exception):
    """An ``HTTPException`` on its way from a plugin replica to the ingress.

    Starlette's ``HTTPException`` does not survive pickling, so replicas send this.
    """

    def __init__(self, status_code: int, detail: Any, headers: dict[str, str] | None) -> None:
        super().__init__(status_code, detail, headers)

    @classmethod
    def wrap(cls, exc: HTTPException) -> InTransitHTTPError:
        return cls(exc.status_code, exc.detail, dict(exc.headers) if exc.headers else None)

    def unwrap(self) -> HTTPException:
        return HTTPException(*self.args)


def _reraise(exc: Exception, api: PluginApi) -> NoReturn:
    error = unwrap_error(exc, api.label)
    if isinstance(error, InTransitHTTPError):
        raise error.unwrap() from None
    raise error from None


class HandleForwarder:
    """Forwards plugin-class API calls to their deployments."""

    def __init__(self, app_name: str, tracing: Tracing | None = None) -> None:
        self.app_name = app_name
        self.tracing = tracing
        self._handles: dict[str, DeploymentHandle[Any]] = {}

    def _context(self) -> CallContext | None:
        rid = REQUEST_ID.get()
        if self.tracing is None:
            return None if rid is None else (rid, None)
        return rid, self.tracing.inject()

    def _handle(self, name: str) -> DeploymentHandle[Any]:
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = serve.get_deployment_handle(name, app_name=self.app_name)
        return handle

    async def __call__(self, api: PluginApi, kwargs: dict[str, Any]) -> Any:
        assert api.owner is not None
        handle = self._handle(deployment_name(api.plugin, api.owner))
        if streams(api):
            return self._stream(handle, api, kwargs)
        try:
            return await handle.call.remote(api.name, kwargs, self._context())
        except Exception as exc:
            _reraise(exc, api)

    async def _stream(
        self, handle: DeploymentHandle[Any], api: PluginApi, kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        response: Any = handle.options(stream=True).stream.remote(api.name, kwargs, self._context())
        try:
            async for item in response:
                yield item
        except Exception as exc:
            _reraise(exc, api)
        finally:
            response.cancel()


class PluginReplica:
    """A replica of one plugin class: its instance, started before it takes calls."""

    async def __init__(  # type: ignore[misc]  # Serve awaits async constructors
        self, settings_doc: dict[str, Any], plugin: str, class_name: str
    ) -> None:
        container = _replica_container(settings_doc)
        runtime: PluginRuntime = container.runtime()
        registry = runtime.registry
        registry.load_configured()
        classes = [cls for cls, _ in registry.plugins[plugin].classes if cls.__name__ == class_name]
        tracing = container.tracing()
        runtime.forward_classes(HandleForwarder(container.settings().ray.app_name, tracing), keep=classes[0])
        await runtime.start()
        self.tracing = tracing
        self.runtime = runtime
        self.registry = registry
        self._health = health_check_of(runtime, plugin, classes[0])

    async def check_health(self) -> None:
        """Ray Serve's periodic check: the plugin class's own ``check_health``, if it has one."""
        if self._health is not None:
            result = self._health()
            if inspect.isawaitable(result):
                await result

    async def __del__(self) -> None:
        # Ray Serve awaits this when it stops the replica: the plugin's `on_stop`.
        await self.runtime.stop()

    async def call(self, api_name: str, kwargs: dict[str, Any], context: CallContext | None = None) -> Any:
        try:
            if context is None:
                return await self.runtime.invoke(self.registry.get_api(api_name), kwargs)
            with self._as_caller(api_name, context):
                return await self.runtime.invoke(self.registry.get_api(api_name), kwargs)
        except HTTPException as exc:
            raise InTransitHTTPError.wrap(exc) from None

    @contextmanager
    def _as_caller(self, api_name: str, context: CallContext) -> Iterator[None]:
        # In the caller's request (its id on log records) and trace (a span of this replica).
        rid, trace = context
        token = REQUEST_ID.set(rid)
        try:
            tracing = self.tracing
            if tracing is None or trace is None:
                yield
                return
            attributes = {"framex.api": api_name, "framex.request_id": rid or ""}
            with tracing.span(f"serve {api_name}", attributes, tracing.kinds.SERVER, tracing.extract(trace)):
                yield
        finally:
            REQUEST_ID.reset(token)

    async def stream(
        self, api_name: str, kwargs: dict[str, Any], context: CallContext | None = None
    ) -> AsyncIterator[Any]:
        # Serve drives this generator in a task of its own: the context it enters lasts
        # until the stream ends, in that task only.
        with self._as_caller(api_name, context) if context is not None else nullcontext():
            async for item in self._stream(api_name, kwargs):
                yield item

    async def _stream(self, api_name: str, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        try:
            items = await self.runtime.invoke(self.registry.get_api(api_name), kwargs)
            if hasattr(items, "__aiter__"):
                async for item in items:
                    yield item
            else:
                for item in items:
                    yield item
        except HTTPException as exc:
            raise InTransitHTTPError.wrap(exc) from None


class Ingress:
    """The HTTP entry point: the same FastAPI app as in local mode, built in the replica."""

    def __init__(self, settings_doc: dict[str, Any], *plugin_deployments: Any) -> None:
        self.settings_doc = settings_doc

    def __serve_build_asgi_app__(self) -> Any:
        container = _replica_container(self.settings_doc)
        container.runtime().forward_classes(HandleForwarder(container.settings().ray.app_name, container.tracing()))
        # Serve's proxy assigns request ids and returns them in the header itself.
        container.request_ids.override(providers.Object(_serve_request_id))
        return container.app()


def _serve_request_id() -> str | None:
    from ray.serve.context import _get_serve_request_context

    rid: str | None = _get_serve_request_context().request_id
    return rid


IngressDeployment = serve.ingress()(Ingress)


SERVE_LOGGING = {"enable_access_log": False}
"""Ray Serve's logging of the proxy and the deployments: FrameX's ingress writes the one
access line per request (with Serve's request id), so Serve writes none of its own."""

MAX_ONGOING_REQUESTS = 100
"""Requests a replica takes at once unless its options say otherwise."""


def deployment_options(*layers: dict[str, Any]) -> dict[str, Any]:
    """Serve deployment options, later layers winning (``ray_actor_options`` merged key by key).

    Replicas reserve no CPU unless asked: they route requests and await, while CPU-heavy
    work belongs in ``@remote`` tasks, which do reserve CPUs. For the same reason a
    replica takes many requests at once: Serve's own default of 5 leaves requests
    queued in its proxy (with growing back-off) while the replicas sit idle.
    """
    merged: dict[str, Any] = {"ray_actor_options": {"num_cpus": 0}, "max_ongoing_requests": MAX_ONGOING_REQUESTS}
    for layer in layers:
        deep_merge(merged, layer)
    return merged


def build_application(container: Container) -> Any:
    """The Serve application: plugin-class deployments bound under the ingress."""
    settings = container.settings()
    registry: PluginRegistry = container.registry()
    registry.load_configured()
    registry.check_requirements()  # fail in the driver, before anything is deployed
    doc = settings.model_dump(mode="json")
    plugin_deployments = []
    for plugin in registry.plugins.values():
        for cls, spec in plugin.classes:
            options = deployment_options(settings.ray.deployment_defaults, spec.options)
            options["name"] = deployment_name(plugin.name, cls)
            try:
                deployment = serve.deployment(PluginReplica, **options)
            except (TypeError, ValueError) as exc:
                raise PluginDefinitionError(
                    f"Plugin `{plugin.name}`: invalid Ray Serve deployment options for `{cls.__name__}` "
                    f"(from `@on_register(...)` and `ray.deployment_defaults`): {exc}"
                ) from exc
            plugin_deployments.append(deployment.bind(doc, plugin.name, cls.__name__))
    ingress_options = deployment_options({"name": "ingress"}, settings.ray.ingress_options)
    # Binding the plugin deployments as (unused) arguments makes them part of the app.
    return serve.deployment(IngressDeployment, **ingress_options).bind(doc, *plugin_deployments)


def serve_on_ray(container: Container) -> None:
    """``framex run`` with ``adapter: ray``: deploy, serve until SIGTERM / Ctrl-C, clean up."""
    settings = container.settings()
    application = build_application(container)
    registry: PluginRegistry = container.registry()
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    start_ray(settings)
    # After `ray.init`, which installs handlers of its own.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve.start(
            http_options={"host": settings.server.host, "port": settings.server.port}, logging_config=SERVE_LOGGING
        )
        try:
            serve.run(
                application,
                name=settings.ray.app_name,
                route_prefix="/",
                blocking=False,
                logging_config=SERVE_LOGGING,
            )
        except Exception as exc:
            raise FrameXError(
                f"Deploying the plugins on Ray Serve failed: {type(exc).__name__}: {exc}. "
                "The replica logs (see above, or /tmp/ray/session_latest/logs) name the plugin."
            ) from exc
        replicas = settings.ray.ingress_options.get("num_replicas", 1)
        StartupSummary.of_plugins(
            "ray",
            url_of(settings.server.host, settings.server.port),
            registry.plugins.values(),
            replicas if isinstance(replicas, int) else 1,
        ).log(settings.log.format)
        stop.wait()
    finally:
        try:
            if settings.ray.address is None:
                serve.shutdown()  # the private instance goes away with everything on it
            else:
                serve.delete(settings.ray.app_name)  # a shared cluster keeps its other apps
        finally:
            stop_ray()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
