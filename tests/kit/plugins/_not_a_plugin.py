"""A module whose name starts with `_`: loading the folder skips it."""

raise RuntimeError("modules starting with `_` are never imported by the folder loader")
