"""The HTTP surface: app factory, plugin routes, the response envelope, errors, streaming."""
