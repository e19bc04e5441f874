"""Primitives shared across threads (the BLISS list): Event, Queue, AsyncResult, Lock,
RLock, Launcher, Thread and ThreadResource. Every blocking method releases the GIL,
takes a timeout, wakes for Ctrl-C, and raises ``pvloom.WouldDeadlock`` when called
inside an Inline callback on a pvloom I/O thread."""

from ._pvloom import (
    AsyncResult,
    Event,
    Launcher,
    Lock,
    Queue,
    RLock,
    Thread,
    ThreadContext,
    ThreadResource,
)

__all__ = [
    "AsyncResult",
    "Event",
    "Launcher",
    "Lock",
    "Queue",
    "RLock",
    "Thread",
    "ThreadContext",
    "ThreadResource",
]
