"""The trivial work ``bench.ray_remote`` sends to Ray, as FrameX ``@remote`` and as plain functions.

Kept in an importable module (not ``__main__``) so that Ray pickles the functions and
the ``Worker`` instances by reference, the way an application's own code would be.
"""

from framex.plugin import remote


def raw_inc(x: int) -> int:
    """The work of every variant: return ``x + 1``."""
    return x + 1


@remote()
def inc(x: int) -> int:
    """``raw_inc`` as a FrameX ``@remote`` function."""
    return x + 1


class Worker:
    """A class with an ``@remote`` method: each call binds a new instance, which Ray pickles."""

    @remote()
    def inc(self, x: int) -> int:
        return x + 1


class RawWorker:
    """A plain class, for the raw baseline that passes an instance to a ``ray.remote`` function."""


def raw_method(worker: RawWorker, x: int) -> int:
    """``Worker.inc`` without FrameX: the instance is an ordinary argument."""
    return x + 1
