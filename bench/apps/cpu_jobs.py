"""The work ``bench.remote_fanout`` fans out: CPU-bound and trivial ``@remote`` jobs.

Kept in an importable module (not ``__main__``) so that the process executor's workers
find the functions by module and name, and Ray workers can import them.
"""

from __future__ import annotations

from framex.plugin import remote

MODULUS = 1_000_003


def spin(n: int) -> int:
    """``n`` rounds of pure-Python integer arithmetic (holds the GIL throughout); a checksum."""
    total = 0
    for i in range(n):
        total = (total + i * i) % MODULUS
    return total


@remote()
def cpu_job(n: int) -> int:
    """``spin(n)`` behind ``@remote()``; the fan-out picks the executor with ``.options``."""
    return spin(n)


@remote()
def echo(x: int) -> int:
    """A trivial sync job: on the local backend one round trip through the thread pool."""
    return x


@remote()
async def aecho(x: int) -> int:
    """A trivial async job: on the local backend it runs on the loop, so only FrameX's own cost is left."""
    return x
