"""Channel Access with caproto's threading-client API, on pvloom's Rust client.

A script written for ``caproto.threading.client`` runs by changing its import::

    from pvloom.ca import Context, PV, Subscription, Batch, SharedBroadcaster

    ctx = Context()
    x, dt = ctx.get_pvs('random_walk:x', 'random_walk:dt')
    print(dt.read().data)
    dt.write([1])
    sub = x.subscribe()
    token = sub.add_callback(lambda sub, response: print(response.data))

Searching, circuits, reconnection and callback delivery are pvloom's (Rust threads);
this module only shapes the results like caproto's. The callback contract is
pvloom's: callbacks run on the context's worker threads (``max_workers`` of them,
in arrival order per subscription) or, with ``max_workers=0``, Inline on the I/O
threads, where a blocking call raises :class:`pvloom.WouldDeadlock` at once. An
exception in a callback is reported (Python's "Exception ignored in" message, or the
hook given to :meth:`Context.set_error_hook`) and counted in
:attr:`Context.callback_errors`; it never reaches the I/O thread. Every blocking call
releases the GIL and wakes for Ctrl-C.

Differences from caproto, all deliberate:

* ``Subscription.add_callback`` and the connection/access-rights callback handlers
  hold **strong** references: a lambda keeps working. Remove callbacks with
  ``remove_callback``/``clear`` (caproto holds weak references and drops a callback
  when its function is garbage collected).
* Numeric ``response.data`` is a numpy array in the machine's byte order (caproto's
  is big-endian, a view onto the received buffer); values compare equal. String data
  is a list of ``bytes``, as in caproto.
* Exceptions are this module's classes, with caproto's names: ``CaprotoTimeoutError``
  (a ``TimeoutError``), ``ErrorResponseReceived`` (an error status from the server,
  for example ``ECA_PUTFAIL``), ``AccessRightsError`` (a ``PermissionError``: the
  server grants no write, or no read, access) ... all subclasses of
  :class:`pvloom.PvloomError` via :class:`CaprotoError`. caproto's own exception
  classes do not catch them; ``TimeoutError``/``PermissionError`` do.
* The servers to search come from the EPICS environment (``EPICS_CA_ADDR_LIST``,
  ``EPICS_CA_AUTO_ADDR_LIST``, ``EPICS_CA_SERVER_PORT`` ...), read when a
  :class:`Context` is made. :class:`SharedBroadcaster` is a stand-in kept for
  signature compatibility: each Context has its own search engine.
* ``VirtualCircuitManager.events_off()``/``events_on()`` apply to the circuits to
  that server (one per priority).
* Writes convert the data to the channel's native type on the client when it is known
  (connected), otherwise send the data's own type and let the server convert; a
  ``data_type`` naming a class (``'time'``, ...) is ignored for writes, and a
  ``ChannelType`` is used for its value type only (no metadata is written).
"""

from __future__ import annotations

import atexit
import datetime
import enum
import inspect
import itertools
import logging
import os
import threading
import time
import warnings
import weakref
from collections import namedtuple
from typing import Any, Callable, Optional

from . import _pvloom
from ._pvloom import PvloomError, WouldDeadlock

try:  # numpy is optional: without it, arrays are array.array.
    import numpy as _np
except ImportError:  # pragma: no cover - numpy is installed wherever tests run
    _np = None

try:  # Reuse caproto's enums and status codes when caproto is installed.
    from caproto import AccessRights, AlarmSeverity, AlarmStatus, ChannelType
    from caproto._status import eca_value_to_status as _CAPROTO_STATUS
except ImportError:  # pragma: no cover - exercised only without caproto
    _CAPROTO_STATUS = None

    _NATIVE_NAMES = ["STRING", "INT", "FLOAT", "ENUM", "CHAR", "LONG", "DOUBLE"]
    _FAMILIES = ["", "STS_", "TIME_", "GR_", "CTRL_"]
    ChannelType = enum.IntEnum(
        "ChannelType",
        [(family + name, 7 * f + n) for f, family in enumerate(_FAMILIES) for n, name in enumerate(_NATIVE_NAMES)]
        + [("PUT_ACKT", 35), ("PUT_ACKS", 36), ("STSACK_STRING", 37), ("CLASS_NAME", 38)],
    )
    ChannelType.__doc__ = "DBR type codes, with caproto's names."

    class AccessRights(enum.IntFlag):
        """Access rights granted by a server."""

        NO_ACCESS = 0
        READ = 1
        WRITE = 2

    class AlarmSeverity(enum.IntEnum):
        """EPICS alarm severities."""

        NO_ALARM = 0
        MINOR_ALARM = 1
        MAJOR_ALARM = 2
        INVALID_ALARM = 3

    AlarmStatus = None

__all__ = [
    "AccessRights",
    "AccessRightsError",
    "AlarmSeverity",
    "Batch",
    "CallbackHandler",
    "CaprotoError",
    "CaprotoTimeoutError",
    "CaprotoValueError",
    "ChannelType",
    "Context",
    "ContextDisconnectedError",
    "DeadCircuitError",
    "ErrorResponseReceived",
    "EventAddResponse",
    "PV",
    "PvloomError",
    "ReadNotifyResponse",
    "SharedBroadcaster",
    "Subscription",
    "VirtualCircuitManager",
    "WouldDeadlock",
    "WriteNotifyResponse",
]

logger = logging.getLogger("pvloom.ca")


# --------------------------------------------------------------------------- errors


class CaprotoError(PvloomError):
    """Base class of this module's errors (caproto's name)."""


class CaprotoTimeoutError(TimeoutError, CaprotoError):
    """No connection or no reply in time; the message names the PV."""


class CaprotoValueError(ValueError, CaprotoError):
    """A value or argument that cannot be used."""


class ErrorResponseReceived(CaprotoError):
    """The server answered with an error status (``.status``: the ECA code, ``.pv_name``)."""

    status: Optional[int] = None
    pv_name: Optional[str] = None


class AccessRightsError(PermissionError, CaprotoError):
    """The server grants no write access (or no read access) to the channel."""


class DeadCircuitError(CaprotoError):
    """The circuit closed while the operation was outstanding."""


class ContextDisconnectedError(CaprotoError):
    """The Context was disconnected and is no longer usable."""


# ----------------------------------------------------------------------- constants


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: Fall back to the Context's timeout (caproto's sentinel of the same name).
CONTEXT_DEFAULT_TIMEOUT = _Sentinel("CONTEXT_DEFAULT_TIMEOUT")
#: Fall back to the PV's timeout (caproto's sentinel of the same name).
PV_DEFAULT_TIMEOUT = _Sentinel("PV_DEFAULT_TIMEOUT")
_GLOBAL_DEFAULT_TIMEOUT = _Sentinel("GLOBAL_DEFAULT_TIMEOUT")

#: caproto's default subscription mask: DBE_VALUE | DBE_ALARM | DBE_PROPERTY.
DEFAULT_SUBSCRIPTION_MASK = 1 | 4 | 8

_EPICS_EPOCH = 631152000  # 1990-01-01 in UNIX seconds
_NUMPY_DTYPES = {1: "i2", 2: "f4", 3: "u2", 4: "u1", 5: "i4", 6: "f8"}
_ARRAY_CODES = {1: "h", 2: "f", 3: "H", 4: "B", 5: "i", 6: "d"}
_STRING, _INT, _FLOAT, _ENUM, _CHAR, _LONG, _DOUBLE = range(7)
_INTEGRAL = {_INT, _ENUM, _CHAR, _LONG}

CAStatusCode = namedtuple(
    "CAStatusCode", "name code code_with_severity severity success defunct description"
)


def _status(code: int):
    """caproto's ``CAStatusCode`` for an ECA value (with severity bits)."""
    if _CAPROTO_STATUS is not None:
        found = _CAPROTO_STATUS.get(code)
        if found is not None:
            return found
    if code == 1:
        return CAStatusCode("ECA_NORMAL", 0, 1, 1, 1, False, "Normal successful completion")
    return CAStatusCode(f"ECA_{code:#x}", code >> 3, code, code & 7, code & 1, False, "error status")


_ECA_NORMAL = _status(1)
_ioids = itertools.count()


_CHANNEL_TYPES = {int(member): member for member in ChannelType}


def _channel_type(code: int):
    """The ``ChannelType`` of a code (the code itself when unknown): a dict look-up,
    as ``ChannelType(code)`` costs a microsecond per response."""
    return _CHANNEL_TYPES.get(code, code)


def _default_timeout() -> float:
    value = os.environ.get("CAPROTO_DEFAULT_TIMEOUT")
    return float(value) if value else 2.0


# ------------------------------------------------------------------------ responses


class TimeStamp:
    """An EPICS timestamp (caproto's ``TimeStamp``): seconds and nanoseconds since 1990."""

    __slots__ = ("secondsSinceEpoch", "nanoSeconds")

    def __init__(self, secondsSinceEpoch: int, nanoSeconds: int) -> None:
        self.secondsSinceEpoch = secondsSinceEpoch
        self.nanoSeconds = nanoSeconds

    @property
    def timestamp(self) -> float:
        """The time as UNIX seconds."""
        return _EPICS_EPOCH + self.secondsSinceEpoch + self.nanoSeconds * 1e-9

    def as_datetime(self) -> datetime.datetime:
        """The time as a (local, naive) datetime, as caproto gives it."""
        return datetime.datetime.fromtimestamp(self.timestamp)

    def __iter__(self):
        return iter((self.secondsSinceEpoch, self.nanoSeconds))

    def __repr__(self) -> str:
        return f"TimeStamp(timestamp={self.timestamp})"


def _alarm(enum_type, value: int):
    if enum_type is None:
        return value
    try:
        return enum_type(value)
    except ValueError:
        return value


class Metadata:
    """The metadata of a DBR payload, with caproto's field names.

    Its class name is the DBR type's (``DBR_TIME_DOUBLE`` ...). Every class has
    ``status`` and ``severity``; TIME adds ``timestamp``/``stamp``/``secondsSinceEpoch``/
    ``nanoSeconds``; GR and CTRL add ``units`` (bytes), ``precision`` and the display and
    alarm limits, CTRL the control limits; GR/CTRL of enums ``enum_strings`` (bytes).
    """

    def __init__(self, name: str, fields: dict, native: Optional[int]) -> None:
        self._name = name
        fields = dict(fields)
        fields["status"] = _alarm(AlarmStatus, fields["status"])
        fields["severity"] = _alarm(AlarmSeverity, fields["severity"])
        if native in _INTEGRAL:
            for key in list(fields):
                if key.endswith("_limit"):
                    fields[key] = int(fields[key])
        if "secondsSinceEpoch" in fields:
            fields["stamp"] = TimeStamp(fields["secondsSinceEpoch"], fields["nanoSeconds"])
        self.__dict__.update(fields)
        self._fields = [k for k in fields if k not in ("secondsSinceEpoch", "nanoSeconds")]

    @property
    def timestamp(self) -> float:
        """UNIX seconds (TIME types only)."""
        stamp = self.__dict__.get("stamp")
        if stamp is None:
            raise AttributeError(f"{self._name} has no timestamp")
        return stamp.timestamp

    @property
    def info_fields(self) -> tuple:
        """The names of the metadata fields."""
        return tuple(self._fields)

    def to_dict(self) -> dict:
        """The fields as a dict."""
        return {k: getattr(self, k) for k in self._fields}

    def __repr__(self) -> str:
        parts = []
        for key in self._fields:
            value = self.timestamp if key == "stamp" else getattr(self, key)
            parts.append(f"{'timestamp' if key == 'stamp' else key}={value!r}")
        return f"{self._name}({', '.join(parts)})"


_DATA_UNSET = object()


class ReadNotifyResponse:
    """A read reply (caproto's ``ReadNotifyResponse``): ``data``, ``metadata``,
    ``data_type`` (a ``ChannelType``), ``data_count``, ``status`` (a ``CAStatusCode``).

    ``data`` and ``metadata`` are converted from the Rust reply on first access.
    """

    __slots__ = ("_native", "_data", "_metadata", "_status_code", "data_type", "data_count", "ioid")

    def __init__(self, native, data_type=None, data_count=0, status=1) -> None:
        self._native = native
        self._data = self._metadata = _DATA_UNSET
        if native is not None:
            self.data_type = _CHANNEL_TYPES.get(native.data_type, native.data_type)
            self.data_count = native.data_count
            self._status_code = native.status
        else:
            self.data_type = _channel_type(data_type) if data_type is not None else None
            self.data_count = data_count
            self._status_code = status
        self.ioid = next(_ioids)

    @property
    def status(self):
        """The ECA status (caproto's ``CAStatusCode``; ``.name == 'ECA_NORMAL'`` on success)."""
        return _status(self._status_code)

    @property
    def data(self):
        """The value: a numpy array for numbers, a list of ``bytes`` for strings."""
        if self._data is _DATA_UNSET:
            self._data = self._native.data() if self._native is not None else None
        return self._data

    @property
    def metadata(self):
        """The metadata (:class:`Metadata`), ``None`` for plain types."""
        if self._metadata is _DATA_UNSET:
            fields = self._native.metadata() if self._native is not None else None
            if fields is None:
                self._metadata = None
            else:
                name = getattr(self.data_type, "name", str(self.data_type))
                native = int(self.data_type) % 7 if isinstance(self.data_type, int) and self.data_type < 35 else None
                self._metadata = Metadata(f"DBR_{name}", fields, native)
        return self._metadata

    def _fields(self) -> str:
        return (
            f"data={self.data!r}, data_type={self.data_type!r}, data_count={self.data_count}, "
            f"status={self.status!r}, ioid={self.ioid}, metadata={self.metadata!r}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fields()})"


class EventAddResponse(ReadNotifyResponse):
    """A subscription update (caproto's ``EventAddResponse``): as
    :class:`ReadNotifyResponse`, plus ``subscriptionid``."""

    __slots__ = ("subscriptionid",)

    def __init__(self, native, subscriptionid=None) -> None:
        super().__init__(native)
        self.subscriptionid = subscriptionid

    def _fields(self) -> str:
        return (
            f"data={self.data!r}, data_type={self.data_type!r}, data_count={self.data_count}, "
            f"status={self.status!r}, subscriptionid={self.subscriptionid}, metadata={self.metadata!r}"
        )


class WriteNotifyResponse:
    """A write confirmation (caproto's ``WriteNotifyResponse``)."""

    __slots__ = ("data_type", "data_count", "_status_code", "ioid")

    def __init__(self, data_type, data_count: int, status: int = 1) -> None:
        self.data_type = _channel_type(data_type) if data_type is not None else None
        self.data_count = data_count
        self._status_code = status
        self.ioid = next(_ioids)

    @property
    def status(self):
        """The ECA status (caproto's ``CAStatusCode``)."""
        return _status(self._status_code)

    def __repr__(self) -> str:
        return (
            f"WriteNotifyResponse(data_type={self.data_type!r}, data_count={self.data_count}, "
            f"status={self.status!r}, ioid={self.ioid})"
        )


# ------------------------------------------------------------------------- helpers


def _parse_data_type(data_type):
    """``(ChannelType code or None, class name or None)`` from caproto's forms."""
    if data_type is None:
        return None, None
    if isinstance(data_type, str):
        name = data_type.lower()
        if name not in ("native", "status", "time", "graphic", "control"):
            raise CaprotoValueError(
                f"data_type must be 'native', 'status', 'time', 'graphic', 'control' or a ChannelType, not {data_type!r}"
            )
        return None, name
    return int(data_type), None


def _request_type(code, class_, native):
    """caproto asks STRING channels for STS_STRING as 'graphic' and TIME_STRING as
    'control' (there is no display or control metadata for strings; caproto's server
    answers CTRL_STRING requests with a TIME_STRING payload). Do the same."""
    if class_ in ("graphic", "control") and native == _STRING:
        return (int(ChannelType.STS_STRING) if class_ == "graphic" else int(ChannelType.TIME_STRING)), None
    return code, class_


def _wrap(func: Callable, wrapper: Callable) -> Callable:
    """``wrapper`` presented as ``func`` (so error reports name the user's function).

    Only the names are copied: ``functools.wraps`` costs microseconds per request, which
    a batch of thousands of reads pays thousands of times."""
    wrapper.__wrapped__ = func
    wrapper.__qualname__ = getattr(func, "__qualname__", wrapper.__qualname__)
    wrapper.__name__ = getattr(func, "__name__", wrapper.__name__)
    return wrapper


def _read_failed(callback: Callable, name: str, exc: BaseException) -> None:
    """A non-blocking read failed: an error status still reaches ``callback`` (as a
    response with that status); timeouts and lost circuits are logged and dropped, as
    caproto drops late responses."""
    if isinstance(exc, ErrorResponseReceived) and exc.status is not None:
        callback(ReadNotifyResponse(None, status=exc.status))
    else:
        logger.warning("%s: read gave no response: %s", name, exc)


def _is_sequence(data) -> bool:
    return not isinstance(data, (str, bytes, bytearray)) and hasattr(data, "__iter__")


def _encode(data, native: Optional[int], data_type, data_count: Optional[int]):
    """``(kind, payload)`` for ``CaPv.write``: the value's native type code and its
    bytes (a list of ``bytes`` for strings)."""
    code, _class = _parse_data_type(data_type)
    target = native
    if code is not None:
        target = code % 7 if code < 35 else _ENUM if code < 37 else _STRING
    if isinstance(data, str) and target != _CHAR:
        data = [data]
    elif not _is_sequence(data) and not isinstance(data, (bytes, bytearray)):
        data = [data]
    if isinstance(data, (bytes, bytearray)) and target in (None, _CHAR):
        payload = bytes(data[:data_count] if data_count else data)
        return _CHAR, payload
    if isinstance(data, str):  # a string to a CHAR channel: its bytes
        raw = data.encode()
        return _CHAR, raw[:data_count] if data_count else raw
    items = list(data) if not (_np is not None and isinstance(data, _np.ndarray)) else data
    if data_count:
        items = items[:data_count]
    is_text = len(items) > 0 and isinstance(items[0], (str, bytes, bytearray))
    if target == _STRING or (is_text and target != _CHAR):
        return _STRING, [x if isinstance(x, (bytes, bytearray)) else str(x).encode() for x in items]
    if target is None:
        kind = _DOUBLE if any(isinstance(x, float) for x in items) or (
            _np is not None and isinstance(items, _np.ndarray) and items.dtype.kind == "f"
        ) else _LONG
    else:
        kind = target
    if is_text:  # bytes to a CHAR channel: a list of single characters
        items = [ord(x) if isinstance(x, str) else x[0] for x in items]
    if _np is not None:
        payload = _np.ascontiguousarray(_np.asarray(items).ravel(), dtype=_NUMPY_DTYPES[kind]).tobytes()
    else:  # pragma: no cover - numpy is installed wherever tests run
        import array

        payload = array.array(_ARRAY_CODES[kind], items).tobytes()
    return kind, payload


_live_contexts: "weakref.WeakSet[Context]" = weakref.WeakSet()


@atexit.register
def _disconnect_all() -> None:
    """Stop every context's threads before the interpreter goes away."""
    for ctx in list(_live_contexts):
        try:
            ctx.disconnect()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


# ---------------------------------------------------------------------- broadcaster


class SharedBroadcaster:
    """caproto's broadcaster, as a stand-in kept for signature compatibility.

    pvloom's client runs one search engine per :class:`Context`; this object just
    knows the contexts that use it, so that :meth:`search_now` and
    :meth:`time_since_last_heard` cover all of them, and :meth:`cancel` stops the
    search for a name in each of them.
    """

    def __init__(self, *, registration_retry_time: float = 10.0) -> None:
        self.registration_retry_time = registration_retry_time
        self.listeners: "weakref.WeakSet[Context]" = weakref.WeakSet()

    def add_listener(self, listener) -> None:
        """Remember a Context using this broadcaster."""
        self.listeners.add(listener)

    def remove_listener(self, listener) -> None:
        """Forget a Context."""
        self.listeners.discard(listener)

    def search_now(self) -> None:
        """Search every unanswered name again, now (in every listening context)."""
        for ctx in list(self.listeners):
            ctx._native.search_now()

    def cancel(self, *names: str) -> None:
        """Stop searching for ``names`` in every context using this broadcaster; a later
        operation on such a PV searches again."""
        for ctx in list(self.listeners):
            for name in names:
                ctx._native.cancel_search(name)

    def time_since_last_heard(self) -> dict:
        """Map each known server ``(host, port)`` to seconds since its last message."""
        heard = {}
        for ctx in list(self.listeners):
            for host, port in ctx._native.servers():
                secs = ctx._native.time_since_last_heard(host, port)
                if secs is not None:
                    heard[(host, port)] = min(secs, heard.get((host, port), secs))
        return heard

    def disconnect(self, *, wait: bool = True) -> None:
        """Nothing to do: the search engines belong to the contexts."""

    def __repr__(self) -> str:
        return f"<SharedBroadcaster contexts={len(self.listeners)}>"


# --------------------------------------------------------------------------- context


class Context:
    """Encapsulates the state and connections of a client (caproto's ``Context``).

    Parameters are caproto's: ``broadcaster`` (a :class:`SharedBroadcaster`, or
    ``None`` for a fresh one), ``timeout`` (seconds before a
    :class:`CaprotoTimeoutError`; ``None``: never; default ``CAPROTO_DEFAULT_TIMEOUT``
    or 2), ``host_name``, ``client_name``, and ``max_workers``: threads running user
    callbacks in arrival order (0: Inline on the I/O threads; blocking calls there
    raise :class:`pvloom.WouldDeadlock`).
    """

    def __init__(
        self,
        broadcaster: Optional[SharedBroadcaster] = None,
        *,
        timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
        host_name: Optional[str] = None,
        client_name: Optional[str] = None,
        max_workers: int = 1,
    ) -> None:
        if timeout is _GLOBAL_DEFAULT_TIMEOUT:
            timeout = _default_timeout()
        if broadcaster is None:
            broadcaster = SharedBroadcaster()
        self.broadcaster = broadcaster
        self.timeout = timeout
        self.max_workers = max_workers
        self._native = _pvloom.CaContext(
            timeout=timeout, host_name=host_name, client_name=client_name, max_workers=max_workers
        )
        self.host_name = host_name
        self.client_name = client_name
        self.pvs: dict = {}
        self.pv_cache_lock = threading.RLock()
        self._user_disconnected = False
        broadcaster.add_listener(self)
        _live_contexts.add(self)

    def get_pvs(
        self,
        *names: str,
        priority: int = 0,
        connection_state_callback: Optional[Callable] = None,
        access_rights_callback: Optional[Callable] = None,
        timeout: Any = CONTEXT_DEFAULT_TIMEOUT,
    ) -> list:
        """Return a list of :class:`PV` objects, one per name; searching starts at once.

        PVs are cached by (name, priority): asking twice returns the same object.
        ``connection_state_callback(pv, state)`` (``state``: ``'connected'`` or
        ``'disconnected'``) and ``access_rights_callback(pv, rights)`` are added to each
        PV. ``timeout`` is the PV's default (``CONTEXT_DEFAULT_TIMEOUT``: the context's).
        """
        if self._user_disconnected:
            raise ContextDisconnectedError("This Context is no longer usable.")
        with self.pv_cache_lock:
            new_names = list(dict.fromkeys(n for n in names if (n, priority) not in self.pvs))
            if new_names:
                natives = self._native.get_pvs(new_names, priority)
                for name, native in zip(new_names, natives):
                    self.pvs[(name, priority)] = PV(name, priority, self, timeout, _native=native)
            pvs = [self.pvs[(name, priority)] for name in names]
        for pv in pvs:
            if connection_state_callback is not None:
                pv.connection_state_callback.add_callback(connection_state_callback, run=True)
            if access_rights_callback is not None:
                pv.access_rights_callback.add_callback(access_rights_callback, run=True)
        return pvs

    def search_now(self) -> None:
        """Search every unanswered name again, now."""
        self._native.search_now()

    @property
    def circuit_managers(self) -> dict:
        """``{((host, port), priority): VirtualCircuitManager}`` of the open circuits."""
        return {
            (address, priority): VirtualCircuitManager(self, address, priority)
            for address in self._native.servers()
            for priority in sorted({pv.priority for pv in list(self.pvs.values())} or {0})
        }

    @property
    def callback_errors(self) -> int:
        """Exceptions raised by callbacks of this context so far (reported, not raised)."""
        return self._native.callback_errors

    def set_error_hook(self, hook: Optional[Callable]) -> None:
        """Install ``hook(origin, exception)`` for failing callbacks (``None``: Python's
        "Exception ignored in" report). It runs on the callback's thread."""
        self._native.set_error_hook(hook)

    def disconnect(self, *, wait: bool = True) -> None:
        """Close every circuit and stop the threads; the context is unusable afterwards."""
        self._user_disconnected = True
        self.broadcaster.remove_listener(self)
        self._native.disconnect()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.disconnect(wait=True)

    def __repr__(self) -> str:
        try:
            pending = self._native.unanswered_searches()
        except Exception:  # noqa: BLE001 - e.g. WouldDeadlock inside an Inline callback
            pending = "?"
        pvs = list(self.pvs.values())
        return (
            f"<Context searches_pending={pending} circuits={len(self._native.servers())} "
            f"pvs={len(pvs)} idle={sum(1 for pv in pvs if pv._idle)}>"
        )


class VirtualCircuitManager:
    """A circuit to one server (caproto's ``VirtualCircuitManager``), as a stand-in:
    address, priority, ``connected``, and ``events_off``/``events_on`` for the circuits
    to this server."""

    def __init__(self, context: Context, address: tuple, priority: int) -> None:
        self.context = context
        self.address = address
        self.priority = priority

    @property
    def connected(self) -> bool:
        """True while the context has a circuit to this server."""
        return tuple(self.address) in {tuple(a) for a in self.context._native.servers()}

    def events_off(self) -> None:
        """Ask this server to suspend subscription updates (EVENTS_OFF)."""
        host, port = self.address
        self.context._native.set_server_events(host, port, False)

    def events_on(self) -> None:
        """Ask this server to resume subscription updates (EVENTS_ON)."""
        host, port = self.address
        self.context._native.set_server_events(host, port, True)

    def __repr__(self) -> str:
        return f"<VirtualCircuitManager address={self.address} priority={self.priority}>"


class _Channel:
    """What caproto's ``pv.channel`` offers that pvloom knows: name, native type,
    native count and access rights of the connected channel."""

    __slots__ = ("name", "native_data_type", "native_data_count", "access_rights")

    def __init__(self, name, native_data_type, native_data_count, access_rights) -> None:
        self.name = name
        self.native_data_type = native_data_type
        self.native_data_count = native_data_count
        self.access_rights = access_rights

    def __repr__(self) -> str:
        return (
            f"<ClientChannel name={self.name!r} native_data_type={self.native_data_type!r} "
            f"native_data_count={self.native_data_count}>"
        )


# -------------------------------------------------------------------------------- PV


class CallbackHandler:
    """A PV's connection-state or access-rights callbacks (caproto's ``CallbackHandler``).

    ``add_callback(func, run=False)`` returns an integer token; with ``run=True`` the
    function is called at once with the current state if the PV is connected.
    References are strong (see the module docstring).
    """

    def __init__(self, pv: "PV", kind: str) -> None:
        self.pv = pv
        self._kind = kind
        self.callbacks: dict = {}
        self._native_tokens: dict = {}
        self._ids = itertools.count()
        self.callback_lock = threading.RLock()

    def _current(self):
        if self._kind == "connection":
            return "connected"
        return AccessRights(self.pv._native.access_rights)

    def add_callback(self, func: Callable, run: bool = False) -> int:
        """Call ``func(pv, state)`` on every change; returns a token."""
        pv, native = self.pv, self.pv._native
        if self._kind == "connection":
            token = native.add_connection_callback(_wrap(func, lambda state: func(pv, state)))
        else:
            token = native.add_access_rights_callback(_wrap(func, lambda bits: func(pv, AccessRights(bits))))
        with self.callback_lock:
            cb_id = next(self._ids)
            self.callbacks[cb_id] = func
            self._native_tokens[cb_id] = token
        if run and native.connected:
            pv.context._native.call_soon(func, pv, self._current())
        return cb_id

    def remove_callback(self, token: int) -> None:
        """Remove a callback by its token."""
        with self.callback_lock:
            self.callbacks.pop(token, None)
            native_token = self._native_tokens.pop(token, None)
        if native_token is not None:
            if self._kind == "connection":
                self.pv._native.remove_connection_callback(native_token)
            else:
                self.pv._native.remove_access_rights_callback(native_token)


class PV:
    """One PV, by name and priority (caproto's ``PV``). Made by :meth:`Context.get_pvs`.

    It persists across disconnections and reconnects by itself; operations on a PV that
    is not connected yet wait for the connection (within their timeout).
    """

    __slots__ = (
        "name",
        "priority",
        "context",
        "_native",
        "_timeout",
        "_idle",
        "connection_state_callback",
        "access_rights_callback",
        "subscriptions",
        "__weakref__",
    )

    def __init__(self, name: str, priority: int, context: Context, timeout: Any, *, _native=None) -> None:
        if _native is None:
            raise CaprotoValueError("PVs are made by Context.get_pvs")
        self.name = name
        self.priority = priority
        self.context = context
        self._native = _native
        self._timeout = timeout
        self._idle = False
        self.connection_state_callback = CallbackHandler(self, "connection")
        self.access_rights_callback = CallbackHandler(self, "access_rights")
        self.subscriptions: dict = {}

    @property
    def timeout(self):
        """Effective default timeout (``None``: never)."""
        if self._timeout is CONTEXT_DEFAULT_TIMEOUT:
            return self.context.timeout
        return self._timeout

    @timeout.setter
    def timeout(self, value) -> None:
        self._timeout = value

    def _resolve(self, timeout):
        return self.timeout if timeout is PV_DEFAULT_TIMEOUT else timeout

    @property
    def connected(self) -> bool:
        """True while the channel is connected."""
        return self._native.connected

    @property
    def access_rights(self):
        """``AccessRights`` granted by the server (``None`` before the first connection)."""
        if self._native.native_type is None and not self._native.connected:
            return None
        return AccessRights(self._native.access_rights)

    @property
    def channel(self) -> Optional[_Channel]:
        """The connected channel's name, native type and count (``None`` if not connected)."""
        native_type = self._native.native_type
        if native_type is None or not self._native.connected:
            return None
        return _Channel(
            self.name, _channel_type(native_type), self._native.element_count, AccessRights(self._native.access_rights)
        )

    @property
    def circuit_manager(self) -> Optional[VirtualCircuitManager]:
        """The circuit (a :class:`VirtualCircuitManager` stand-in), ``None`` if not connected."""
        address = self._native.server_address
        if address is None or not self._native.connected:
            return None
        return VirtualCircuitManager(self.context, address, self.priority)

    def wait_for_connection(self, *, timeout: Any = PV_DEFAULT_TIMEOUT) -> None:
        """Wait until connected; raises :class:`CaprotoTimeoutError` naming the PV."""
        self._native.wait_for_connection(self._resolve(timeout))

    def wait_for_search(self, *, timeout: Any = PV_DEFAULT_TIMEOUT) -> None:
        """Wait until found; pvloom waits for the full connection (see :meth:`wait_for_connection`)."""
        self.wait_for_connection(timeout=timeout)

    def go_idle(self) -> None:
        """Clear the channel to spare client and server; the next use reconnects.
        Ignored while a subscription has callbacks."""
        if any(sub.callbacks for sub in self.subscriptions.values()):
            return
        if self._native.connected:
            self._native.go_idle()
            self._idle = True

    def _blocking(self, operation: str, timeout, call: Callable):
        """Run a blocking native call, retrying on a lost circuit while time remains
        (as caproto does)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return call(remaining)
            except DeadCircuitError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise CaprotoTimeoutError(
                        f"{self.name}: {operation} timed out after {timeout:.3} s (circuit lost)"
                    ) from None

    def read(
        self,
        *,
        wait: bool = True,
        callback: Optional[Callable] = None,
        timeout: Any = PV_DEFAULT_TIMEOUT,
        data_type=None,
        data_count: Optional[int] = None,
        notify: bool = True,
    ) -> Optional[ReadNotifyResponse]:
        """Request a fresh reading (caproto's ``PV.read``).

        ``wait=True`` blocks and returns a :class:`ReadNotifyResponse` (raising
        :class:`CaprotoTimeoutError` after ``timeout``); ``callback(response)`` is also
        called, on a callback thread. ``wait=False`` returns ``None`` at once and hands
        the response to ``callback``. ``data_type``: ``'native'``, ``'status'``,
        ``'time'``, ``'graphic'``, ``'control'``, or a ``ChannelType``/int.
        """
        timeout = self._resolve(timeout)
        code, class_ = _parse_data_type(data_type)
        self._idle = False
        native = self._native
        if wait and class_ in ("graphic", "control") and native.native_type is None:
            self.wait_for_connection(timeout=timeout)
        code, class_ = _request_type(code, class_, native.native_type)
        if not wait:
            if callback is None:
                native.read(code, class_, data_count, timeout, notify, False, None)
            else:
                self.context._native.read_batch(
                    [native], [callback], ReadNotifyResponse, _read_failed, code, class_, data_count, timeout, notify
                )
            return None
        raw = self._blocking(
            "read", timeout, lambda remaining: native.read(code, class_, data_count, remaining, notify, True, None)
        )
        response = ReadNotifyResponse(raw)
        if callback is not None:
            self.context._native.call_soon(callback, response)
        return response

    def _callback(self, callback: Optional[Callable], operation: str, make):
        """The native callback ``(result, exception)`` that calls ``callback(response)``."""
        if callback is None:
            return None
        name = self.name

        def deliver(result, exc):
            if exc is None:
                callback(make(result))
            elif isinstance(exc, ErrorResponseReceived) and exc.status is not None:
                callback(make(None, exc.status))
            else:  # timeouts and lost circuits: caproto drops late responses too
                logger.warning("%s: %s gave no response: %s", name, operation, exc)

        return _wrap(callback, deliver)

    def write(
        self,
        data,
        *,
        wait: bool = True,
        callback: Optional[Callable] = None,
        timeout: Any = PV_DEFAULT_TIMEOUT,
        notify: Optional[bool] = None,
        data_type=None,
        data_count: Optional[int] = None,
    ) -> Optional[WriteNotifyResponse]:
        """Write a new value (caproto's ``PV.write``).

        ``notify`` defaults to ``wait or callback is not None`` (a WRITE_NOTIFY, which
        the server confirms); ``notify=False`` with ``wait`` or ``callback`` raises
        :class:`CaprotoValueError`. ``wait=True`` blocks until the server confirms and
        returns a :class:`WriteNotifyResponse`; errors raise (``ErrorResponseReceived``,
        ``AccessRightsError`` for a read-only channel, ``CaprotoTimeoutError``).
        """
        timeout = self._resolve(timeout)
        if notify is None:
            notify = wait or callback is not None
        elif not notify and (wait or callback is not None):
            raise CaprotoValueError(
                "Must set notify=True in order to use `wait` or `callback` because, without a "
                "notification of 'put-completion' from the server, there is nothing to wait on or "
                "to trigger a callback."
            )
        self._idle = False
        native = self._native
        if wait and native.native_type is None:
            self.wait_for_connection(timeout=timeout)
        if native.native_type == _ENUM and data_type is None:
            data = self._enum_indices(data, wait, timeout)
        kind, payload = _encode(data, native.native_type, data_type, data_count)
        count = len(payload) if kind in (_STRING, _CHAR) else len(payload) // int(_NUMPY_DTYPES[kind][1])
        sent_type = kind

        def make(_ok, status=1):
            return WriteNotifyResponse(sent_type, count, status)

        if not wait:
            native.write(kind, payload, None, timeout, notify, False, self._callback(callback, "write", make))
            return None
        self._blocking(
            "write", timeout, lambda remaining: native.write(kind, payload, None, remaining, notify, True, None)
        )
        response = make(True)
        if callback is not None:
            self.context._native.call_soon(callback, response)
        return response

    def _enum_indices(self, data, wait: bool, timeout):
        """State names written to an ENUM channel, as indices.

        Sending the names as DBR_STRING works with EPICS servers, but caproto's server
        confirms such a write with the channel's own type, which pvloom's client takes
        for a protocol violation. So names are looked up on the client (one
        ``'control'`` read, when ``wait``), as caproto's client would need anyway.
        """
        names = [data] if isinstance(data, (str, bytes)) else data if _is_sequence(data) else None
        if not names or not all(isinstance(n, (str, bytes)) for n in names):
            return data
        if wait:
            strings = self.read(data_type="control", timeout=timeout).metadata.enum_strings
        else:
            return data  # no blocking lookup here: the server converts
        indices = []
        for name in names:
            key = name.encode() if isinstance(name, str) else name
            if key in strings:
                indices.append(strings.index(key))
            elif key.strip().isdigit():
                indices.append(int(key))
            else:
                raise CaprotoValueError(f"{self.name}: {name!r} is not one of the states {strings}")
        return indices

    def subscribe(
        self, data_type=None, data_count: Optional[int] = None, low=0.0, high=0.0, to=0.0, mask=None
    ) -> "Subscription":
        """A :class:`Subscription` (caproto's ``PV.subscribe``); it starts with its first
        callback. The same arguments give the same subscription. ``low``, ``high``,
        ``to`` are accepted and ignored, as in caproto."""
        key = (data_type, data_count, low, high, to, mask)
        sub = self.subscriptions.get(key)
        if sub is None:
            # setdefault: of two threads subscribing alike at once, both get the first
            # (a Subscription starts nothing until its first callback).
            sub = self.subscriptions.setdefault(key, Subscription(self, data_type, data_count, low, high, to, mask))
        return sub

    def unsubscribe_all(self) -> None:
        """Clear all subscriptions (remove all their callbacks)."""
        for sub in list(self.subscriptions.values()):
            sub.clear()

    def time_since_last_heard(self, timeout: Any = PV_DEFAULT_TIMEOUT) -> float:
        """Seconds since the server of this channel was last heard from (connects first)."""
        self.wait_for_connection(timeout=timeout)
        secs = self._native.time_since_last_heard()
        return float("inf") if secs is None else secs

    def __repr__(self) -> str:
        if self._idle and not self._native.connected:
            state = "(idle)"
        elif not self._native.connected:
            state = "(searching....)"
        else:
            state = (
                f"address={self._native.server_address}, circuit_state=States.CONNECTED, "
                f"channel_state=States.CONNECTED"
            )
        return f"<PV name={self.name!r} priority={self.priority} {state}>"


# ---------------------------------------------------------------------- subscription


def _adapt_old_signature(func: Callable) -> Callable:
    """caproto accepts ``f(response)`` with a warning; so do we."""
    try:
        sig = inspect.signature(func)
        sig.bind(None, None)
    except TypeError:
        try:
            sig.bind(None)
        except TypeError:
            return func
        warnings.warn(
            "The signature of a subscription callback is now f(sub, response); f(response) "
            "is accepted for backward compatibility.",
            DeprecationWarning,
            stacklevel=3,
        )
        return _wrap(func, lambda sub, response: func(response))
    except ValueError:  # builtins without a signature
        pass
    return func


class Subscription:
    """A subscription to one PV (caproto's ``Subscription``), made by :meth:`PV.subscribe`.

    It fans out to any number of callbacks ``func(sub, response)``; the first callback
    starts it on the server, removing the last one cancels it. Unlike caproto, it holds
    strong references to the callbacks.
    """

    def __init__(self, pv: PV, data_type, data_count, low, high, to, mask) -> None:
        self.pv = pv
        self.data_type = data_type
        self.data_count = data_count
        self.low, self.high, self.to = low, high, to
        self.mask = mask
        code, class_ = _request_type(*_parse_data_type(data_type), pv._native.native_type)
        self._native = pv._native.subscribe(
            code, class_, data_count, DEFAULT_SUBSCRIPTION_MASK if mask is None else int(mask)
        )
        self.callbacks: dict = {}
        self._native_tokens: dict = {}
        self._ids = itertools.count()
        self.callback_lock = threading.RLock()

    @property
    def subscriptionid(self) -> Optional[int]:
        """The id on the wire while active, else ``None``."""
        return self._native.id if self._native.active else None

    @property
    def most_recent_response(self) -> Optional[EventAddResponse]:
        """The last update received."""
        raw = self._native.most_recent()
        return None if raw is None else EventAddResponse(raw, self._native.id)

    def add_callback(self, func: Callable) -> int:
        """Add ``func(sub, response)``; returns an integer token for :meth:`remove_callback`.

        The first callback starts the subscription (the server sends the current value
        first); a later one gets the most recent update at once, as in caproto.
        """
        func = _adapt_old_signature(func)
        sub_id = self._native.id

        def deliver(raw):
            func(self, EventAddResponse(raw, sub_id))

        with self.callback_lock:
            was_empty = not self.callbacks
            native_token = self._native.add_callback(_wrap(func, deliver), func)
            cb_id = next(self._ids)
            self.callbacks[cb_id] = func
            self._native_tokens[cb_id] = native_token
        if not was_empty:
            recent = self.most_recent_response
            if recent is not None:
                try:
                    func(self, recent)
                except Exception:  # noqa: BLE001 - caproto logs and goes on, too
                    logger.exception("callback %r failed on the most recent response", func)
        return cb_id

    def remove_callback(self, token: int) -> None:
        """Remove the callback with this token; the last one cancels the subscription."""
        with self.callback_lock:
            self.callbacks.pop(token, None)
            native_token = self._native_tokens.pop(token, None)
        if native_token is not None:
            self._native.remove_callback(native_token)

    def clear(self) -> None:
        """Remove all callbacks (and cancel on the server)."""
        with self.callback_lock:
            self.callbacks.clear()
            self._native_tokens.clear()
        self._native.clear()

    def __repr__(self) -> str:
        return f"<Subscription to {self.pv.name!r}, id={self.subscriptionid}>"


# ----------------------------------------------------------------------------- batch


class Batch:
    """Accumulate reads and writes, and issue them together on leaving the ``with``
    block (caproto's ``Batch``). Responses go to the callbacks; ``timeout`` bounds how
    long they are awaited (late ones are dropped, as in caproto)."""

    def __init__(self, timeout: Optional[float] = 2) -> None:
        self.timeout = timeout
        self._requests: list = []

    def __enter__(self) -> "Batch":
        return self

    def read(self, pv: PV, callback: Callable, data_type=None, data_count: Optional[int] = None) -> None:
        """Queue a read; ``callback(response)`` gets the :class:`ReadNotifyResponse`."""
        self._requests.append((pv, callback, data_type, data_count))

    def write(
        self, pv: PV, data, callback: Optional[Callable] = None, data_type=None, data_count: Optional[int] = None
    ) -> None:
        """Queue a write; with a ``callback``, a WRITE_NOTIFY whose confirmation it gets."""
        self._requests.append(
            lambda: pv.write(
                data,
                wait=False,
                callback=callback,
                timeout=self.timeout,
                notify=callback is not None,
                data_type=data_type,
                data_count=data_count,
            )
        )

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        """Issue the requests in order: each run of plain reads of one context goes to
        the Rust client in one call (issued there with the GIL released, the replies
        handed back in bursts); other requests one by one."""
        requests, self._requests = self._requests, []
        run: list = []
        for request in requests:
            if type(request) is tuple and request[2] is None and request[3] is None:
                if run and run[0][0].context is not request[0].context:
                    self._read_run(run)
                    run = []
                run.append(request)
                continue
            if run:
                self._read_run(run)
                run = []
            if type(request) is tuple:
                pv, callback, data_type, data_count = request
                pv.read(wait=False, callback=callback, timeout=self.timeout, data_type=data_type, data_count=data_count)
            else:
                request()
        if run:
            self._read_run(run)

    def _read_run(self, run: list) -> None:
        natives, callbacks = [], []
        for pv, callback, _data_type, _data_count in run:
            pv._idle = False
            natives.append(pv._native)
            callbacks.append(callback)
        context = run[0][0].context._native
        context.read_batch(natives, callbacks, ReadNotifyResponse, _read_failed, None, None, None, self.timeout, True)
