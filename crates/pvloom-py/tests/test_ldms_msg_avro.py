"""LDMS_MSG_AVRO_SER through pvloom.ldms, as the real API does it: ``msg_publish(...,
sr_client=, schema_def=)`` registers the schema and sends the Confluent frame (a zero
byte, the schema id big-endian) and the Avro encoding, made by the Apache ``avro``
package; ``MsgClient(..., sr_client=)`` decodes it by the id. The schema registry is a
service (Confluent's), reached through a client object with ``register_schema`` and
``get_schema``: here an in-memory one with those two methods.
"""

from __future__ import annotations

import io
import struct
import threading
import time

import avro.io
import avro.schema
import pytest

from pvloom import ldms

pytestmark = pytest.mark.timeout(30)

SCHEMA = {
    "type": "record",
    "name": "job_event",
    "fields": [
        {"name": "job_id", "type": "long"},
        {"name": "host", "type": "string"},
        {"name": "load", "type": "double"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}
EVENT = {"job_id": 4242, "host": "nid00017", "load": 0.75, "tags": ["a", "b"]}


class Registry:
    """The two calls of confluent_kafka's SchemaRegistryClient that LDMS makes."""

    def __init__(self):
        self.by_id = {}
        self.subjects = []

    def register_schema(self, subject, schema):
        self.subjects.append(subject)
        for i, s in self.by_id.items():
            if s.schema_str == schema.schema_str:
                return i
        i = 100 + len(self.by_id)
        self.by_id[i] = schema
        return i

    def get_schema(self, schema_id):
        return self.by_id[schema_id]


def wait_until(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


@pytest.fixture
def daemon():
    lx = ldms.Xprt("sock")
    lx.listen("127.0.0.1", 0, msg="private")
    port = lx.get_addr()[0][1]
    sub = ldms.Xprt("sock")
    sub.connect("127.0.0.1", port)
    pub = ldms.Xprt("sock")
    pub.connect("127.0.0.1", port)
    yield sub, pub
    pub.close()
    sub.close()
    lx.close()


def test_the_frame_is_confluents_and_the_payload_is_plain_avro():
    reg = Registry()
    raw = ldms._avro_encode(reg, SCHEMA, EVENT)
    magic, schema_id = struct.unpack(">bI", raw[:5])
    assert (magic, schema_id, reg.subjects) == (0, 100, ["job_event"])
    # Decoded by the avro package alone, with the schema the registry holds.
    parsed = avro.schema.parse(reg.get_schema(schema_id).schema_str)
    assert avro.io.DatumReader(parsed).read(avro.io.BinaryDecoder(io.BytesIO(raw[5:]))) == EVENT
    assert ldms._avro_decode(reg, raw) == EVENT
    # Every form of schema_def the real API takes gives the same bytes.
    for form in (avro.schema.make_avsc_object(SCHEMA), reg.get_schema(100), __import__("json").dumps(SCHEMA)):
        assert ldms._avro_encode(reg, form, EVENT) == raw
    with pytest.raises(ValueError, match="Unsupported"):
        ldms._avro_encode(reg, 17, EVENT)
    with pytest.raises(ValueError, match="no schema frame"):
        ldms._avro_decode(reg, b"\0\0")
    with pytest.raises(ValueError, match="not 0"):
        ldms._avro_decode(reg, b"\x01" + raw[1:])


def test_avro_through_a_daemon_decoded_by_the_subscriber(daemon):
    sub, pub = daemon
    reg = Registry()
    got, lock = [], threading.Lock()

    def cb(client, m, arg):
        with lock:
            got.append((client, m, arg))

    decoding = ldms.MsgClient("jobs", 0, cb, "arg", sr_client=reg)
    raw_client = ldms.MsgClient("jobs", 0)  # no registry: the bytes as they came
    sub.msg_subscribe("jobs", 0)
    pub.msg_publish("jobs", EVENT, ldms.LDMS_MSG_AVRO_SER, sr_client=reg, schema_def=SCHEMA)
    second = dict(EVENT, job_id=7, tags=[])
    pub.msg_publish("jobs", second, ldms.LDMS_MSG_AVRO_SER, sr_client=reg, schema_def=SCHEMA)
    assert wait_until(lambda: len(got) == 2)
    (c0, m0, a0), (_, m1, _) = got
    assert c0 is decoding and a0 == "arg"
    assert m0.type == ldms.LDMS_MSG_AVRO_SER and m0.is_json == 0
    assert (m0.data, m1.data) == (EVENT, second)
    assert m0.raw_data[:5] == struct.pack(">bI", 0, 100)
    q = [raw_client.get_data(timeout=5) for _ in range(2)]
    assert [m.data for m in q] == [m0.raw_data, m1.raw_data]
    assert len(reg.by_id) == 1  # registered once, found again the second time
    decoding.close()
    raw_client.close()


def test_avro_needs_a_registry_and_a_schema_as_in_the_real_api(daemon):
    _, pub = daemon
    with pytest.raises(ValueError, match="requires `sr_client`"):
        pub.msg_publish("jobs", EVENT, ldms.LDMS_MSG_AVRO_SER, schema_def=SCHEMA)
    with pytest.raises(ValueError, match="requires `schema_def`"):
        pub.msg_publish("jobs", EVENT, ldms.LDMS_MSG_AVRO_SER, sr_client=Registry())
    with pytest.raises(ValueError, match="requires `sr_client`"):
        ldms.msg_publish("jobs", EVENT, ldms.LDMS_MSG_AVRO_SER)
    # An object that does not fit the schema is avro's error, and nothing is sent.
    with pytest.raises(Exception, match="(?i)schema|datum"):
        pub.msg_publish("jobs", {"job_id": "x"}, ldms.LDMS_MSG_AVRO_SER, sr_client=Registry(), schema_def=SCHEMA)


def test_already_serialised_bytes_go_as_they_are_on_the_process_bus():
    reg = Registry()
    raw = ldms._avro_encode(reg, SCHEMA, EVENT)
    c = ldms.MsgClient("local-avro", 0, sr_client=reg)
    assert ldms.msg_publish("local-avro", raw, ldms.LDMS_MSG_AVRO_SER) == 1
    m = c.get_data(timeout=5)
    assert m.raw_data == raw and m.data == EVENT
    # The module-level publish serialises too.
    assert ldms.msg_publish("local-avro", EVENT, ldms.LDMS_MSG_AVRO_SER, sr_client=reg, schema_def=SCHEMA) == 1
    assert c.get_data(timeout=5).data == EVENT
    c.close()
