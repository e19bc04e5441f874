"""chirp message passing with libchirp's Python pool API, on pvloom's Rust node.

A script written for ``libchirp.pool`` (libchirp 1.2) runs with its import changed::

    from pvloom.chirp import Chirp, Config, Loop, Message   # was: from libchirp.pool import ...

and talks to real libchirp nodes: the wire is libchirp 1.2's, TLS included. As in
libchirp, connections are encrypted (TLS >= 1.2, CERT_CHAIN_PEM and DH_PARAMS_PEM)
unless DISABLE_ENCRYPTION, except to 127.0.0.1 and ::1. ``libchirp.queue``'s shape is
:class:`QueueChirp` (also ``pvloom.chirp_queue.Chirp``).

Threads: the node's sockets live on the :class:`Loop`'s I/O threads. The pool's
:meth:`Chirp.handler` runs on the executor's threads (block there as you like). A send
or request future is resolved by the thread waiting on it, or else by the loop's
resolver thread; a done-callback runs there, so one that blocks on another chirp
future holds up the other futures the resolver has to resolve (in libchirp, its loop).

Departures from libchirp, each deliberate:

* ``request()`` registers for its answer before the request leaves, so no answer is
  lost to a race (libchirp's pool loses some under concurrency); an answer's slot is
  released at once, whatever ``auto_release`` says.
* A handler that raises is logged (logger ``pvloom.chirp``) and, with AUTO_RELEASE, its
  message is still released (libchirp leaks the slot, and a synchronous sender stalls).
* The send queue per remote is bounded (``MAX_QUEUED`` messages, a pvloom field): a
  send beyond it fails at once with ``RuntimeError`` (``ecode`` CH_BUSY) instead of
  growing memory without limit.
* ``PORT = 0`` listens on a free port (``chirp.port`` tells which); libchirp refuses it.
* ``ALWAYS_ENCRYPT`` (a pvloom field, default False) encrypts 127.0.0.1 and ::1 too:
  libchirp has this only as the process-wide C call ``ch_chirp_set_always_encrypt()``,
  which its Python layer does not expose; here it is per node.
* PEM files OpenSSL refuses fail the start with ``RuntimeError`` (``ecode``
  CH_TLS_ERROR), what libchirp's Python layer would raise (libchirp 1.2.1b3 itself
  aborts the process with a double free there).
* ``DISABLE_SIGNALS`` is accepted and has no effect: pvloom installs no signal handlers.
* IDENTITY is used whole (libchirp 1.2 copies only its first byte).
"""

from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures._base import FINISHED as _FINISHED
from concurrent.futures._base import PENDING as _PENDING
import concurrent.futures.thread as _thread
import ipaddress as _ipaddress
import logging as _logging
import os as _os
from queue import Queue as _Queue
import struct as _struct
import threading as _threading
import weakref as _weakref

from ._pvloom import ChirpLoop as _ChirpLoop
from ._pvloom import ChirpNode as _ChirpNode
from ._pvloom import ChirpWorkQueue as _ChirpWorkQueue
from ._pvloom import Message

__all__ = ("Chirp", "ChirpBase", "ChirpFuture", "Config", "Loop", "Message", "QueueChirp")

_l = _logging.getLogger("pvloom.chirp")

# libchirp's error codes (ch_error_t), the ``ecode`` of the exceptions raised.
CH_SUCCESS = 0
CH_VALUE_ERROR = 1
CH_UV_ERROR = 2
CH_PROTOCOL_ERROR = 3
CH_EADDRINUSE = 4
CH_FATAL = 5
CH_TLS_ERROR = 6
CH_NOT_INITIALIZED = 7
CH_IN_PRORESS = 8
CH_TIMEOUT = 9
CH_ENOMEM = 10
CH_SHUTDOWN = 11
CH_CANNOT_CONNECT = 12
CH_QUEUED = 13
CH_USED = 14
CH_MORE = 15
CH_BUSY = 16
CH_EMPTY = 17
CH_WRITE_ERROR = 18
CH_INIT_FAIL = 19

CH_MAX_MSG_SIZE = 100 * 1024 * 1024
# The PORT a new Config starts with (libchirp's 2998). A test harness may change it to
# run an unmodified libchirp script on a free port.
DEFAULT_PORT = 2998
CH_MIN_BUFFER_SIZE = 1024

# libchirp's own names for the message class.
MessageBase = Message
MessageThread = Message


def _value_error(text):
    err = ValueError(text)
    err.ecode = CH_VALUE_ERROR
    return err


class _NodeFuture(Future):
    """A ``concurrent.futures.Future`` the node resolves. A thread waiting in
    :meth:`result` or :meth:`exception` resolves it itself as soon as the node is done
    (``_pending``, the native half), instead of waiting for the loop's resolver thread
    to get the GIL and wake it: that hand-over cost more than the network round trip."""

    def __init__(self):
        # Future.__init__ without the Condition: made at its first use (see
        # _condition), which most futures never see (resolved before anybody looks).
        self._state = _PENDING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []
        self._pending = None

    @property
    def _condition(self):
        cond = self.__dict__.get("_cond")
        if cond is None:
            # setdefault: two threads making it at once get the same one.
            cond = self.__dict__.setdefault("_cond", _threading.Condition())
        return cond

    def _finished_directly(self):
        # The node stored the outcome itself, having seen no Condition, but one was made
        # before the stores landed: what set_result does once it stored the outcome.
        with self._condition:
            for waiter in self._waiters:
                if self._exception is None:
                    waiter.add_result(self)
                else:
                    waiter.add_exception(self)
            self._condition.notify_all()
        self._invoke_callbacks()

    def _settle(self, timeout):
        # The timeout left for Future's own wait.
        pending = self._pending
        if pending is None or self._state != _PENDING:
            return timeout
        ready = pending.wait(self, timeout)
        if ready:
            self._pending = None
            return timeout
        # Timed out (do not wait a second time), or another thread waits on it.
        return timeout if ready is None else 0

    def result(self, timeout=None):
        timeout = self._settle(timeout)
        if self._state == _FINISHED:
            # Done: no need to make the Condition to read it.
            if self._exception is not None:
                raise self._exception
            return self._result
        return Future.result(self, timeout)

    def exception(self, timeout=None):
        timeout = self._settle(timeout)
        if self._state == _FINISHED:
            return self._exception
        return Future.exception(self, timeout)


class ChirpFuture(_NodeFuture):
    """The future of a request: ``result()`` is the answer, ``send_result()`` waits
    for the request to be sent."""

    def __init__(self, auto_release=True):
        _NodeFuture.__init__(self)
        self._auto_release = auto_release
        self._send_fut = None

    def result(self, timeout=None):
        """The answer (a :class:`Message`); released first if ``auto_release``."""
        res = _NodeFuture.result(self, timeout)
        if self._auto_release:
            res._release_nowait()
        return res

    def send_result(self, timeout=None):
        """Wait for the request to be sent (synchronous mode: released by the remote)."""
        return self._send_fut.result(timeout)


def _unsigned(name, value, bits):
    """A C unsigned field: libchirp's cffi raises OverflowError / TypeError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s: an integer is required, not %s" % (name, type(value).__name__))
    if value < 0 or value >= 1 << bits:
        raise OverflowError("%s: integer %d does not fit 'uint%d_t'" % (name, value, bits))
    return value


def _float32(name, value):
    """A C float field (as libchirp stores it: 0.1 reads back as 0.10000000149011612)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("%s: a float is required, not %s" % (name, type(value).__name__))
    return _struct.unpack("f", _struct.pack("f", float(value)))[0]


class Config(object):
    """Chirp configuration: libchirp's fields, defaults and checks.

    The checks libchirp makes when a chirp starts are made by :class:`Chirp` (a
    ``ValueError`` with libchirp's text and ``ecode`` CH_VALUE_ERROR); the C types'
    range checks are made on assignment (``OverflowError``, ``TypeError``). A config
    used by a chirp becomes read-only (``RuntimeError``).
    """

    _ips = ("BIND_V4", "BIND_V6")
    _bools = ("SYNCHRONOUS", "DISABLE_SIGNALS", "DISABLE_ENCRYPTION", "ALWAYS_ENCRYPT")
    _strings = ("CERT_CHAIN_PEM", "DH_PARAMS_PEM")
    _uints = {"PORT": 16, "BACKLOG": 8, "MAX_SLOTS": 8, "BUFFER_SIZE": 32, "MAX_MSG_SIZE": 32}
    _floats = ("REUSE_TIME", "TIMEOUT")
    _fields = _ips + _bools + _strings + tuple(_uints) + _floats + ("IDENTITY", "AUTO_RELEASE", "MAX_QUEUED")

    def __init__(self):
        values = {
            "REUSE_TIME": 30.0,
            "TIMEOUT": 5.0,
            "PORT": DEFAULT_PORT,
            "BACKLOG": 100,
            "MAX_SLOTS": 0,
            "SYNCHRONOUS": True,
            "DISABLE_SIGNALS": False,
            "BUFFER_SIZE": 0,
            "MAX_MSG_SIZE": CH_MAX_MSG_SIZE,
            "BIND_V6": "::",
            "BIND_V4": "0.0.0.0",
            "IDENTITY": b"\0" * 16,
            "CERT_CHAIN_PEM": None,
            "DH_PARAMS_PEM": None,
            "DISABLE_ENCRYPTION": False,
            # pvloom's per-node form of libchirp's ch_chirp_set_always_encrypt().
            "ALWAYS_ENCRYPT": False,
            "AUTO_RELEASE": True,
            # pvloom's bound of the send queue per remote (libchirp has none).
            "MAX_QUEUED": 65536,
        }
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_sealed", False)

    def __getattr__(self, name):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError("'Config' object has no attribute %r" % name)

    def __setattr__(self, name, value):
        if name == "_sealed":
            object.__setattr__(self, name, value)
            return
        if name not in Config._fields:
            raise AttributeError("'Config' object has no attribute %r" % name)
        if self._sealed:
            raise RuntimeError("Config is used an therefore read-only.")
        if name in Config._ips:
            value = _ipaddress.ip_address(value).compressed
        elif name in Config._bools:
            # libchirp stores a C char: anything int-like, read back as a bool.
            value = bool(value.to_bytes(1, "little")[0])
        elif name in Config._strings:
            if not isinstance(value, str):
                raise TypeError("%s: a str is required" % name)
            value.encode("UTF-8")
        elif name in Config._uints:
            value = _unsigned(name, value, Config._uints[name])
        elif name in Config._floats:
            value = _float32(name, value)
        elif name == "IDENTITY":
            value = bytes(value)
            if len(value) > 16:
                raise IndexError("IDENTITY: 16 bytes at most, not %d" % len(value))
            value = value.ljust(16, b"\0")
        elif name == "MAX_QUEUED":
            if not isinstance(value, int) or value < 1:
                raise ValueError("MAX_QUEUED must be an int >= 1")
        self._values[name] = value

    def __repr__(self):
        return "Config(%s)" % ", ".join("%s=%r" % kv for kv in sorted(self._values.items()))

    def _verify(self):
        """libchirp's start-up checks (``_ch_chirp_verify_cfg``), in its order and words."""
        c = self._values
        if not c["DISABLE_ENCRYPTION"]:
            if c["DH_PARAMS_PEM"] is None:
                raise _value_error("Config: DH_PARAMS_PEM must be set.")
            if c["CERT_CHAIN_PEM"] is None:
                raise _value_error("Config: CERT_CHAIN_PEM must be set.")
            if not _os.path.exists(c["CERT_CHAIN_PEM"]):
                raise _value_error("Config: cert %s does not exist." % c["CERT_CHAIN_PEM"])
            if not _os.path.exists(c["DH_PARAMS_PEM"]):
                # libchirp's text names CERT_CHAIN_PEM here too; kept word for word.
                raise _value_error("Config: cert %s does not exist." % c["CERT_CHAIN_PEM"])
        # PORT 0 is pvloom's "any free port".
        if not (c["PORT"] > 1024 or c["PORT"] == 0):
            raise _value_error("Config: port must be > 1024. (%d)" % c["PORT"])
        if not c["BACKLOG"] < 128:
            raise _value_error("Config: backlog must be < 128. (%d)" % c["BACKLOG"])
        if not c["TIMEOUT"] <= 1200:
            raise _value_error("Config: timeout must be <= 1200. (%f)" % c["TIMEOUT"])
        if not c["TIMEOUT"] >= 0.1:
            raise _value_error("Config: timeout must be >= 0.1. (%f)" % c["TIMEOUT"])
        # libchirp raises REUSE_TIME to 3 x TIMEOUT before checking it.
        reuse_time = self._reuse_time()
        if not reuse_time >= 0.5:
            raise _value_error("Config: resuse time must be => 0.5. (%f)" % reuse_time)
        if not reuse_time <= 3600:
            raise _value_error("Config: resuse time must be <= 3600. (%f)" % reuse_time)
        if not c["TIMEOUT"] <= reuse_time:
            raise _value_error("Config: timeout must be <= reuse time. (%f, %f)" % (c["TIMEOUT"], reuse_time))
        # Synchronous mode has one slot whatever MAX_SLOTS says (libchirp sets it).
        if not c["SYNCHRONOUS"] and not c["MAX_SLOTS"] <= 32:
            raise _value_error("Config: max slots must be <= 1.")
        if not (c["BUFFER_SIZE"] >= CH_MIN_BUFFER_SIZE or c["BUFFER_SIZE"] == 0):
            raise _value_error("Config: buffer size must be > %d (%u)" % (CH_MIN_BUFFER_SIZE, c["BUFFER_SIZE"]))

    def _reuse_time(self):
        return _float32("REUSE_TIME", max(self._values["REUSE_TIME"], self._values["TIMEOUT"] * 3))

    def _node_kwargs(self):
        c = self._values
        identity = c["IDENTITY"]
        return dict(
            port=c["PORT"],
            bind_v4=c["BIND_V4"],
            backlog=c["BACKLOG"],
            max_slots=0 if c["SYNCHRONOUS"] else c["MAX_SLOTS"],
            synchronous=c["SYNCHRONOUS"],
            buffer_size=c["BUFFER_SIZE"],
            max_msg_size=c["MAX_MSG_SIZE"],
            identity=None if identity == b"\0" * 16 else identity,
            timeout=c["TIMEOUT"],
            reuse_time=self._reuse_time(),
            disable_encryption=c["DISABLE_ENCRYPTION"],
            cert_chain_pem=c["CERT_CHAIN_PEM"],
            dh_params_pem=c["DH_PARAMS_PEM"],
            always_encrypt=c["ALWAYS_ENCRYPT"],
            max_queued=c["MAX_QUEUED"],
        )


class Loop(object):
    """What libchirp's libuv event loop stands for: pvloom I/O threads.

    Run at once unless ``run_loop`` is False. :meth:`stop` stops it once the last
    chirp made on it has stopped (libchirp's reference count). ``io_threads`` is
    pvloom's (default 2).
    """

    def __init__(self, run_loop=True, io_threads=2):
        self._lock = _threading.Lock()
        self._started = False
        self._stopped = False
        self._refcnt = 1
        self._native = _ChirpLoop(io_threads)
        if run_loop:
            self.run()

    def run(self):
        """Start the loop (again: a ``RuntimeError``, as libchirp)."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("Cannot restart loop")
            self._started = True

    @property
    def running(self):
        """True between :meth:`run` and the end of :meth:`stop`."""
        with self._lock:
            return self._started and not self._stopped

    def call_soon(self, func, *args, **kwargs):
        """Call ``func(*args, **kwargs)`` on one of the loop's threads."""
        self._native.call_soon(func, *args, **kwargs)

    def set_error_hook(self, hook=None):
        """pvloom: ``hook(origin, exception)`` for exceptions in the loop's callbacks."""
        self._native.set_error_hook(hook)

    @property
    def callback_errors(self):
        """pvloom: exceptions raised in the loop's callbacks so far."""
        return self._native.callback_errors

    def stop(self):
        """Stop the loop, now or when its last chirp stops."""
        with self._lock:
            do_it = self._started and not self._stopped
            self._stopped = True
        if do_it:
            self._refdec()
        elif not self._started:
            self._native.shutdown()

    def _refinc(self):
        with self._lock:
            self._refcnt += 1

    def _refdec(self):
        with self._lock:
            self._refcnt -= 1
            last = self._refcnt == 0
        if last:
            self._native.shutdown()


class ChirpBase(object):
    """What the pool and the queue share: start, send, request, identity, stop.

    Starting raises ``ValueError`` for a bad config (libchirp's texts, missing PEM files
    included), ``RuntimeError`` (``ecode`` CH_TLS_ERROR) for PEM files OpenSSL refuses,
    ``OSError`` when the port cannot be bound, ``RuntimeError`` if the loop is not running.
    """

    def __init__(self, loop, config, recv=None):
        assert isinstance(loop, Loop)
        assert isinstance(config, Config)
        if not loop.running:
            raise RuntimeError("the loop is not running: call Loop.run() first")
        config._verify()
        config._sealed = True
        self._loop = loop
        self._config = config
        self._auto_release = config.AUTO_RELEASE
        self._stopped = False
        self._stop_lock = _threading.Lock()
        self._node = _ChirpNode(loop._native, recv or self._release_unhandled, **config._node_kwargs())
        loop._refinc()

    @staticmethod
    def _release_unhandled(msg):
        msg._release_nowait()

    @property
    def loop(self):
        """The :class:`Loop` this chirp runs on."""
        return self._loop

    @property
    def port(self):
        """pvloom: the port it listens on (useful with ``PORT = 0``)."""
        return self._node.port

    def identity(self):
        """The node's identity (16 bytes), sent in every handshake."""
        return self._node.identity()

    def send(self, msg):
        """Send ``msg`` to ``msg.address``:``msg.port``; returns a Future of ``msg``.

        Synchronous mode: done when the remote released it; asynchronous: when the OS
        took it. ``result()`` raises ``ConnectionError``, ``TimeoutError``,
        ``RuntimeError``, ``ValueError`` or ``MemoryError`` (with ``ecode``).
        Sending the same message again before its future is done raises ``RuntimeError``.
        """
        assert isinstance(msg, Message)
        fut = _NodeFuture()
        fut._pending = self._node.send(msg, fut)
        return fut

    def request(self, msg, auto_release=True):
        """Send ``msg`` and return a :class:`ChirpFuture` of the answer (a message
        with the same identity); ``TimeoutError`` after TIMEOUT."""
        assert isinstance(msg, Message)
        fut = ChirpFuture(auto_release)
        fut._send_fut = send_fut = _NodeFuture()
        send_fut._pending, fut._pending = self._node.request(msg, send_fut, fut)
        return fut

    def stop(self):
        """Stop the chirp: wait (up to TIMEOUT) for received messages to be released,
        then close. A message left unreleased is released and ``RuntimeError`` raised,
        as libchirp does: it is a usage error."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            if not self._node.wait_released(self._config.TIMEOUT):
                self._node.release_all()
                raise RuntimeError("Timeout waiting for released messages, maybe a message was not released.")
        finally:
            self._node.stop()
            self._loop._refdec()


def _pool_handler(chirp, msg):
    """Run the user's handler on a pool thread; release afterwards if AUTO_RELEASE."""
    try:
        chirp.handler(msg)
    except Exception:
        _l.exception("exception in chirp handler (message %r)", msg)
    finally:
        if chirp._auto_release:
            msg._release_nowait()


class _HandlerItem(object):
    """What the pool's workers run for one message: a ``_WorkItem`` without the Future
    ``submit()`` would make and resolve for it (nobody waits on it; it was a third of
    a received message's cost)."""

    __slots__ = ("chirp", "msg")

    def __init__(self, chirp, msg):
        self.chirp = chirp
        self.msg = msg

    def run(self):
        if self.chirp is None:
            # Its chirp is gone: nobody to handle it.
            self.msg._release_nowait()
        else:
            _pool_handler(self.chirp, self.msg)

    # What the executor does to the future of an item it drops unrun
    # (shutdown(cancel_futures=True), a failed initializer): the message is released.
    @property
    def future(self):
        return self

    def cancel(self):
        self.msg._release_nowait()
        return True

    def set_exception(self, exception):
        self.msg._release_nowait()


def _item_maker(chirp):
    """``make_item(msg)`` for the chirp's work queue; the queue must not keep the chirp
    alive (it is the chirp's own attribute)."""
    ref = _weakref.ref(chirp)

    def make_item(msg):
        chirp = ref()
        return _HandlerItem(chirp, msg)

    return make_item


def _workers_run_items_bare():
    """True if this Python's ThreadPoolExecutor workers call ``work_item.run()`` and
    nothing else on what its queue holds (CPython 3.8 to 3.13): then a
    :class:`_HandlerItem` may be queued directly. Otherwise ``submit()`` is used."""
    import concurrent.futures.thread as thread
    import inspect

    try:
        params = list(inspect.signature(thread._WorkItem.run).parameters)
        needed = ("_shutdown_lock", "_broken", "_shutdown", "_work_queue", "_adjust_thread_count")
        return (
            params == ["self"]
            and hasattr(thread, "_global_shutdown_lock")
            and all(hasattr(ThreadPoolExecutor(max_workers=1), n) for n in needed)
        )
    except (AttributeError, TypeError, ValueError):
        return False


_BARE_ITEMS = _workers_run_items_bare()


class Chirp(ChirpBase, ThreadPoolExecutor):
    """libchirp's pool: a ``concurrent.futures.ThreadPoolExecutor`` whose
    :meth:`handler` is called, on the pool's threads, for every message.

    Subclass it and implement :meth:`handler`. With AUTO_RELEASE (the default) a
    message is released when its handler returns. ``**kwargs`` go to
    ThreadPoolExecutor (``max_workers``, ...).
    """

    def __init__(self, loop, config, **kwargs):
        ThreadPoolExecutor.__init__(self, **kwargs)
        recv = self._on_message
        if _BARE_ITEMS:
            # The node puts received messages in the workers' queue itself (see
            # ChirpWorkQueue); submit() goes on working as it does.
            self._work_queue = recv = _ChirpWorkQueue(_item_maker(self))
        try:
            ChirpBase.__init__(self, loop, config, recv)
        except BaseException:
            ThreadPoolExecutor.shutdown(self, wait=False)
            raise
        if _BARE_ITEMS:
            # Workers are started by submit(), which received messages no longer pass
            # through: start them all now.
            for _ in range(self._max_workers):
                self._adjust_thread_count()

    def shutdown(self, wait=True, *, cancel_futures=False):
        """ThreadPoolExecutor's shutdown; messages arriving afterwards are released unhandled."""
        if isinstance(self._work_queue, _ChirpWorkQueue):
            self._work_queue.refuse_messages()
        ThreadPoolExecutor.shutdown(self, wait, cancel_futures=cancel_futures)

    def _on_message(self, msg):
        # On the resolver thread: hand over at once, never run the handler here.
        if _BARE_ITEMS:
            # submit()'s checks and steps, without its Future.
            with self._shutdown_lock, _thread._global_shutdown_lock:
                if not (self._broken or self._shutdown or _thread._shutdown):
                    self._work_queue.put(_HandlerItem(self, msg))
                    self._adjust_thread_count()
                    return
        else:
            try:
                self.submit(_pool_handler, self, msg)
                return
            except RuntimeError:
                pass
        # Shut down (or broken): nobody will handle it.
        msg._release_nowait()

    def handler(self, msg):
        """Called on a pool thread for every message; implement it.

        This default releases the message whatever AUTO_RELEASE says.
        """
        if not self._auto_release:
            msg._release_nowait()

    def stop(self):
        """Shut the pool down (waiting for running handlers), then stop the chirp."""
        self.shutdown()
        ChirpBase.stop(self)


class QueueChirp(ChirpBase, _Queue):
    """libchirp's ``queue.Chirp``: messages are put in the chirp itself, a
    ``queue.Queue``; :meth:`get` takes one and releases it (if AUTO_RELEASE)."""

    def __init__(self, loop, config):
        self._disable_queue = False
        _Queue.__init__(self)
        ChirpBase.__init__(self, loop, config, self._on_message)

    def _on_message(self, msg):
        if self._disable_queue:
            msg._release_nowait()
        else:
            self.put(msg)

    @property
    def disable_queue(self):
        """If True, messages are released instead of queued."""
        return self._disable_queue

    @disable_queue.setter
    def disable_queue(self, value):
        self._disable_queue = value

    def get(self, *args, **kwargs):
        """Remove and return a message, released if AUTO_RELEASE (``queue.Queue.get``)."""
        msg = _Queue.get(self, *args, **kwargs)
        if msg and self._auto_release:
            msg._release_nowait()
        return msg

    def get_nowait(self):
        """Equivalent to ``get(False)``."""
        return self.get(False)

