"""libchirp's queue API (``libchirp.queue``) on pvloom: change the import line::

    from pvloom.chirp_queue import Chirp, Config, Loop, Message   # was: from libchirp.queue import ...

See :mod:`pvloom.chirp` for threads and what differs from libchirp.
"""

from .chirp import Config, Loop, Message
from .chirp import QueueChirp as Chirp

__all__ = ("Chirp", "Config", "Loop", "Message")
