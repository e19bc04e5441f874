"""A BLISS-style Subscriber: a listener that produces events and a consumer that
processes them, with the states INIT -> ON -> OFF (finished) or FAULT (killed/failed).

Pure Python on pvloom.sync's primitives rather than a binding of the Rust
``pvloom_core::subscriber``: the hooks are Python methods of a subclass, and calling
them from Rust threads would take the GIL per event anyway while losing the
subclass's natural ``self``. The Rust one remains the engine for Rust writers.

Modes: ``"sequential"`` runs listener and consumer in one thread (``emit`` queues the
event and the same thread drains it), ``"parallel"`` runs them in two threads joined
by a bounded ``pvloom.sync.Queue`` (the listener blocks when the consumer is behind:
nothing is dropped)."""

import threading
import time

from ._pvloom import Event, Queue

INIT, ON, OFF, FAULT = "INIT", "ON", "OFF", "FAULT"

_END = object()
# How often a listener blocked on a full queue looks for a kill.
_POLL = 0.05


class Killed(Exception):
    """Raised inside the listener's ``emit`` once the subscriber was killed."""


class Subscriber:
    """The two halves are ``listen(emit)`` and ``consume(event)``: methods of a
    subclass, or callables given as ``listen=`` and ``consume=``.

    ``listen`` produces events by calling ``emit(event)`` and returns when its source
    ends or ``self.stopping()`` becomes true (it may wait with ``self.wait_stop(t)``).
    """

    def __init__(self, mode="sequential", maxsize=1024, name=None, listen=None, consume=None):
        if mode not in ("sequential", "parallel"):
            raise ValueError(f"mode must be 'sequential' or 'parallel', not {mode!r}")
        if listen is not None:
            self.listen = listen
        if consume is not None:
            self.consume = consume
        missing = [hook for hook in ("listen", "consume") if not callable(getattr(self, hook, None))]
        if missing:
            raise TypeError(f"{type(self).__name__} has no {' and no '.join(missing)}: subclass, or pass it")
        self.mode = mode
        self.name = name or type(self).__name__
        self.error = None
        self._maxsize = maxsize
        self._state = INIT
        self._state_lock = threading.Lock()
        self._stop = Event()
        self._killed = False
        self._finished = Event()
        self._started_at = None
        self._ended_at = None
        self._threads = []
        self._queue = None

    # state
    @property
    def state(self):
        return self._state

    @property
    def exception(self):
        return self.error

    def stopping(self):
        return self._stop.is_set()

    def wait_stop(self, timeout=None):
        return self._stop.wait(timeout)

    def done(self):
        return self._state in (OFF, FAULT)

    def duration(self):
        """Seconds listening: from start until finished, or until now while ON."""
        if self._started_at is None:
            return 0.0
        end = self._ended_at if self._ended_at is not None else time.monotonic()
        return end - self._started_at

    def _finish(self, state, error=None):
        with self._state_lock:
            if self._state != ON:
                return
            if error is not None and self.error is None:
                self.error = error
            self._state = state
            self._ended_at = time.monotonic()
        self._stop.set()
        self._finished.set()

    # control
    def start(self, wait=False, timeout=None):
        """INIT -> ON. The state is ON when this returns, so ``wait`` only matters for
        symmetry with stop/kill."""
        with self._state_lock:
            if self._state != INIT:
                raise RuntimeError(f"{self.name}: start from {self._state}, expected INIT")
            self._state = ON
            self._started_at = time.monotonic()
        if self.mode == "sequential":
            self._queue = Queue(0)
            runners = [self._run_sequential]
        else:
            self._queue = Queue(self._maxsize)
            runners = [self._run_listener, self._run_consumer]
        for run in runners:
            thread = threading.Thread(target=run, name=f"{self.name}.{run.__name__}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, wait=False, timeout=None):
        """ON -> OFF: the listener is asked to end; events it emitted are still consumed."""
        self._stop.set()
        if wait:
            self.join(timeout)

    def kill(self, wait=False, timeout=None):
        """ON -> FAULT at once; queued events are dropped, a blocked emit raises Killed."""
        self._killed = True
        # A listener waiting for a stop (wait_stop) ends too.
        self._stop.set()
        self._finish(FAULT, Killed(f"{self.name} killed"))
        if wait:
            self.join(timeout)

    def join(self, timeout=None):
        """Wait until OFF or FAULT; raises TimeoutError (as pvloom.sync does) on timeout."""
        if self._state == INIT:
            raise RuntimeError(f"{self.name}: join before start")
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._finished.wait(timeout):
            raise TimeoutError(f"{self.name} still {self._state} after {timeout} s")
        # Finished: the runners leave their pvloom waits within a poll period. Waiting
        # that long means none is left inside one when the interpreter exits (which
        # aborts); a hook blocked in the application's own code is not waited for.
        for thread in self._threads:
            if thread is not threading.current_thread():
                left = 4 * _POLL if deadline is None else min(4 * _POLL, max(0.0, deadline - time.monotonic()))
                thread.join(left)

    # runners
    def _emit(self, event):
        if self._killed:
            raise Killed(f"{self.name} killed")
        while True:
            try:
                self._queue.put(event, True, _POLL)
                return
            except Exception as full:  # pvloom.sync.Queue raises queue.Full
                if type(full).__name__ != "Full":
                    raise
            if self._killed:
                raise Killed(f"{self.name} killed")

    def _listen(self, emit):
        try:
            self.listen(emit)
            return None
        except Killed:
            return None
        except BaseException as err:
            return err

    def _run_sequential(self):
        def emit(event):
            self._emit(event)
            self._drain()

        try:
            error = self._listen(emit)
            if error is None and not self._killed:
                self._drain()
        except BaseException as err:
            error = err
        self._finish(FAULT if error is not None else OFF, error)

    def _drain(self):
        while not self._killed:
            try:
                event = self._queue.get_nowait()
            except Exception:
                return
            self.consume(event)

    def _run_listener(self):
        error = self._listen(self._emit)
        if error is not None:
            self._finish(FAULT, error)
        else:
            try:
                self._emit(_END)
            except Killed:
                pass

    def _run_consumer(self):
        try:
            while not self._killed:
                try:
                    event = self._queue.get(True, _POLL)
                except Exception as empty:
                    if type(empty).__name__ != "Empty":
                        raise
                    if self._state != ON:
                        return
                    continue
                if event is _END:
                    self._finish(OFF)
                    return
                self.consume(event)
        except BaseException as err:
            self._finish(FAULT, err)
