"""The server's heap while it serves: what start-up built is frozen out of the garbage collector's way.

Start-up leaves some hundred thousand long-lived objects (modules, SQLAlchemy's and Starlette's
tables, the operation table). Every full collection walked all of them again, a few tens of
milliseconds each time, paid by whichever request was running: about 30 µs per invocation on
average under load. Frozen, they are skipped; what requests create is collected as before.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Collect start-up's garbage, then keep the survivors out of collections until the block ends.

    Unfrozen at the end, so a server stopped inside a longer-lived process (tests) leaves the
    collector as it found it.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


__all__ = ["frozen_heap"]
