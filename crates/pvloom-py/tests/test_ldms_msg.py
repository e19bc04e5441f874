"""pvloom.ldms's message service (the real API's names), pvloom on both ends in this
process: the seed's Section 5 (MsgClient callbacks, msg_subscribe status callbacks,
MessageChannel receive callbacks), publishing str/JSON/bytes, exact and regex remote
subscriptions, unsubscribe, a callback that raises, MessageChannel reconnecting to a
restarted subscriber and flushing what it queued, a full queue failing promptly, stats.

A listener with ``msg="private"`` serves the message service on a bus of its own, so
what it forwards to a subscribing connection reaches this process's ``MsgClient``s
once (not also straight from the listener's bus).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from pvloom import ldms

pytestmark = pytest.mark.timeout(30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


@pytest.fixture
def daemon():
    """A listener with the message service on (its own bus), a subscribing connection
    and a publishing one (a daemon sends nobody its own messages back)."""
    lx = ldms.Xprt("sock")
    lx.listen("127.0.0.1", 0, msg="private")
    port = lx.get_addr()[0][1]
    x = ldms.Xprt("sock")
    x.connect("127.0.0.1", port)
    p = ldms.Xprt("sock")
    p.connect("127.0.0.1", port)
    yield lx, x, p
    p.close()
    x.close()
    lx.close()


class Collector:
    def __init__(self):
        self.got = []
        self.lock = threading.Lock()

    def __call__(self, client, m, arg):
        with self.lock:
            self.got.append((client, m, arg))

    def names(self):
        with self.lock:
            return [m.name for _, m, _ in self.got]


def test_a_callback_that_publishes_to_a_name_it_matches_does_not_hang():
    # Delivered on the publishing thread, the inner message waited for the client's
    # callback lock, held further up the same stack: forever.
    got = []

    def relay(client, data, arg):
        got.append(data.name)
        if data.name == "relay.in":
            ldms.msg_publish("relay.out", "x")
            got.append("published")

    c = ldms.MsgClient("^relay\\.", True, relay, None)
    try:
        publisher = threading.Thread(target=ldms.msg_publish, args=("relay.in", "hello"), daemon=True)
        publisher.start()
        publisher.join(10)
        assert not publisher.is_alive(), "msg_publish hung in its own callback"
        assert got == ["relay.in", "published", "relay.out"]
    finally:
        c.close()


def test_constants_and_types():
    assert (ldms.LDMS_MSG_STRING, ldms.LDMS_MSG_JSON, ldms.LDMS_MSG_AVRO_SER) == (0, 1, 2)
    assert ldms.MsgType(1).name == "LDMS_MSG_JSON"
    assert ldms.MsgType.LDMS_MSG_STRING is ldms.LDMS_MSG_STRING


def test_local_publish_callback_and_get_data_modes():
    col = Collector()
    c = ldms.MsgClient("loc.a", False, cb=col, cb_arg="ARG")
    q = ldms.MsgClient("^loc\\.", True)
    assert ldms.msg_publish("loc.a", "hello") == 2
    assert ldms.msg_publish("loc.b", {"k": [1, 2]}) == 1
    assert ldms.msg_publish("loc.a", b"raw-bytes", perm=0o440, uid=0, gid=0) == 2
    assert ldms.msg_publish("loc.a", '{"x": 1}', msg_type=ldms.LDMS_MSG_JSON) == 2
    assert wait_until(lambda: len(col.got) == 3)
    client, m, arg = col.got[0]
    assert client is c and arg == "ARG"
    assert (m.name, m.data, m.type.name, m.is_json) == ("loc.a", "hello", "LDMS_MSG_STRING", False)
    assert col.got[1][1].data == "raw-bytes" and col.got[1][1].perm == 0o440
    assert col.got[2][1].is_json and col.got[2][1].data == {"x": 1}
    got = [q.get_data() for _ in range(4)]
    assert [g.name for g in got] == ["loc.a", "loc.b", "loc.a", "loc.a"]
    assert got[1].is_json and got[1].data == {"k": [1, 2]} and got[1].type == ldms.LDMS_MSG_JSON
    assert q.get_data() is None
    assert q.get_data(timeout=0.05) is None
    st = c.stats()
    assert (st.tx.count, st.match, st.is_regex) == (3, "loc.a", 0)
    assert st.tx.bytes == sum(len(m.raw_data) for _, m, _ in col.got)
    (ch,) = ldms.msg_stats_get("loc.a")
    assert ch.msg_tag == "loc.a" and ch.rx.count == 3 and str(ch.sources[0].src) == "[UNSUPPORTED]:0"
    assert {c.msg_tag for c in ldms.msg_stats_get("^loc", 1)} >= {"loc.a", "loc.b"}
    assert any(cs.match == "^loc\\." and cs.is_regex for cs in ldms.msg_client_stats_get())
    # Per (channel, client) pair, as ldmsd counts them: the exact client has its one
    # channel, the regex client one pair per channel it matched.
    assert [(t.msg_tag, t.tx.count) for t in st.tags] == [("loc.a", 3)]
    (rq,) = [cs for cs in ldms.msg_client_stats_get() if cs.match == "^loc\\."]
    assert [(t.msg_tag, t.tx.count, t.is_regex) for t in rq.tags] == [("loc.a", 3, 1), ("loc.b", 1, 1)]
    assert sorted((p.client_match, p.tx.count) for p in ch.clients) == [("^loc\\.", 3), ("loc.a", 3)]
    assert "loc.b" in [c["msg_tag"] for c in ldms.msg_stats()["channels"]]
    c.close()
    q.close()
    assert ldms.msg_publish("loc.a", "after close") == 0
    with pytest.raises(RuntimeError):
        c.stats()


def test_a_client_nobody_references_lives_until_closed():
    got = []
    ldms.MsgClient("unref", False, cb=lambda c, m, a: got.append(c))
    import gc

    gc.collect()
    assert ldms.msg_publish("unref", "x") == 1
    assert wait_until(lambda: len(got) == 1)
    got[0].close()
    assert ldms.msg_publish("unref", "x") == 0


def test_publish_errors_are_runtime_errors_as_the_real_api():
    with pytest.raises(RuntimeError, match=r"ldms_msg_publish\(\) failed, rc: 22"):
        ldms.msg_publish("a\0b", "x")
    with pytest.raises(TypeError):
        ldms.msg_publish("a", 1.5)


def test_remote_exact_and_regex_subscribe_with_status(daemon):
    _, x, p = daemon
    col = Collector()
    c = ldms.MsgClient(".*", True, cb=col)
    x.msg_subscribe("foo", 0)  # blocking: returns on success
    events = []
    done = threading.Event()

    def status_cb(ev, arg):
        events.append((ev.match, ev.is_regex, ev.status, arg))
        done.set()

    x.msg_subscribe("bar.*", 1, cb=status_cb, cb_arg=7)
    assert done.wait(5)
    assert events == [("bar.*", 1, 0, 7)]
    p.msg_publish("foo", "s1")
    p.msg_publish("bar.x", {"j": 2})
    p.msg_publish("baz", "not subscribed")
    p.msg_publish("foo", b"\x41\x42", perm=0o444)
    assert wait_until(lambda: len(col.got) == 3), col.names()
    ms = [m for _, m, _ in col.got]
    assert [m.name for m in ms] == ["foo", "bar.x", "foo"]
    assert ms[0].data == "s1" and ms[1].data == {"j": 2} and ms[1].is_json and ms[2].data == "AB"
    assert all(m.hop_cnt == 1 for m in ms)
    assert str(ms[0].src) == "[UNSUPPORTED]:0" and ms[0].src.family == 0  # loopback peers: all zero
    assert ms[0].is_json == 0 and ms[1].is_json == 1 and ms[1].type.name == "LDMS_MSG_JSON"
    assert ms[2].raw_data == b"AB" and isinstance(ms[0].tid, int) and isinstance(ms[0].uid, int)
    c.close()


def test_close_right_after_publishing_lets_every_message_out_first(daemon):
    _, x, p = daemon
    n = 20_000
    got = []
    c = ldms.MsgClient("flush", False, cb=lambda client, m, arg: got.append(m.data))
    x.msg_subscribe("flush", 0)
    for i in range(n):
        p.msg_publish("flush", str(i))
    # Most of them still wait in the connection's queue: close sends them, then ends.
    p.close()
    with pytest.raises(Exception):
        p.msg_publish("flush", "after close")
    assert wait_until(lambda: len(got) == n, 10), len(got)
    assert got == [str(i) for i in range(n)]
    c.close()


def test_unsubscribe_and_errors(daemon):
    _, x, p = daemon
    q = ldms.MsgClient("u", False)
    assert x.peer_msg_is_enabled == 1
    x.msg_subscribe("u", False)
    p.msg_publish("u", "1")
    got = q.get_data(timeout=5)
    assert got is not None and got.data == "1"
    x.msg_unsubscribe("u", False)
    p.msg_publish("u", "2")
    time.sleep(0.3)
    assert q.get_data() is None
    with pytest.raises(ldms.MsgSubscribeError) as e:
        x.msg_unsubscribe("u", False)
    assert e.value.rc == 2  # ENOENT
    with pytest.raises(ldms.MsgSubscribeError) as e:
        x.msg_subscribe("(", True)
    assert e.value.rc == 22  # EINVAL
    got = []
    ev = threading.Event()
    x.msg_unsubscribe("nope", 0, cb=lambda s, a: (got.append(s.status), ev.set()))
    assert ev.wait(5) and got == [2]
    q.close()


def test_subscribe_to_a_listener_without_the_service_fails():
    lx = ldms.Xprt("sock")
    lx.listen("127.0.0.1", 0)
    x = ldms.Xprt("sock")
    x.connect("127.0.0.1", lx.get_addr()[0][1])
    assert x.peer_msg_is_enabled == 0
    with pytest.raises(ldms.MsgSubscribeError) as e:
        x.msg_subscribe("foo", 0)
    assert e.value.rc == 95
    x.close()
    lx.close()


def test_a_raising_callback_is_reported_and_later_messages_still_come():
    reported = []
    ldms.set_error_hook(lambda origin, exc: reported.append((origin, type(exc).__name__)))
    try:
        before = ldms.callback_errors()
        seen = []

        def cb(client, m, arg):
            seen.append(m.data)
            if m.data == "boom":
                raise RuntimeError("boom")

        c = ldms.MsgClient("r", False, cb=cb)
        for d in ("a", "boom", "b"):
            ldms.msg_publish("r", d)
        assert wait_until(lambda: len(seen) == 3)
        assert seen == ["a", "boom", "b"]
        assert wait_until(lambda: ldms.callback_errors() == before + 1)
        assert reported and reported[0][1] == "RuntimeError"
        c.close()
    finally:
        ldms.set_error_hook(None)


def test_message_channel_publish_to_subscribe_across_a_subscriber_restart():
    port = free_port()
    got = []
    lock = threading.Lock()

    def cb(m, arg):
        with lock:
            got.append((m.name, m.data, arg))

    sub = ldms.MessageChannel("chan-sub", "subscribe", "sock", "127.0.0.1", 0, "127.0.0.1", port)
    assert sub.subscribe(".*", cb, "A") == 0
    pub = ldms.MessageChannel("chan-pub", "publish", "sock", "127.0.0.1", port, "127.0.0.1", 0, reconnect=0.2)
    assert wait_until(lambda: pub.get_stats()["state"] == 2)
    S, J = ldms.LDMS_MSG_STRING, ldms.LDMS_MSG_JSON
    pub.publish("chan.a", 0, 0, 0o444, S, "hello-1", 7)
    pub.publish("chan.b", 0, 0, 0o444, J, json.dumps({"seq": 2}), 10)
    assert wait_until(lambda: len(got) == 2)
    assert got == [("chan.a", "hello-1", "A"), ("chan.b", {"seq": 2}, "A")]
    assert wait_until(lambda: pub.get_stats()["pub_msg_acked"] == 2)
    st = sub.get_stats()
    assert (st["mode"], st["sub_msg_cnt"], st["sub_byte_cnt"]) == (1, 2, 7 + 10)

    # The subscriber goes away; the publisher queues, then flushes after reconnecting.
    assert sub.close()
    assert sub.get_stats()["state"] == 3  # CLOSED
    assert wait_until(lambda: pub.get_stats()["state"] != 2)
    pub.publish("chan.a", 0, 0, 0o444, S, "queued-1", 8)
    pub.publish("chan.b", 0, 0, 0o444, J, json.dumps({"queued": True}))
    st = pub.get_stats()
    assert st["pub_queued"] == 2 and st["cur_q_depth"] > 0 and st["max_q_depth"] == 1 << 20
    time.sleep(0.5)  # a few failed attempts
    got2 = []
    sub2 = ldms.MessageChannel("chan-sub", "subscribe", "sock", None, None, "127.0.0.1", port,
                               msg_cb_fn=lambda m, a: got2.append((m.name, m.data, a)), msg_cb_arg="B")  # fmt: skip
    assert wait_until(lambda: len(got2) == 2, 10), pub.get_stats()
    assert got2 == [("chan.a", "queued-1", "B"), ("chan.b", {"queued": True}, "B")]
    st = pub.get_stats()
    assert st["pub_conn_success"] == 2 and st["pub_conn_attempt"] > 2
    assert st["pub_msg_sent"] == 4 and st["pub_byte_cnt"] == 7 + 10 + 8 + len(json.dumps({"queued": True}))
    assert pub.close(timeout=5)
    st = pub.get_stats()
    assert (st["pub_msg_acked"], st["state"], st["closing"], st["cancel"]) == (4, 3, 1, 0)
    sub2.close()


def test_message_channel_full_queue_fails_promptly():
    port = free_port()  # nobody listens
    pub = ldms.MessageChannel("p", "publish", "sock", "127.0.0.1", port, None, None, reconnect=0.1, fifo_bytes=100)
    assert pub.get_mode_str(pub.get_stats()["mode"]) == "publish"
    pub.publish("t", 0, 0, 0o444, ldms.LDMS_MSG_STRING, "x" * 60)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="errno: 105") as e:  # ENOBUFS
        pub.publish("t", 0, 0, 0o444, ldms.LDMS_MSG_STRING, "x" * 60)
    assert e.value.args[1] == 105
    with pytest.raises(RuntimeError):
        pub.publish("t", 0, 0, 0o444, ldms.LDMS_MSG_STRING, "x" * 60, timeout=0.3)
    assert time.monotonic() - t0 < 2
    st = pub.get_stats()
    assert st["state"] != 2 and st["pub_queued"] == 1 and st["pub_msg_sent"] == 0 and st["pub_blocked"] == 2
    pub.set_q_limit(1000)
    pub.publish("t", 0, 0, 0o444, ldms.LDMS_MSG_STRING, "x" * 60)  # room now
    t0 = time.monotonic()
    assert pub.close(timeout=0.2) is False
    assert time.monotonic() - t0 < 2


def test_message_channel_callback_that_raises_keeps_delivering():
    reported = []
    ldms.set_error_hook(lambda origin, exc: reported.append(origin))
    try:
        port = free_port()
        seen = []

        def cb(m, arg):
            seen.append(m.data)
            if m.data == "bad":
                raise ValueError("bad")

        sub = ldms.MessageChannel("s", "subscribe", "sock", None, None, "127.0.0.1", port)
        sub.subscribe("t", cb, None)
        pub = ldms.MessageChannel("p", "publish", "sock", "127.0.0.1", port, None, None, reconnect=0.2)
        for d in ("ok", "bad", "later"):
            pub.publish("t", 0, 0, 0o444, ldms.LDMS_MSG_STRING, d)
        assert wait_until(lambda: len(seen) == 3, 10)
        assert seen == ["ok", "bad", "later"]
        assert wait_until(lambda: reported)
        assert pub.close(timeout=5)
        sub.close()
    finally:
        ldms.set_error_hook(None)


def test_message_channel_bidir_both_ways_and_mode_errors():
    pa, pb = free_port(), free_port()
    got_a, got_b = [], []
    a = ldms.MessageChannel("a", "bidir", "sock", "127.0.0.1", pb, "127.0.0.1", pa, reconnect=0.1)
    b = ldms.MessageChannel("b", "bidir", "sock", "127.0.0.1", pa, "127.0.0.1", pb, reconnect=0.1)
    a.subscribe(".*", lambda m, arg: got_a.append(m.data), None)
    b.subscribe(".*", lambda m, arg: got_b.append(m.data), None)
    assert a.get_stats()["mode"] == ldms.LDMS_MSG_CHAN_MODE_BIDIR
    a.publish("t", 0, 0, 0o444, ldms.LDMS_MSG_STRING, "a->b", 4)
    b.publish("t", 0, 0, 0o444, ldms.LDMS_MSG_JSON, '{"b": "a"}', 10)
    assert wait_until(lambda: got_a == [{"b": "a"}] and got_b == ["a->b"], 10), (got_a, got_b)
    assert a.close(timeout=5) and b.close(timeout=5)
    with pytest.raises(RuntimeError, match="errno: 107"):  # ENOTCONN: closed
        a.publish("t", 0, 0, 0o444, ldms.LDMS_MSG_STRING, "late", 4)
    s = ldms.MessageChannel("s", "subscribe", "sock", None, None, "127.0.0.1", 0)
    assert s.get_addr()[1] > 0
    with pytest.raises(RuntimeError, match="errno: 95"):  # ENOTSUP: not a publisher
        s.publish("t", 0, 0, 0o444, ldms.LDMS_MSG_STRING, "x", 1)
    s.close()
    with pytest.raises(ValueError):
        ldms.MessageChannel("x", "sideways", "sock", None, None, None, None)


def test_listen_with_the_process_bus_delivers_peer_publishes_to_local_clients():
    lx = ldms.Xprt("sock")
    lx.listen("127.0.0.1", 0, msg=True)
    q = ldms.MsgClient("glob", False)
    p = ldms.Xprt("sock")
    p.connect("127.0.0.1", lx.get_addr()[0][1])
    try:
        p.msg_publish("glob", {"from": "peer"})
        m = q.get_data(timeout=5)
        assert m is not None and m.data == {"from": "peer"} and m.is_json
    finally:
        q.close()
        p.close()
        lx.close()


def test_blocking_subscribe_inside_an_io_thread_callback_raises_would_deadlock(daemon):
    import pvloom

    _, x, p = daemon
    seen = []
    done = threading.Event()

    def cb(client, m, arg):
        try:
            x.msg_subscribe("other", 0)  # blocking, on an I/O thread
            seen.append("no error")
        except pvloom.WouldDeadlock:
            seen.append("WouldDeadlock")
            # the callback form works here
            x.msg_subscribe("other", 0, cb=lambda ev, a: (seen.append(ev.status), done.set()))

    c = ldms.MsgClient("wd", False, cb=cb)
    x.msg_subscribe("wd", 0)
    p.msg_publish("wd", "go")
    assert done.wait(5), seen
    assert seen == ["WouldDeadlock", 0]
    c.close()
