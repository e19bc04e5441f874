"""LDMS with the real Python API's names (``from ovis_ldms import ldms``), on pvloom's
Rust LDMS client and set server.

A script written for ``ovis_ldms.ldms`` runs by changing its import::

    from pvloom import ldms

    ldms.init(16 * 1024 * 1024)
    x = ldms.Xprt(name="sock")
    x.connect(host="localhost", port=10001)
    for s in x.lookup(".*", ldms.LOOKUP_RE):
        s.update()
        print(s.name, s["component_id"], s[1:3])

The threading model is LDMS's: callbacks (``cb=``) run on pvloom's I/O threads, one
at a time with the GIL held; every blocking call (no ``cb``) releases the GIL while
it waits. A blocking call made inside a callback raises :class:`pvloom.WouldDeadlock`
at once instead of hanging: use the ``cb=`` form there. An exception raised in a
callback is printed to stderr ("Exception ignored in ...", or given to the hook of
:func:`set_error_hook`) and counted (:func:`callback_errors`); the I/O thread lives on.

What callbacks receive, and how long it stays valid:

* ``XprtEvent``, ``DirData``/``DirSet``: plain objects, safe to keep; EVENT_RECV's
  ``ev.data`` is ``bytes``.
* a ``Set`` in an update or push callback holds the values of that update; a later
  update replaces them (copy what you keep).
* a blocking ``Set.update()`` keeps the values until the next update. Values are
  converted to Python only when read (``set[i]``), so an update allocates nothing.

The server side is LDMS's too: ``Xprt.listen(cb=, cb_arg=)`` serves the published
sets and hands each accepted connection to ``cb`` as an ``Xprt`` of its own (the same
object for its EVENT_CONNECTED, EVENT_RECV and EVENT_DISCONNECTED); without ``cb``,
``Xprt.accept()`` returns it. An accepted ``Xprt`` can ``send``, ``recv``, ``close``,
``get_addr``; ``dir``/``lookup`` on it raise ``ConnectionError`` (``ENOTSUP``): pvloom's
accepted side is a set-server connection.

pvloom's additions: :func:`update_all` (many updates in one native call),
``Set.subscribe_push(cb=, cb_arg=)``, ``Xprt.get_addr()`` for a ``listen(port=0)``.
Not offered: transports other than ``sock``, authentication other than ``none``,
``dir``/``lookup`` from the accepting side.

The message service, with the real API's names: ``Xprt.msg_publish``,
``Xprt.msg_subscribe``/``msg_unsubscribe`` (blocking, or ``cb(MsgStatusEvent,
cb_arg)``), :class:`MsgClient` on this process's bus (``cb(client, MsgData, cb_arg)``,
or ``get_data()`` without ``cb``), :func:`msg_publish` to this process's bus,
:func:`msg_stats`, and :class:`MessageChannel`. A listener serves the message
service with ``Xprt.listen(..., msg=True)`` (this process's bus) or
``msg="private"`` (a bus of its own; pvloom). ``MessageChannel.publish`` never
blocks for long: with its queue (1 MiB) full it raises ``ConnectionError``
(``EAGAIN``) at once, or after the ``timeout=`` it was given.
"""

from __future__ import annotations

import enum as _enum
import json as _json
import weakref as _weakref
from collections import namedtuple as _namedtuple

from . import _pvloom

__all__ = [
    "DirData",
    "DirSet",
    "LDMS_MSG_AVRO_SER",
    "LDMS_MSG_JSON",
    "LDMS_MSG_STRING",
    "LDMS_UPD_ERROR",
    "MessageChannel",
    "MetricTemplate",
    "MsgClient",
    "MsgData",
    "MsgStatusEvent",
    "MsgType",
    "RecordDef",
    "Schema",
    "Set",
    "SetDeleteEventData",
    "Xprt",
    "XprtEvent",
    "callback_errors",
    "init",
    "msg_publish",
    "msg_stats",
    "set_error_hook",
    "update_all",
]


class ldms_xprt_event_type(_enum.IntEnum):
    """Transport event types (``XprtEvent.type``)."""

    EVENT_CONNECTED = 0
    EVENT_REJECTED = 1
    EVENT_ERROR = 2
    EVENT_DISCONNECTED = 3
    EVENT_RECV = 4
    EVENT_SET_DELETE = 5
    EVENT_SEND_COMPLETE = 6
    EVENT_SEND_QUOTA_DEPOSITED = 7


class ldms_dir_type(_enum.IntEnum):
    """Directory callback types (``DirData.type``)."""

    DIR_LIST = 0
    DIR_DEL = 1
    DIR_ADD = 2
    DIR_UPD = 3


class ldms_lookup_flags(_enum.IntFlag):
    """``Xprt.lookup`` flags."""

    LOOKUP_BY_INSTANCE = 0
    LOOKUP_BY_SCHEMA = 1
    LOOKUP_RE = 2
    LOOKUP_SET_INFO = 4


class ldms_lookup_status(_enum.IntEnum):
    """Lookup status values."""

    LOOKUP_OK = 0
    LOOKUP_ERROR = 1


class ldms_value_type(_enum.IntEnum):
    """Metric value types (``enum ldms_value_type``)."""

    V_NONE = 0
    V_CHAR = 1
    V_U8 = 2
    V_S8 = 3
    V_U16 = 4
    V_S16 = 5
    V_U32 = 6
    V_S32 = 7
    V_U64 = 8
    V_S64 = 9
    V_F32 = 10
    V_D64 = 11
    V_CHAR_ARRAY = 12
    V_U8_ARRAY = 13
    V_S8_ARRAY = 14
    V_U16_ARRAY = 15
    V_S16_ARRAY = 16
    V_U32_ARRAY = 17
    V_S32_ARRAY = 18
    V_U64_ARRAY = 19
    V_S64_ARRAY = 20
    V_F32_ARRAY = 21
    V_D64_ARRAY = 22
    V_LIST = 23
    V_LIST_ENTRY = 24
    V_RECORD_TYPE = 25
    V_RECORD_INST = 26
    V_RECORD_ARRAY = 27
    V_TIMESTAMP = 28


# The enums' members as module constants, with their LDMS_ aliases, as the real API has.
for _cls in (ldms_xprt_event_type, ldms_dir_type, ldms_lookup_flags, ldms_lookup_status, ldms_value_type):
    for _m in _cls.__members__.values():
        globals()[_m.name] = _m
        globals()["LDMS_" + ("XPRT_" if _cls is ldms_xprt_event_type else "") + _m.name] = _m
V_FIRST = LDMS_V_FIRST = ldms_value_type.V_CHAR  # noqa: F821
V_LAST = LDMS_V_LAST = ldms_value_type.V_TIMESTAMP  # noqa: F821
del _cls, _m

DIR_F_NOTIFY = LDMS_DIR_F_NOTIFY = 1
UPD_F_PUSH = LDMS_UPD_F_PUSH = 0x10000000
UPD_F_PUSH_LAST = LDMS_UPD_F_PUSH_LAST = 0x20000000
UPD_F_MORE = LDMS_UPD_F_MORE = 0x40000000
UPD_ERROR_MASK = LDMS_UPD_ERROR_MASK = 0x00FFFFFF
LDMS_XPRT_PUSH_F_CHANGE = 1
LDMS_MDESC_F_DATA = 1
LDMS_MDESC_F_META = 2
LDMS_MDESC_F_RECORD = 4


def LDMS_UPD_ERROR(flags: int) -> int:
    """The errno carried in update-callback ``flags`` (0: no error)."""
    return flags & UPD_ERROR_MASK


Xprt = _pvloom.Xprt
Set = _pvloom.Set
XprtEvent = _pvloom.XprtEvent
SetDeleteEventData = _pvloom.SetDeleteEventData
DirSet = _pvloom.DirSet
DirData = _pvloom.DirData
update_all = _pvloom.ldms_update_all
set_error_hook = _pvloom.ldms_set_error_hook
callback_errors = _pvloom.ldms_callback_errors


def init(max_sz: int = 0, io_threads: int = 2) -> None:
    """Start LDMS. ``max_sz`` (the C library's memory pool) is accepted and ignored:
    pvloom allocates as it goes. ``io_threads`` counts only on the first call (or
    before any other LDMS call)."""
    _pvloom.ldms_init(max_sz, io_threads)


MetricTemplate = _namedtuple("MetricTemplate", ["name", "type", "count", "flags", "units", "rec_def"])
MetricTemplate.__doc__ = "A metric's definition: (name, type, count, flags, units, rec_def)."
MetricTemplate.is_meta = lambda self: bool(self.flags & LDMS_MDESC_F_META)

_T = ldms_value_type
LDMS_VALUE_TYPE_TBL = {
    str: _T.V_CHAR_ARRAY, int: _T.V_S64, float: _T.V_F32,
    "char": _T.V_CHAR, "timestamp": _T.V_TIMESTAMP, "ts": _T.V_TIMESTAMP,
    "list": _T.V_LIST, "list<>": _T.V_LIST, "record[]": _T.V_RECORD_ARRAY, "record_array": _T.V_RECORD_ARRAY,
    "str": _T.V_CHAR_ARRAY, "char[]": _T.V_CHAR_ARRAY, "char_array": _T.V_CHAR_ARRAY,
}  # fmt: skip
for _names, _scalar in (
    (("s8", "int8"), _T.V_S8),
    (("u8", "uint8"), _T.V_U8),
    (("s16", "int16"), _T.V_S16),
    (("u16", "uint16"), _T.V_U16),
    (("s32", "int32"), _T.V_S32),
    (("u32", "uint32"), _T.V_U32),
    (("s64", "int64"), _T.V_S64),
    (("u64", "uint64"), _T.V_U64),
    (("float", "f", "f32"), _T.V_F32),
    (("double", "d", "d64"), _T.V_D64),
):
    for _n in _names:
        LDMS_VALUE_TYPE_TBL[_n] = _scalar
        LDMS_VALUE_TYPE_TBL[_n + "[]"] = _T(_scalar + 11)
        LDMS_VALUE_TYPE_TBL[_n + "_array"] = _T(_scalar + 11)
del _names, _scalar, _n

_SIZES = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 4, 8: 8, 9: 8, 10: 4, 11: 8, 28: 8}


def _value_type(t) -> ldms_value_type:
    if isinstance(t, str):
        t = t.lower()
    try:
        return _T(LDMS_VALUE_TYPE_TBL[t] if not isinstance(t, int) else t)
    except (KeyError, ValueError):
        raise TypeError(f"unknown metric type {t!r}") from None


def _is_array(t: int) -> bool:
    return 12 <= t <= 22


class RecordDef:
    """A record definition: ``RecordDef(name, metric_list=[(name, type, count, units)])``."""

    def __init__(self, name, metric_list=()):
        self._name = name
        self._members = []
        self.add_metrics(list(metric_list))

    @property
    def name(self):
        """The record type's name."""
        return self._name

    def add_metric(self, name, metric_type, count=1, units=None):
        """Add a member (primitive types only)."""
        t = _value_type(metric_type)
        if t not in _SIZES and not _is_array(t):
            raise TypeError(f"a record member cannot be {t!r}")
        self._members.append(MetricTemplate(name, t, count, LDMS_MDESC_F_DATA | LDMS_MDESC_F_RECORD, units, None))

    def add_metrics(self, metrics):
        """Add members given as tuples or dicts."""
        for m in metrics:
            if isinstance(m, dict):
                self.add_metric(m["name"], m.get("type", m.get("metric_type")), m.get("count", 1), m.get("units"))
            else:
                self.add_metric(*m)

    def heap_size(self):
        """Heap bytes one instance of this record takes in a list (an upper estimate)."""
        total = 32
        for m in self._members:
            size = _SIZES.get(int(m.type) - 11 if _is_array(m.type) else int(m.type), 1)
            total += -(-(size * (m.count if _is_array(m.type) else 1)) // 8) * 8
        return -(-total // 64) * 64

    def __iter__(self):
        return iter(self._members)

    def __len__(self):
        return len(self._members)

    def __getitem__(self, key):
        if isinstance(key, str):
            return next(m for m in self._members if m.name == key)
        return self._members[key]


class Schema:
    """A set schema: ``Schema(name, array_card=1, metric_list=[...])``; metrics as
    ``(name, type[, count[, meta[, units]]])`` tuples, dicts (``name``, ``type``,
    ``count``, ``meta``, ``units``, ``rec_def``), or ``RecordDef``s. Types as the real
    API names them: ``"u64"``, ``"d64[]"``, ``ldms.V_U64``, ``int``, ``str``, ..."""

    def __init__(self, name, array_card=1, metric_list=()):
        self.name = name
        self.array_card = array_card
        self.metric_list = []
        self._rec = {}
        if metric_list:
            self.add_metrics(list(metric_list))

    def set_array_card(self, array_card):
        """Accepted for compatibility (pvloom sets have one data section)."""
        self.array_card = array_card

    def add_record(self, rec_def):
        """Add a record definition (a RECORD_TYPE metric)."""
        if rec_def.name in self._rec:
            raise KeyError(f"'{rec_def.name}' record definition already existed")
        self._rec[rec_def.name] = len(self.metric_list)
        flags = LDMS_MDESC_F_META | LDMS_MDESC_F_RECORD
        self.metric_list.append(MetricTemplate(rec_def.name, _T.V_RECORD_TYPE, 1, flags, None, rec_def))

    def add_metric(self, name, metric_type, count=1, meta=False, units=None, rec_def=None):
        """Add a metric (for a LIST, ``count`` is the heap size in bytes; a
        RECORD_ARRAY takes ``rec_def``)."""
        if isinstance(metric_type, RecordDef):
            return self.add_record(metric_type)
        t = _value_type(metric_type)
        if t == _T.V_RECORD_ARRAY:
            if not isinstance(rec_def, RecordDef):
                raise TypeError("Expecting RecordRef `rec_def`")
            if rec_def.name not in self._rec:
                self.add_record(rec_def)
        flags = LDMS_MDESC_F_META if meta else LDMS_MDESC_F_DATA
        self.metric_list.append(MetricTemplate(name, t, count, flags, units, rec_def))

    def add_metrics(self, mlist):
        """Add metrics given as tuples, dicts or ``RecordDef``s."""
        for o in mlist:
            if isinstance(o, RecordDef):
                self.add_record(o)
            elif isinstance(o, dict):
                self.add_metric(
                    name=o["name"],
                    metric_type=o.get("type", o.get("metric_type")),
                    count=o.get("count", 1),
                    meta=o.get("meta", False),
                    units=o.get("units"),
                    rec_def=o.get("rec_def"),
                )
            else:
                self.add_metric(*o)

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return self.metric_list[key]
        if isinstance(key, str):
            return next(m for m in self.metric_list if m.name == key)
        return [self[k] for k in key]

    def get_metric_info(self, key):
        """The ``MetricTemplate`` of metric ``key``."""
        return self[key]

    def __len__(self):
        return len(self.metric_list)

    def _specs(self):
        """(pvloom) The metric list for the native ``Set``."""
        out = []
        for m in self.metric_list:
            members = []
            rec_type = None
            if m.type == _T.V_RECORD_TYPE:
                members = [(x.name, int(x.type), int(x.count), x.units) for x in m.rec_def]
            if m.type == _T.V_RECORD_ARRAY:
                rec_type = self._rec[m.rec_def.name]
            count = m.count if (_is_array(m.type) or m.type in (_T.V_LIST, _T.V_RECORD_ARRAY)) else 1
            meta = bool(m.flags & LDMS_MDESC_F_META) and m.type != _T.V_RECORD_TYPE
            out.append((m.name, int(m.type), int(count), meta, m.units, members, rec_type))
        return out


# --- the message service -------------------------------------------------------------


class MsgType(_enum.IntEnum):
    """Message types (``MsgData.type``; ``enum ldms_msg_type_e``)."""

    LDMS_MSG_STRING = 0
    LDMS_MSG_JSON = 1
    LDMS_MSG_AVRO_SER = 2


LDMS_MSG_STRING = MsgType.LDMS_MSG_STRING
LDMS_MSG_JSON = MsgType.LDMS_MSG_JSON
LDMS_MSG_AVRO_SER = MsgType.LDMS_MSG_AVRO_SER

MsgData = _pvloom.MsgData
MsgStatusEvent = _pvloom.MsgStatusEvent


def _mtype(msg_type):
    return None if msg_type is None else int(msg_type)


def msg_publish(name, data, msg_type=None, perm=0o444, uid=None, gid=None):
    """Publish to this process's bus (its ``MsgClient``s, and peers subscribed through a
    ``listen(msg=True)``): ``str`` as STRING, ``dict``/``list`` as JSON, ``bytes`` as
    STRING; an explicit ``msg_type`` wins. Returns how many subscribers got it."""
    return _pvloom.ldms_msg_publish(name, data, _mtype(msg_type), perm, uid, gid)


def msg_stats(reset=False):
    """This process's bus counters as a dict: ``channels`` (per name, with per-source
    counts) and ``clients`` (per subscription)."""
    return _json.loads(_pvloom.ldms_msg_stats(reset))


class MsgClient:
    """A subscriber on this process's bus: ``MsgClient(match, is_regex, cb=None,
    cb_arg=None)``. With ``cb``, ``cb(client, MsgData, cb_arg)`` runs on an I/O thread
    per message (an exception in it is reported and counted; later messages still come).
    Without it, ``get_data()`` returns the next ``MsgData`` or ``None``. Messages that
    ``Xprt.msg_subscribe`` asked a peer to forward arrive here too."""

    def __init__(self, match, is_regex, cb=None, cb_arg=None):
        self.match = match
        self.is_regex = int(bool(is_regex))
        self._cb = cb
        self._cb_arg = cb_arg
        func = None
        if cb is not None:
            ref = _weakref.ref(self)

            def func(m):
                me = ref()
                if me is not None:
                    cb(me, m, cb_arg)

        self._c = _pvloom._MsgClient(match, bool(is_regex), func)

    def get_data(self, timeout=0):
        """The next queued message (waiting up to ``timeout`` seconds), or ``None``."""
        return self._c.get_data(timeout)

    def stats(self):
        """This client's counters (a dict), or ``None`` once closed."""
        return self._c.stats()

    def close(self):
        """Unsubscribe; nothing is delivered after it returns."""
        self._c.close()

    def __del__(self):
        c = getattr(self, "_c", None)
        if c is not None:
            c.close()

    def __repr__(self):
        return f"<pvloom.ldms.MsgClient match={self.match!r} is_regex={self.is_regex}>"


_CHAN_MODES = {"subscribe": 1, "sub": 1, "publish": 2, "pub": 2, "bidir": 3, "both": 3}


class MessageChannel:
    """A resilient message endpoint: ``MessageChannel(name, mode, xprt, rem_host,
    rem_port, lcl_host, lcl_port, auth="none", auth_opts=None, reconnect=6)``.

    ``mode`` "subscribe" listens on ``lcl_host:lcl_port`` (a bus of its own; peers
    publish to it; ``subscribe(regex, cb, arg)`` delivers to ``cb(MsgData, arg)``),
    "publish" keeps a connection to ``rem_host:rem_port`` (reconnecting every
    ``reconnect`` seconds) and sends what ``publish`` queued, "bidir" both.
    ``msg_cb_fn`` (with ``msg_cb_arg``) subscribes to every name at once.
    pvloom: ``fifo_bytes`` bounds the publish queue (1 MiB)."""

    def __init__(self, name, mode, xprt="sock", rem_host=None, rem_port=None, lcl_host=None, lcl_port=None,
                 auth="none", auth_opts=None, reconnect=6, msg_cb_fn=None, msg_cb_arg=None, fifo_bytes=1 << 20):  # fmt: skip
        if xprt != "sock":
            raise ConnectionError(95, f"transport {xprt!r} (pvloom offers \"sock\")")
        if auth not in (None, "none"):
            raise ConnectionError(95, f"auth {auth!r} (pvloom offers \"none\")")
        m = _CHAN_MODES.get(mode.lower(), None) if isinstance(mode, str) else int(mode)
        if m not in (1, 2, 3):
            raise ValueError(f"bad MessageChannel mode {mode!r}")
        self.name = name
        self.mode = m
        remote = (rem_host or "localhost", int(rem_port)) if m & 2 else None
        local = (lcl_host or "0.0.0.0", int(lcl_port or 0)) if m & 1 else None
        self._ch = _pvloom._MessageChannel(name, m, remote, local, float(reconnect), int(fifo_bytes))
        if msg_cb_fn is not None:
            self.subscribe(".*", msg_cb_fn, msg_cb_arg)

    def publish(self, tag, uid=None, gid=None, perm=0o444, msg_type=None, msg=None, msg_len=None, timeout=0):
        """Queue ``msg`` under ``tag`` (``msg_len`` may cut a ``str``/``bytes`` short);
        raises ``ConnectionError`` (``EAGAIN``) when the queue is full, at once or after
        ``timeout`` seconds."""
        if msg is None:
            raise TypeError("publish() needs msg")
        if msg_len is not None and isinstance(msg, (str, bytes, bytearray)) and msg_len < len(msg):
            msg = msg[:msg_len]
        self._ch.publish(tag, msg, _mtype(msg_type), uid, gid, perm, float(timeout))
        return 0

    def subscribe(self, regex, cb, arg=None):
        """``cb(MsgData, arg)`` for each message published here whose name matches
        ``regex``; returns 0."""

        def func(m):
            cb(m, arg)

        self._ch.subscribe(regex, func)
        return 0

    def get_stats(self):
        """The counters: state (0 DISCONNECTED, 1 CONNECTING, 2 CONNECTED), mode,
        pub_conn_attempt, pub_conn_success, pub_msg_sent, pub_msg_acked, pub_byte_cnt,
        sub_msg_cnt, sub_byte_cnt (and pvloom's pub_queued, pub_queued_bytes)."""
        return self._ch.get_stats()

    def get_addr(self):
        """(pvloom) ``(host, port)`` it listens on, or ``None``."""
        return self._ch.local_addr()

    def close(self, timeout=10.0):
        """Wait (up to ``timeout`` seconds) until what was sent is acknowledged, then
        end. Returns True when everything was."""
        return self._ch.close(float(timeout))
