"""The proxy of one container: its upstreams, what it found on them, its retries."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Any

from framex.builtins.proxy.client import Upstream, UpstreamUnavailableError
from framex.builtins.proxy.config import ProxySettings, UpstreamSettings
from framex.builtins.proxy.forward import ForwardRoute, api_caller
from framex.builtins.proxy.openapi import Operation, operations, schemas
from framex.plugin.decorators import ApiSpec
from framex.plugin.loader import ExternalApi
from framex.plugin.metadata import ApiType
from framex.plugin.registry import PluginRegistry

logger = logging.getLogger("framex.proxy")

PLUGIN = "proxy"


class ProxyState:
    """Upstreams of one container, the operations mirrored from them, and the background
    retries of upstreams that were down at start-up. The container's plugin runtime keeps
    it (``runtime.state``)."""

    def __init__(self, registry: PluginRegistry, settings: ProxySettings) -> None:
        self.registry = registry
        self.settings = settings
        self.upstreams = {url: Upstream(url, rules, settings) for url, rules in settings.upstreams.items()}
        self._retries: set[asyncio.Task[None]] = set()

    def upstream(self, url: str) -> Upstream:
        """The upstream at ``url``; one without mirroring rules is added for proxy functions."""
        found = self.upstreams.get(url)
        if found is None:
            found = self.upstreams[url] = Upstream(url, UpstreamSettings(enable=[]), self.settings)
        return found

    async def start(self) -> None:
        """Read every upstream's OpenAPI document (with the start-up retries) and mirror it.

        An upstream still unreachable after them is retried in the background; its
        routes appear once it answers.
        """
        mirroring = [u for u in self.upstreams.values() if u.rules.enable]
        results = await asyncio.gather(*(self._discover(u, self.settings.startup_retries) for u in mirroring))
        for upstream, error in zip(mirroring, results, strict=True):
            if error is None:
                continue
            logger.warning(
                "proxy: %s; its routes are not served yet. Retrying in the background (up to every %.0f s); "
                "check that it runs and `plugins.proxy.upstreams` has its right address.",
                error,
                self.settings.max_retry_interval,
            )
            task = asyncio.create_task(self._keep_trying(upstream), name=f"framex-proxy-retry {upstream.url}")
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

    async def stop(self) -> None:
        """Stop the retries and close the connection pools."""
        for task in list(self._retries):
            task.cancel()
        for task in list(self._retries):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for upstream in self.upstreams.values():
            await upstream.close()

    async def _discover(self, upstream: Upstream, retries: int) -> UpstreamUnavailableError | None:
        """Mirror ``upstream``; the last error when it stayed unreachable, else None."""
        wait = self.settings.retry_interval
        for attempt in range(retries + 1):
            try:
                doc = await upstream.get_json(upstream.rules.openapi_path)
            except UpstreamUnavailableError as exc:
                if attempt == retries:
                    return exc
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.settings.max_retry_interval)
                continue
            except ValueError as exc:
                # Reachable but no usable document: a configuration matter, not worth retrying.
                logger.error(
                    "proxy: upstream %s: %s. Check `openapi_path` (now %s) in `plugins.proxy.upstreams`.",
                    upstream.url,
                    exc,
                    upstream.rules.openapi_path,
                )
                return None
            self._mirror(upstream, doc)
            return None
        return None

    async def _keep_trying(self, upstream: Upstream) -> None:
        wait = self.settings.retry_interval
        while True:
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.settings.max_retry_interval)
            if await self._discover(upstream, 0) is None:
                logger.info("proxy: upstream %s answered; its routes are served now", upstream.url)
                return

    def _mirror(self, upstream: Upstream, doc: Any) -> None:
        try:
            found = operations(doc, upstream.rules, self.settings.force_stream_apis)
        except ValueError as exc:
            logger.error("proxy: upstream %s: %s", upstream.url, exc)
            return
        components = schemas(doc)
        mirrored = 0
        for op in found:
            if self.registry.serves(op.method, op.path):
                logger.warning(
                    "proxy: `%s` of upstream %s is not mirrored: it is served here already", op.label, upstream.url
                )
                continue
            self.registry.add_external_api(_external_api(upstream, op, components))
            mirrored += 1
        logger.info("proxy: mirroring %d route(s) of %s", mirrored, upstream.url)


def _signature(op: Operation) -> inspect.Signature:
    params = [
        inspect.Parameter(
            p.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if p.required else None,
        )
        for p in op.params
        if p.name.isidentifier()
    ]
    if op.has_body:
        params.append(inspect.Parameter("body", inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(params)


def _external_api(upstream: Upstream, op: Operation, components: dict[str, Any]) -> ExternalApi:
    spec = ApiSpec(path=op.path, methods=(op.method,), call_type=ApiType.HTTP, stream=op.stream, api_prefix=False)
    return ExternalApi(
        plugin=PLUGIN,
        name=f"{PLUGIN}:{op.label}",
        spec=spec,
        func=api_caller(upstream, op),
        owner=None,
        signature=_signature(op),
        return_type=Any,
        model_params={},
        route=ForwardRoute(upstream, op),
        operation=op.spec,
        schemas=components,
        source=upstream.url,
    )
