"""The contract every execution backend implements."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from framex.remote import RemoteFunction


@runtime_checkable
class Adapter(Protocol):
    """Runs ``@remote`` functions. Selected by the ``adapter`` setting; ``.remote()`` finds it
    in the active container at every call."""

    name: str
    """The backend's name, as metrics and messages show it (``local``, ``ray``)."""
    retries_tasks: bool
    """True when the backend re-runs failed calls itself (``retries`` / ``retry_on``);
    False: ``.remote()`` retries around :meth:`call`."""

    def call(self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]:
        """Run ``fn`` with these arguments on this backend; awaiting the result gives its result.

        An ``async def`` method fits; a backend may also return an awaitable of its own
        (the local backend hands back its thread pool's future).
        """
        ...

    async def call_many(
        self, fn: RemoteFunction[..., Any], calls: list[tuple[Any, ...]], return_exceptions: bool
    ) -> list[Any]:
        """Run ``fn`` once per argument tuple, all at once; results in order.

        With ``return_exceptions`` a failed call's exception takes its place in the list;
        without, the first failure is raised.
        """
        ...

    def stream(
        self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        """Run the generator function ``fn`` and yield its items as they are produced;
        closing the iterator early stops the producer."""
        ...

    def close(self) -> None:
        """Release the backend's resources (pools, connections)."""
        ...
