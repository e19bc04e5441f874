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
    "MsgSubscribeError",
    "MsgType",
    "LdmsAddr",
    "RecordDef",
    "Schema",
    "Set",
    "SetDeleteEventData",
    "Xprt",
    "XprtEvent",
    "callback_errors",
    "init",
    "msg_client_stats_get",
    "msg_publish",
    "msg_stats",
    "msg_stats_get",
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


class ldms_msg_type_e(_enum.IntEnum):
    """Message types (``MsgData.type``)."""

    LDMS_MSG_STRING = 0
    LDMS_MSG_JSON = 1
    LDMS_MSG_AVRO_SER = 2


MsgType = ldms_msg_type_e
LDMS_MSG_STRING = ldms_msg_type_e.LDMS_MSG_STRING
LDMS_MSG_JSON = ldms_msg_type_e.LDMS_MSG_JSON
LDMS_MSG_AVRO_SER = ldms_msg_type_e.LDMS_MSG_AVRO_SER

LDMS_MSG_CHAN_MODE_SUBSCRIBE = 1
LDMS_MSG_CHAN_MODE_PUBLISH = 2
LDMS_MSG_CHAN_MODE_BIDIR = 3

MsgData = _pvloom.MsgData
MsgStatusEvent = _pvloom.MsgStatusEvent


class MsgSubscribeError(Exception):
    """A remote (un)subscription failed: ``rc`` (the errno), ``text``."""

    def __init__(self, rc, text):
        super().__init__(rc, text)
        self.rc = rc
        self.text = text

    def __str__(self):
        return f"MsgSubscribeError: {self.rc}, {self.text}"

    def __repr__(self):
        return f"MsgSubscribeError( {self.rc}, '{self.text}' )"


_AF_INET, _AF_INET6 = 2, 10


class LdmsAddr:
    """An address (``struct ldms_addr``): ``family``, ``port``, ``addr`` (bytes)."""

    def __init__(self, family=0, port=0, addr=b"\x00" * 16):
        self.family = family
        self.port = port
        self.addr = addr

    def __repr__(self):
        return f"LdmsAddr( {self.family}, {self.port}, {self.addr} )"

    def __str__(self):
        import socket

        if self.family in (_AF_INET, _AF_INET6):
            addr = socket.inet_ntop(self.family, self.addr)
        else:
            addr = "UNSUPPORTED"
        return f"[{addr}]:{self.port}"

    def as_tuple(self):
        return (self.family, self.port, self.addr)

    def __iter__(self):
        return iter(self.as_tuple())

    def __eq__(self, other):
        return all(a == b for a, b in zip(self, other))

    def __hash__(self):
        return hash(self.as_tuple())


def _addr_of(source):
    """An ``LdmsAddr`` from pvloom's source names ("local", "1.2.3.4:5", "[::1]:5")."""
    import socket

    if source in ("local", "remote"):
        return LdmsAddr()
    host, _, port = source.rpartition(":")
    try:
        if host.startswith("["):
            return LdmsAddr(_AF_INET6, int(port), socket.inet_pton(socket.AF_INET6, host[1:-1]))
        return LdmsAddr(_AF_INET, int(port), socket.inet_pton(socket.AF_INET, host))
    except (OSError, ValueError):
        return LdmsAddr()


TimeSpec = _namedtuple("TimeSpec", ["tv_sec", "tv_nsec"])
MsgCounters = _namedtuple("MsgCounters", ["first_ts", "last_ts", "count", "bytes"])
MsgSrcStats = _namedtuple("MsgSrcStats", ["src", "rx"])
MsgChannelClientStats = _namedtuple(
    "MsgChannelClientStats", ["msg_tag", "client_match", "client_desc", "is_regex", "tx", "drops"]
)
MsgChannelStats = _namedtuple("MsgChannelStats", ["rx", "sources", "clients", "msg_tag"])
MsgClientStats = _namedtuple("MsgClientStats", ["tx", "drops", "tags", "dest", "is_regex", "match", "desc"])


def _ts(t):
    sec = int(t)
    return TimeSpec(sec, int(round((t - sec) * 1e9)))


def _counters(c):
    return MsgCounters(_ts(c["first_ts"]), _ts(c["last_ts"]), c["count"], c["bytes"])


_NO_COUNT = MsgCounters(TimeSpec(0, 0), TimeSpec(0, 0), 0, 0)


def _pair_stats(c, p, desc):
    """One (channel, client) pair's counters, as the real API's ``MsgChannelClientStats``."""
    return MsgChannelClientStats(
        p["channel"], c["pattern"], desc, int(c["is_regex"]), _counters(p["tx"]), _counters(p["drops"])
    )


def _client_stats(c, desc=""):
    # "drops" also counts what a full local queue refused, which has no bytes or times.
    dropped = c.get("dropped")
    drops = (_counters(dropped) if dropped else _NO_COUNT)._replace(count=c["drops"])
    tags = [_pair_stats(c, p, desc) for p in c.get("channels", [])]
    return MsgClientStats(_counters(c["tx"]), drops, tags, LdmsAddr(), int(c["is_regex"]), c["pattern"], desc)


def _desc(c):
    return "remote" if c["remote"] else ""


def msg_publish(name, data, msg_type=None, perm=0o444, uid=None, gid=None, sr_client=None, schema_def=None):
    """Publish to this process's bus (its ``MsgClient``s, and peers subscribed through a
    ``listen(msg=True)``): ``str``/``bytes`` as STRING, ``dict`` as JSON
    (``json.dumps``; pvloom also takes a ``list``); an explicit ``msg_type`` wins.
    ``LDMS_MSG_AVRO_SER`` needs ``sr_client`` (a schema registry client) and
    ``schema_def``, as in the real API (see :func:`_avro_encode`).
    Raises ``RuntimeError`` ("ldms_msg_publish() failed, rc: N"). pvloom: returns how
    many subscribers got it."""
    return _pvloom.ldms_msg_publish(name, data, _mtype(msg_type), perm, uid, gid, sr_client, schema_def)


# AVRO_SER, as the real API frames it: a zero byte, the schema's registry id (u32,
# big-endian), then the Avro binary encoding. The registry is duck-typed like the real
# API's use of confluent_kafka's SchemaRegistryClient: ``register_schema(subject,
# schema) -> id`` when publishing, ``get_schema(id).schema_str`` when receiving.
_AVRO_FRAME = ">bI"


class _RegistrySchema:
    """What ``register_schema`` is given when confluent_kafka is not installed: the
    attributes of its ``Schema`` that a registry reads."""

    def __init__(self, schema_str):
        self.schema_str = schema_str
        self.schema_type = "AVRO"
        self.references = []


def _avro_schema(schema_def):
    """(Avro schema, registry schema) from what the real API accepts: an Avro schema,
    a registry ``Schema`` (anything with ``schema_str``), a dict, or JSON text."""
    import avro.schema

    registered = None
    if isinstance(schema_def, avro.schema.Schema):
        parsed = schema_def
    elif hasattr(schema_def, "schema_str"):
        parsed, registered = avro.schema.parse(schema_def.schema_str), schema_def
    elif isinstance(schema_def, dict):
        parsed = avro.schema.make_avsc_object(schema_def)
    elif isinstance(schema_def, str):
        parsed = avro.schema.parse(schema_def)
    else:
        raise ValueError("Unsupported `sch_def` type")
    if registered is None:
        text = _json.dumps(parsed.to_json())
        try:
            from confluent_kafka.schema_registry import Schema
        except ImportError:
            registered = _RegistrySchema(text)
        else:
            registered = Schema(text, "AVRO")
    return parsed, registered


def _avro_encode(sr_client, schema_def, obj):
    """``obj`` as AVRO_SER bytes: ``schema_def`` registered through ``sr_client``."""
    import io
    import struct

    import avro.io

    if not sr_client:
        raise ValueError("LDMS_MSG_AVRO_SER requires `sr_client`")
    if not schema_def:
        raise ValueError("LDMS_MSG_AVRO_SER requires `schema_def`")
    parsed, registered = _avro_schema(schema_def)
    schema_id = sr_client.register_schema(parsed.name, registered)
    out = io.BytesIO()
    out.write(struct.pack(_AVRO_FRAME, 0, schema_id))
    avro.io.DatumWriter(parsed).write(obj, avro.io.BinaryEncoder(out))
    return out.getvalue()


def _avro_decode(sr_client, raw):
    """AVRO_SER bytes back to the object, the schema asked of ``sr_client`` by id."""
    import io
    import struct

    import avro.io
    import avro.schema

    if len(raw) < struct.calcsize(_AVRO_FRAME):
        raise ValueError(f"AVRO_SER data of {len(raw)} bytes has no schema frame")
    magic, schema_id = struct.unpack_from(_AVRO_FRAME, raw)
    if magic != 0:
        raise ValueError(f"AVRO_SER frame starts with {magic}, not 0")
    parsed = avro.schema.parse(sr_client.get_schema(schema_id).schema_str)
    return avro.io.DatumReader(parsed).read(avro.io.BinaryDecoder(io.BytesIO(raw[struct.calcsize(_AVRO_FRAME):])))


def _mtype(msg_type):
    return None if msg_type is None else int(msg_type)


def msg_stats(reset=False):
    """(pvloom) This process's bus counters as a dict: ``channels`` (per name, with
    per-source counts) and ``clients`` (per subscription)."""
    return _json.loads(_pvloom.ldms_msg_stats(reset))


def msg_stats_get(match=None, is_regex=0, is_reset=0):
    """Per-name stats of this process's bus (``MsgChannelStats`` list), only the names
    equal to (or matching, ``is_regex``) ``match`` when given; each channel's
    ``clients`` are its (channel, client) pairs."""
    import re

    stats = msg_stats(bool(is_reset))
    out = []
    for ch in stats["channels"]:
        name = ch["msg_tag"]
        if match is not None and not (re.search(match, name) if is_regex else name == match):
            continue
        sources = [MsgSrcStats(_addr_of(k), _counters(v)) for k, v in ch["sources"].items()]
        pairs = ((c, p) for c in stats["clients"] for p in c["channels"])
        clients = [_pair_stats(c, p, _desc(c)) for c, p in pairs if p["channel"] == name]
        out.append(MsgChannelStats(_counters(ch["rx"]), sources, clients, name))
    return out


def msg_client_stats_get(is_reset=0):
    """Per-subscription stats of this process's bus (``MsgClientStats`` list)."""
    return [_client_stats(c, _desc(c)) for c in msg_stats(bool(is_reset))["clients"]]


class MsgClient:
    """A subscriber on this process's bus: ``MsgClient(match, is_regex, cb=None,
    cb_arg=None, desc=None)``. With ``cb``, ``cb(client, MsgData, cb_arg)`` runs on an
    I/O thread per message (an exception in it is reported and counted; later messages
    still come). Without it, ``get_data()`` returns the next ``MsgData`` or ``None``.
    Messages that ``Xprt.msg_subscribe`` asked a peer to forward arrive here too. As
    LDMS's, a client lives (and receives) until ``close()``, referenced or not. With
    ``sr_client`` (a schema registry client), AVRO_SER messages' ``data`` is the decoded
    object; without it, their bytes."""

    _live = set()

    def __init__(self, match, is_regex, cb=None, cb_arg=None, desc=None, sr_client=None):
        self.match = match
        self.is_regex = int(bool(is_regex))
        self.desc = desc or ""
        self.sr_client = sr_client
        self._c = _pvloom._MsgClient(match, bool(is_regex), cb, 65536, self if cb is not None else None, cb_arg,
                                     sr_client)  # fmt: skip
        MsgClient._live.add(self)

    def get_data(self, timeout=0):
        """The next queued message, or ``None`` (pvloom: waiting up to ``timeout``
        seconds, the GIL released)."""
        return self._c.get_data(timeout)

    def stats(self, is_reset=0):
        """This client's counters (``MsgClientStats``); ``RuntimeError`` once closed."""
        s = self._c.stats()
        if s is None:
            raise RuntimeError("client has been closed")
        return _client_stats(
            {"tx": {"count": s["tx_count"], "bytes": s["tx_bytes"], "first_ts": s["first_ts"],
                    "last_ts": s["last_ts"]}, "drops": s["drops"], "dropped": s["dropped"],
             "is_regex": s["is_regex"], "pattern": s["match"], "channels": s["channels"]},
            self.desc,
        )  # fmt: skip

    def close(self):
        """Unsubscribe; no callback starts after it returns (one running finishes)."""
        self._c.close()
        MsgClient._live.discard(self)

    def __repr__(self):
        return f"<pvloom.ldms.MsgClient match={self.match!r} is_regex={self.is_regex}>"


_CHAN_MODES = {"subscribe": 1, "publish": 2, "bidir": 3}
_CHAN_STATES = ["DISCONNECTED", "CONNECTING", "CONNECTED", "CLOSED"]


class MessageChannel:
    """A resilient message endpoint: ``MessageChannel(name, mode, xprt, rem_host,
    rem_port, lcl_host, lcl_port, auth="none", auth_opts=None, reconnect=6)``.

    ``mode`` "subscribe" listens on ``lcl_host:lcl_port`` (a bus of its own; peers
    publish to it; ``subscribe(regex, cb, arg)`` delivers to ``cb(MsgData, arg)``),
    "publish" keeps a connection to ``rem_host:rem_port`` (reconnecting every
    ``reconnect`` seconds) and sends what ``publish`` queued, "bidir" both.
    pvloom's additions: ``msg_cb_fn``/``msg_cb_arg`` (subscribe to every name at once),
    ``fifo_bytes`` (the publish queue's bound, 1 MiB as ``set_q_limit``), ``publish(...,
    timeout=)``, ``get_addr()``, ``close(timeout=)``. An exception in a callback is
    reported and counted (the real one prints it); the I/O thread goes on."""

    def __init__(self, name, mode, xprt="sock", rem_host=None, rem_port=None, lcl_host=None, lcl_port=None,
                 auth="none", auth_opts=None, reconnect=6, msg_cb_fn=None, msg_cb_arg=None, fifo_bytes=1 << 20):  # fmt: skip
        if auth_opts is not None and not isinstance(auth_opts, dict):
            raise TypeError("auth_opts must be a dictionary")
        if xprt != "sock":
            raise ConnectionError(95, f"transport {xprt!r} (pvloom offers \"sock\")")
        if auth not in (None, "none"):
            raise ConnectionError(95, f"auth {auth!r} (pvloom offers \"none\")")
        m = _CHAN_MODES.get(mode) if isinstance(mode, str) else mode
        if m not in (1, 2, 3):
            raise ValueError('The channel mode must be one of "bidir", "publish", or "subscribe"')
        self.name = name
        self.mode = m
        self.xprt, self.auth, self.auth_opts = xprt, auth, auth_opts
        self.rem_host, self.rem_port, self.lcl_host, self.lcl_port = rem_host, rem_port, lcl_host, lcl_port
        self.msg_cb_fn, self.msg_cb_arg = msg_cb_fn, msg_cb_arg
        remote = (rem_host or "localhost", int(rem_port)) if m & 2 else None
        local = (lcl_host or "localhost", int(lcl_port or 0)) if m & 1 else None
        func = None
        if msg_cb_fn is not None and m & 1:
            # Subscribed before it listens, so a publisher that connects at once loses nothing.
            def func(msg, _fn=msg_cb_fn, _arg=msg_cb_arg):
                _fn(msg, _arg)

        self._ch = _pvloom._MessageChannel(name, m, remote, local, float(reconnect), int(fifo_bytes), func)

    def publish(self, chan_name, uid, gid, perm, msg_type, msg, msg_len=None, timeout=0):
        """Queue ``msg`` under ``chan_name`` (``msg_len`` may cut a ``str``/``bytes``
        short). Raises ``RuntimeError`` ("MessageChannel.publish() error, errno: 105",
        ``ENOBUFS``) when the queue is full: at once, or (pvloom) after ``timeout``
        seconds. Never blocks otherwise."""
        if msg_len is not None and isinstance(msg, (str, bytes, bytearray)) and msg_len < len(msg):
            msg = msg[:msg_len]
        self._ch.publish(chan_name, msg, _mtype(msg_type), uid, gid, perm, float(timeout))

    def subscribe(self, regex, msg_cb_fn, msg_cb_arg=None):
        """``msg_cb_fn(MsgData, msg_cb_arg)`` for each message published here whose name
        matches ``regex``; returns 0."""
        self.msg_cb_fn, self.msg_cb_arg = msg_cb_fn, msg_cb_arg

        def func(m):
            msg_cb_fn(m, msg_cb_arg)

        self._ch.subscribe(regex, func)
        return 0

    def set_q_limit(self, max_bytes):
        """Bound the publish queue to ``max_bytes``."""
        self._ch.set_q_limit(int(max_bytes))

    def get_mode_str(self, mode):
        return {1: "subscribe", 2: "publish", 3: "bidir"}.get(mode, "None")

    def get_state_str(self, state):
        return _CHAN_STATES[state]

    def get_stats(self):
        """The counters (``struct ldms_msg_chan_stats_s`` as a dict): mode,
        max_q_depth, cur_q_depth, pub_msg_sent, pub_msg_acked, pub_byte_cnt, pub_blocked,
        pub_conn_attempt, pub_conn_success, pub_last_conn, sub_byte_cnt, sub_msg_cnt,
        closing, cancel, state (0 DISCONNECTED, 1 CONNECTING, 2 CONNECTED, 3 CLOSED);
        pvloom's pub_queued (messages in the queue)."""
        return self._ch.get_stats()

    def get_addr(self):
        """(pvloom) ``(host, port)`` it listens on, or ``None``."""
        return self._ch.local_addr()

    def close(self, cancel=False, timeout=10.0):
        """End the channel; unless ``cancel``, first wait (pvloom: at most ``timeout``
        seconds) until what was sent is acknowledged. pvloom: returns True when
        everything was."""
        return self._ch.close(0.0 if cancel else float(timeout))
