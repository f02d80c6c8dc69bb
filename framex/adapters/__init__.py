"""Execution backends for ``@remote`` work."""

from framex.adapters.base import Adapter
from framex.adapters.local import LocalAdapter

__all__ = ["Adapter", "LocalAdapter"]
