"""FrameX-kit serving ``kit_bench`` and ``kit_caller`` as an ASGI app, for the same uvicorn command as the other apps.

``framex.run(..., test_mode=True)`` loads the plugins and builds the routes like ``framex run``
does, then returns the app instead of starting uvicorn itself (which would fix ``loop="asyncio"``
and log every request).
"""

import framex

app = framex.run(load_plugins=["kit_bench", "kit_caller"], load_builtin_plugins=[], test_mode=True)
