"""pvloom: one Rust runtime for the networked systems of accelerators, beamlines and HPC.

The callback contract is the same for every protocol:

* callbacks run on pvloom's I/O threads (``Runtime(workers=0)``, "Inline") or on
  ordered worker threads (``Runtime(workers=N)``);
* every blocking call releases the GIL, takes a ``timeout`` and wakes for Ctrl-C;
* a blocking pvloom call made inside an Inline callback raises :class:`WouldDeadlock`
  at once instead of hanging;
* an exception raised in a callback is reported (Python's "Exception ignored in"
  message on stderr, or your hook from ``Runtime.set_error_hook``) and counted in
  ``Runtime.callback_errors``; the I/O thread goes on.
"""

from ._pvloom import (
    Completion,
    IllegalTransition,
    PvloomError,
    Runtime,
    Timer,
    WouldDeadlock,
    __version__,
)
from . import sync

import atexit as _atexit

from ._pvloom import _shutdown_all

# Runtimes and threads left running would take the GIL of an interpreter that is
# being finalized: stop them while Python is still whole.
_atexit.register(_shutdown_all)

__all__ = [
    "Completion",
    "IllegalTransition",
    "PvloomError",
    "Runtime",
    "Timer",
    "WouldDeadlock",
    "sync",
    "__version__",
]
