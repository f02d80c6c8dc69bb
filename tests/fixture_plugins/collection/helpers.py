"""A helper module inside a plugin package: not a plugin, so it is skipped."""

FACTOR = 3
