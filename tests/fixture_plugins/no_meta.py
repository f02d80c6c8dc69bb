"""Not a plugin: it lacks `__plugin_meta__`."""

VALUE = 1
