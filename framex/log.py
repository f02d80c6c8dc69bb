"""FrameX-kit's ``framex.log`` import path: ``from framex.log import logger``."""

from framex.kit import logger

__all__ = ["logger"]
