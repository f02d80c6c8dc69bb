"""Where the `ordered` plugins record their lifecycle hooks."""

events: list[str] = []
