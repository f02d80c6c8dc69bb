"""Plugins that ship with FrameX; load them with ``load_builtin_plugins``."""
