"""A package of plugins (no `__plugin_meta__` here): each module is one plugin."""
