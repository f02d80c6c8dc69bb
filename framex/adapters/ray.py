"""The Ray backend: ``@remote`` work runs as Ray tasks.

Ray is imported and started on first use (never at import or container construction),
either as a private instance listening on 127.0.0.1 or by joining ``ray.address``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

from framex.adapters.calls import (
    call_by_reference,
    drive_async_generator,
    importable,
    reference,
    run_coroutine_function,
    stream_by_reference,
)
from framex.adapters.carry import Carried, WorkerSetup, carry, entered
from framex.config import RaySettings, Settings
from framex.consts import CONFIG_ENV
from framex.errors import FrameXError, RemoteError

if TYPE_CHECKING:
    from framex.adapters.base import Adapter
    from framex.remote import RemoteFunction
    from framex.tracing import Tracing

logger = logging.getLogger("framex.ray")

_init_lock = threading.Lock()
_paths: list[str] | None = None
_started_here = False  # whether this process started the Ray instance it is connected to


def prepare_environment(settings: Settings) -> None:
    """Set what Ray reads from the environment; call before Ray is first imported.

    A private instance listens on 127.0.0.1 only, and a cluster at a loopback address
    is reached there: Ray decides both from ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` when
    it is imported (otherwise it swaps 127.0.0.1 for the machine's own address).
    """
    global _paths
    if _paths is None and "ray" not in sys.modules:
        _paths = _project_paths()
    conf = settings.ray
    if conf.address is None or _is_loopback(conf.address):
        if "ray" in sys.modules and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "0":
            logger.warning(
                "Ray was imported before FrameX configured it, so the private Ray instance may listen on "
                "every interface. Import Ray after FrameX starts it, or set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0."
            )
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    _apply_auth(conf)


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


def require_ray() -> None:
    """Fail with a clear message when Ray is not installed."""
    _ray()


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FrameXError(
            "`adapter: ray` needs Ray. Install it with `pip install 'framex[ray]'`, or use `adapter: local`."
        ) from None
    return ray


def worker_env(settings: Settings) -> dict[str, str]:
    """Environment for Ray workers: their own ``@remote`` calls go to Ray too."""
    env = {"FRAMEX__ADAPTER": "ray"}
    config = os.environ.get(CONFIG_ENV)
    if config:
        env[CONFIG_ENV] = os.path.abspath(config)
    return env


def _project_paths() -> list[str]:
    # The working directory and the script's folder: where plugin modules are imported
    # from. Read before Ray is imported, which puts folders of its own first.
    paths = [os.getcwd()]
    if sys.path and sys.path[0] and os.path.isdir(sys.path[0]) and "site-packages" not in sys.path[0]:
        paths.append(os.path.abspath(sys.path[0]))
    existing = os.environ.get("PYTHONPATH")
    if existing:
        paths.append(existing)
    return list(dict.fromkeys(paths))


def start_ray(settings: Settings) -> None:
    """Connect this process to Ray as configured, once; a no-op inside Ray workers."""
    global _started_here
    prepare_environment(settings)
    ray = _ray()
    if ray.is_initialized():
        return
    with _init_lock:
        if ray.is_initialized():
            return
        conf: RaySettings = settings.ray
        runtime_env = dict(conf.runtime_env)
        env_vars = {**worker_env(settings), **runtime_env.get("env_vars", {})}
        kwargs: dict[str, Any] = {"namespace": conf.namespace, "log_to_driver": conf.log_to_driver}
        if conf.address is None:
            # A private instance on this machine: workers import plugins the way the
            # driver does, and Ray listens on loopback only.
            env_vars.setdefault("PYTHONPATH", os.pathsep.join(_paths or _project_paths()))
            kwargs.update(
                # "local": always a new instance, never one found on the machine.
                address="local",
                num_cpus=conf.num_cpus,
                include_dashboard=conf.dashboard,
                _node_ip_address="127.0.0.1",
            )
        else:
            kwargs["address"] = conf.address
        runtime_env["env_vars"] = env_vars
        kwargs["runtime_env"] = runtime_env
        try:
            ray.init(**kwargs)
        except Exception as exc:
            where = f"the Ray cluster at `{conf.address}`" if conf.address else "a local Ray instance"
            raise FrameXError(
                f"Could not start or join {where}: {type(exc).__name__}: {exc}. Check `ray.address`, and for a "
                "cluster started with `ray start` its token (`ray.auth_mode: token`, see docs/ray.md)."
            ) from exc
        _started_here = conf.address is None


def _apply_auth(conf: RaySettings) -> None:
    # Ray reads its token settings from the environment of the driver.
    if conf.auth_mode is not None:
        os.environ["RAY_AUTH_MODE"] = conf.auth_mode
    if conf.auth_token is not None:
        os.environ["RAY_AUTH_TOKEN"] = conf.auth_token
    if conf.auth_token_path is not None:
        os.environ["RAY_AUTH_TOKEN_PATH"] = os.path.expanduser(conf.auth_token_path)


def stop_ray() -> None:
    """Disconnect from Ray; a private instance started by this process stops with it."""
    global _started_here
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    _started_here = False


def unwrap_error(exc: BaseException, label: str) -> BaseException:
    """The exception to raise for a failed Ray call: the task's own, where Ray has it."""
    import ray.exceptions as rex

    if isinstance(exc, rex.RayTaskError):
        cause = exc.cause
        if isinstance(cause, BaseException) and not isinstance(cause, rex.RayError):
            remote_tb = str(exc).strip()
            if remote_tb:
                cause.add_note(f"Raised in a Ray worker running `{label}`:\n{remote_tb}")
            return cause
        # Typed here: Ray leaves it unannotated, and without the `ray` extra it is `Any`.
        as_cause: Callable[[], BaseException] = exc.as_instanceof_cause
        return as_cause()
    if isinstance(exc, (rex.WorkerCrashedError, rex.NodeDiedError, rex.ActorDiedError, rex.ObjectLostError)):
        error = RemoteError(
            f"`{label}` did not finish: the Ray worker running it died ({type(exc).__name__}). "
            "Check the worker's log for an out-of-memory kill or a crash in native code."
        )
        error.__cause__ = exc
        return error
    return exc


def _task_function(fn: RemoteFunction[..., Any]) -> Callable[..., Any]:
    # Ray tasks are sync: async functions run on a loop kept by the worker thread (no
    # loop set-up per call), and async generators are driven the same way. A function
    # the worker can import is sent by name, so the worker uses its module as it is
    # there (its globals are not pickled along); others are sent by value.
    ref = reference(fn) if importable(fn) else None
    func = fn.func
    run: Callable[..., Any]
    if ref is not None:
        if fn.is_generator:

            def run(*args: Any, **kwargs: Any) -> Any:
                yield from stream_by_reference(ref, args, kwargs)

        else:

            def run(*args: Any, **kwargs: Any) -> Any:
                return call_by_reference(ref, args, kwargs)

    elif fn.is_async_gen:

        def run(*args: Any, **kwargs: Any) -> Any:
            yield from drive_async_generator(func, args, kwargs)

    elif fn.is_async:

        def run(*args: Any, **kwargs: Any) -> Any:
            return run_coroutine_function(func, args, kwargs)

    else:
        return func
    run.__name__ = getattr(func, "__name__", "task")
    run.__qualname__ = getattr(func, "__qualname__", run.__name__)
    return run


def _carried_task_function(fn: RemoteFunction[..., Any]) -> Callable[..., Any]:
    # The same task, entered as the caller's request (and trace) in the worker; its first
    # argument is the `Carried` of the call.
    inner = _task_function(fn)
    label = fn.func.__qualname__
    run: Callable[..., Any]
    if fn.is_generator:

        def run(carried: Carried, *args: Any, **kwargs: Any) -> Any:
            with entered(carried, label):
                yield from inner(*args, **kwargs)

    else:

        def run(carried: Carried, *args: Any, **kwargs: Any) -> Any:
            with entered(carried, label):
                return inner(*args, **kwargs)

    run.__name__ = getattr(fn.func, "__name__", "task")
    run.__qualname__ = label
    return run


def _is_task_worker() -> bool:
    # A process that runs plain Ray tasks (not the driver, not an actor such as a Serve
    # replica, whose event loop must never block).
    try:
        from ray._private import worker

        current = worker.global_worker
        return bool(current.mode == worker.WORKER_MODE and current.actor_id.is_nil())
    except Exception:
        return False


class RayAdapter:
    """Runs ``@remote`` functions as Ray tasks; the task wrapper is built once per function."""

    name = "ray"
    retries_tasks = True
    """``retries`` / ``retry_on`` become Ray task retries (application exceptions included)."""

    def __init__(
        self, settings: Settings, tracing: Tracing | None = None, worker_setup: WorkerSetup | None = None
    ) -> None:
        self.settings = settings
        self.tracing = tracing
        """The service's tracing (None: off): the trace context goes with every task."""
        self.worker_setup = worker_setup or WorkerSetup(settings.log, settings.tracing if tracing else None)
        self._tasks: dict[RemoteFunction[..., Any], Any] = {}
        self._carried_tasks: dict[RemoteFunction[..., Any], Any] = {}
        self._task_worker: bool | None = None

    def _blocking_wait(self) -> bool:
        if self._task_worker is None:
            self._task_worker = _is_task_worker()
        return self._task_worker

    def _submit(self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Start the task of one call (with the caller's request and trace, when there are any)."""
        carried = carry(self.tracing, self.worker_setup, "ray")
        if carried is None:
            return self._task(fn).remote(*args, **kwargs)
        return self._task(fn, carried=True).remote(carried, *args, **kwargs)

    def _task(self, fn: RemoteFunction[..., Any], carried: bool = False) -> Any:
        tasks = self._carried_tasks if carried else self._tasks
        task = tasks.get(fn)
        if task is None:
            start_ray(self.settings)
            opts = fn.opts
            # No retry unless asked: re-running application code is opt-in.
            options: dict[str, Any] = {
                "max_retries": opts.retries,
                "retry_exceptions": list(opts.retry_on) if opts.retries else False,
                **opts.ray_resources,
            }
            if fn.is_generator:
                options["num_returns"] = "streaming"
            function = _carried_task_function(fn) if carried else _task_function(fn)
            task = tasks[fn] = _ray().remote(**options)(function)
        return task

    async def call(self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ref = self._submit(fn, args, kwargs)
        try:
            if self._blocking_wait():
                # Inside a Ray task, `ray.get` tells Ray the worker waits, so Ray lends its
                # CPU to the task it waits for; awaiting the ref would hold the CPU and can
                # deadlock a full cluster. (Fan out with `.map`, which waits for all at once.)
                return _ray().get(ref)
            return await ref
        except asyncio.CancelledError:
            _ray().cancel(ref)
            raise
        except Exception as exc:
            raise unwrap_error(exc, fn.func.__qualname__) from None

    async def call_many(
        self, fn: RemoteFunction[..., Any], calls: list[tuple[Any, ...]], return_exceptions: bool
    ) -> list[Any]:
        """Submit every call, then wait for all: a fan-out runs in parallel, in a task too."""
        refs = [self._submit(fn, args, {}) for args in calls]
        label = fn.func.__qualname__
        try:
            if self._blocking_wait():
                ray = _ray()
                if not return_exceptions:
                    return list(ray.get(refs))
                results: list[Any] = []
                for ref in refs:
                    try:
                        results.append(ray.get(ref))
                    except Exception as exc:
                        results.append(unwrap_error(exc, label))
                return results
            outcomes = await asyncio.gather(*refs, return_exceptions=True)
        except asyncio.CancelledError:
            for ref in refs:
                _ray().cancel(ref)
            raise
        except Exception as exc:
            raise unwrap_error(exc, label) from None
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors and not return_exceptions:
            for ref in refs:
                _ray().cancel(ref)
            raise unwrap_error(errors[0], label) from None
        return [unwrap_error(o, label) if isinstance(o, BaseException) else o for o in outcomes]

    async def stream(
        self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        """A generator function as a Ray streaming task: items arrive as the task yields them."""
        refs = self._submit(fn, args, kwargs)
        label = fn.func.__qualname__
        finished = False
        try:
            async for ref in refs:
                try:
                    item = await ref
                except Exception as exc:
                    raise unwrap_error(exc, label) from None
                yield item
            finished = True
        finally:
            if not finished:
                _ray().cancel(refs)  # the consumer stopped early: stop the producer

    def close(self) -> None:
        # Ray itself stays up: whoever started it (`framex run`, a script's exit, a test
        # session) shuts it down.
        self._tasks.clear()
        self._carried_tasks.clear()

    def __repr__(self) -> str:
        return f"RayAdapter(address={self.settings.ray.address!r})"


if TYPE_CHECKING:
    _conforms: Adapter = RayAdapter(Settings())  # mypy checks the contract; never runs
