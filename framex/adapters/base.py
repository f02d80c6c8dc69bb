"""The interface every execution backend implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from framex.remote import RemoteFunction


@runtime_checkable
class Adapter(Protocol):
    """Runs ``@remote`` functions. Selected by the ``adapter`` config key."""

    name: str

    async def call(self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run ``fn`` with these arguments on this backend and return its result."""
        ...

    def close(self) -> None:
        """Release the backend's resources (pools, connections)."""
        ...
