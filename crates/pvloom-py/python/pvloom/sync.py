"""Primitives shared across threads (the BLISS list): Event, Queue, AsyncResult, Lock,
RLock, Launcher, HubTrigger, Thread and ThreadResource, and the Subscriber. Every blocking method releases the GIL,
takes a timeout, wakes for Ctrl-C, and raises ``pvloom.WouldDeadlock`` when called
inside an Inline callback on a pvloom I/O thread."""

from ._pvloom import (
    AsyncResult,
    Event,
    HubTrigger,
    Launcher,
    Lock,
    Queue,
    RLock,
    Thread,
    ThreadContext,
    ThreadResource,
)
from .subscriber import FAULT, INIT, OFF, ON, Killed, Subscriber

__all__ = [
    "AsyncResult",
    "Event",
    "HubTrigger",
    "Killed",
    "Subscriber",
    "INIT",
    "ON",
    "OFF",
    "FAULT",
    "Launcher",
    "Lock",
    "Queue",
    "RLock",
    "Thread",
    "ThreadContext",
    "ThreadResource",
]
