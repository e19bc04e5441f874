"""pvloom.ldms (the LDMS Python API's names) against pvloom's own LDMS servers: a set
server in this process (``Schema``/``Set``/``publish``/``listen``) and a ``pvloom ldmsd``
subprocess running test_sampler.

Every test is bounded (pytest-timeout), every port is picked free, every subprocess is
killed by PID.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import pvloom
from pvloom import ldms

pytestmark = pytest.mark.timeout(20)


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


REC = ldms.RecordDef("dev", metric_list=[("name", "char[]", 8), ("size", "u64"), ("ctr", "u32[]", 3)])

ALL_TYPES = [
    ("component_id", "u64", 1, True),
    ("c", "char"),
    ("u8", "u8"),
    ("s8", "s8"),
    ("u16", "u16"),
    ("s16", "s16"),
    ("u32", "u32"),
    ("s32", "s32"),
    ("u64", "u64"),
    ("s64", "s64"),
    ("f32", "f32"),
    ("d64", "d64"),
    ("str", "char[]", 16),
    ("a_u8", "u8[]", 3),
    ("a_s8", "s8[]", 3),
    ("a_u16", "u16[]", 3),
    ("a_s16", "s16[]", 3),
    ("a_u32", "u32[]", 3),
    ("a_s32", "s32[]", 3),
    ("a_u64", "u64[]", 3),
    ("a_s64", "s64[]", 3),
    ("a_f32", "f32[]", 3),
    ("a_d64", "d64[]", 3),
    ("ts", "timestamp"),
    REC,
    ("devs", "list", 1024),
    {"name": "recs", "type": "record_array", "count": 2, "rec_def": REC},
]

VALUES = {
    "c": "x",
    "u8": 255,
    "s8": -128,
    "u16": 65535,
    "s16": -32768,
    "u32": 2**32 - 1,
    "s32": -(2**31),
    "u64": 2**64 - 1,
    "s64": -(2**63),
    "f32": 1.5,
    "d64": -2.25e300,
    "str": "hello",
    "a_u8": [1, 2, 255],
    "a_s8": [-1, 0, 127],
    "a_u16": [1, 65535, 3],
    "a_s16": [-32768, 0, 32767],
    "a_u32": [0, 1, 2**32 - 1],
    "a_s32": [-(2**31), 0, 2**31 - 1],
    "a_u64": [0, 2**63, 2**64 - 1],
    "a_s64": [-(2**63), 0, 2**63 - 1],
    "a_f32": [0.5, -1.25, 3.0],
    "a_d64": [1e-300, 0.0, -7.5],
    "ts": 1700000000.25,
}
LIST_IN = [(ldms.V_U64, 42), (ldms.V_CHAR_ARRAY, "eth0"), (ldms.V_RECORD_INST, {"name": "sda", "size": 7, "ctr": [1, 2, 3]})]
LIST_OUT = [42, "eth0", {"name": "sda", "size": 7, "ctr": [1, 2, 3]}]
RECS = [{"name": "a", "size": 1, "ctr": [1, 1, 1]}, {"name": "b", "size": 2, "ctr": [2, 2, 2]}]


class Served:
    """Sets published by this process and served on a free port."""

    def __init__(self):
        ldms.init(16 * 1024 * 1024)
        self.schema = ldms.Schema("all_types", metric_list=ALL_TYPES)
        self.simple = ldms.Schema("simple", metric_list=[("component_id", "u64", 1, True), ("x", "u64"), ("y", "d64")])
        self.all = ldms.Set("h/all", self.schema, producer="h", perm=0o444)
        self.all.publish()
        self.all.transaction_begin()
        self.all[0] = 9
        for k, v in VALUES.items():
            self.all[k] = v
        self.all["devs"] = LIST_IN
        self.all["recs"] = RECS
        self.all.transaction_end()
        self.sets = []
        for i in range(3):
            s = ldms.Set(f"h/simple_{i}", self.simple, producer="h")
            s.publish()
            self.write(s, i, 0)
            self.sets.append(s)
        self.listener = ldms.Xprt()
        self.listener.listen("127.0.0.1", 0)
        self.port = self.listener.get_addr()[0][1]

    @staticmethod
    def write(s, x, y):
        s.transaction_begin()
        s["x"] = x
        s["y"] = y
        s.transaction_end()


@pytest.fixture(scope="module")
def served():
    return Served()


@pytest.fixture
def xprt(served):
    x = ldms.Xprt(name="sock", auth="none")
    x.connect("127.0.0.1", served.port)
    yield x
    x.close()


def test_a_set_write_that_runs_python_code_does_not_freeze_readers_of_the_set():
    # The write converted its value (here `__index__`, pure Python) under the set's
    # lock; the GIL went to a reader, which then waited for that lock holding the GIL:
    # the whole interpreter froze. In a subprocess, so a regression cannot freeze this.
    script = """
import threading, time
from pvloom import ldms
ldms.init(0)
s = ldms.Set("inst", ldms.Schema("s", metric_list=[("a", "u64"), ("b", "u64"), ("l", "u64[]", 3)]))
class Slow:
    def __init__(self, v):
        self.v = v
    def __index__(self):
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            pass
        return self.v
def write():
    s[0] = Slow(5)
    s[2] = [Slow(1), Slow(2), Slow(3)]
def read():
    time.sleep(0.05)
    print("read", s[1], len(s), flush=True)
threads = [threading.Thread(target=write), threading.Thread(target=read)]
[t.start() for t in threads]
[t.join(10) for t in threads]
print("values", s[0], s[2], flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "read 0 3" in done.stdout and "values 5 [1, 2, 3]" in done.stdout, done.stdout + done.stderr


def test_constants_and_names():
    assert ldms.EVENT_CONNECTED == 0 and ldms.EVENT_SET_DELETE == 5 and ldms.EVENT_SEND_QUOTA_DEPOSITED == 7
    assert ldms.UPD_F_PUSH == 0x10000000 and ldms.UPD_F_PUSH_LAST == 0x20000000 and ldms.UPD_F_MORE == 0x40000000
    assert ldms.LDMS_UPD_ERROR(ldms.UPD_F_PUSH | errno.ENOENT) == errno.ENOENT
    assert (ldms.LOOKUP_BY_INSTANCE, ldms.LOOKUP_BY_SCHEMA, ldms.LOOKUP_RE, ldms.DIR_F_NOTIFY) == (0, 1, 2, 1)
    assert ldms.V_U64 == 8 and ldms.V_TIMESTAMP == 28 and ldms.LDMS_V_D64_ARRAY == 22


def test_blocking_dir_lookup_update(served, xprt):
    dirs = {d.name: d for d in xprt.dir()}
    assert {"h/all", "h/simple_0", "h/simple_1", "h/simple_2"} <= set(dirs)
    d = dirs["h/all"]
    assert d.schema_name == "all_types" and d.card == len(ALL_TYPES) and d.perm == "-r--r--r--"
    s = xprt.lookup("h/simple_1")
    assert isinstance(s, ldms.Set) and s.name == s.instance_name == "h/simple_1"
    assert s.schema_name == "simple" and s.producer_name == "h" and len(s) == s.card == 3
    s.update()
    assert s["x"] == 1 and s[2] == 0.0 and s[0] == 0 and s.is_consistent
    assert s.data_gn == served.sets[1].data_gn and s.metric_by_name("y") == 2
    assert s.get_metric_type("x") == ldms.V_U64 and s.get_metric_info("y").name == "y"
    assert s.keys() == ["component_id", "x", "y"] and s.as_dict()["x"] == 1
    assert isinstance(s.transaction_timestamp, dict) and set(s.transaction_timestamp) == {"sec", "usec"}


def test_every_metric_type_round_trips(served, xprt):
    s = xprt.lookup("h/all")
    s.update()
    assert s["component_id"] == 9
    for k, v in VALUES.items():
        assert s[k] == pytest.approx(v) if isinstance(v, float) else s[k] == v, k
    assert s["devs"] == LIST_OUT
    assert s["recs"] == RECS
    assert s.get_metric_type("devs") == ldms.V_LIST and s.get_metric_type("recs") == ldms.V_RECORD_ARRAY
    assert s[-1] == RECS and len(s[1:4]) == 3


def test_callback_chain_connect_dir_lookup_update(served):
    got = {"events": [], "dir": [], "sets": [], "updates": []}
    done = threading.Event()

    def on_update(lset, flags, arg):
        got["updates"].append((lset.name, flags, lset["x"], arg))
        if len(got["updates"]) == 3:
            done.set()

    def on_lookup(x, status, more, lset, arg):
        assert status == 0
        got["sets"].append(lset)
        lset.update(cb=on_update, cb_arg=arg + 1)

    def on_dir(x, status, dd, arg):
        got["dir"].append((status, dd.type, dd.more, [d.name for d in dd.set_data]))
        for d in dd.set_data:
            if d.name.startswith("h/simple_"):
                x.lookup(d.name, cb=on_lookup, cb_arg=arg + 1)

    def on_event(x, ev, arg):
        got["events"].append(ev.type)
        if ev.type == ldms.EVENT_CONNECTED:
            x.dir(cb=on_dir, cb_arg=arg + 1)

    x = ldms.Xprt()
    x.connect("127.0.0.1", served.port, cb=on_event, cb_arg=10)
    assert done.wait(5), got
    assert got["events"][0] == ldms.EVENT_CONNECTED
    assert got["dir"][0][0] == 0 and got["dir"][-1][2] == 0
    assert sorted(u[0] for u in got["updates"]) == ["h/simple_0", "h/simple_1", "h/simple_2"]
    assert all(u[1] == 0 and u[3] == 13 for u in got["updates"])
    assert {u[0]: u[2] for u in got["updates"]} == {"h/simple_0": 0, "h/simple_1": 1, "h/simple_2": 2}
    x.close()
    assert wait_until(lambda: ldms.EVENT_DISCONNECTED in got["events"])


def test_blocking_call_in_callback_raises_would_deadlock(served, xprt):
    seen = {}
    done = threading.Event()

    def on_dir(x, status, dd, arg):
        start = time.monotonic()
        for name, call in [
            ("lookup", lambda: x.lookup("h/simple_0")),
            ("dir", lambda: x.dir()),
            ("update", lambda: arg.update()),
            ("update_all", lambda: ldms.update_all([arg])),
            ("recv", lambda: x.recv(timeout=5)),
        ]:
            try:
                call()
                seen[name] = "returned"
            except pvloom.WouldDeadlock:
                seen[name] = "WouldDeadlock"
        seen["elapsed"] = time.monotonic() - start
        done.set()

    s = xprt.lookup("h/simple_0")
    xprt.dir(cb=on_dir, cb_arg=s)
    assert done.wait(5)
    assert seen.pop("elapsed") < 1.0
    assert seen == dict.fromkeys(["lookup", "dir", "update", "update_all", "recv"], "WouldDeadlock")
    s.update()  # the I/O thread is fine afterwards


def test_exception_in_callback_is_reported_and_later_callbacks_arrive(served, xprt):
    reported = []
    ldms.set_error_hook(lambda origin, exc: reported.append((origin, type(exc).__name__, str(exc))))
    try:
        before = ldms.callback_errors()
        calls = []
        done = threading.Event()

        def on_update(lset, flags, arg):
            calls.append(arg)
            if arg == 0:
                raise RuntimeError("callback exploded")
            done.set()

        s = xprt.lookup("h/simple_2")
        s.update(cb=on_update, cb_arg=0)
        assert wait_until(lambda: reported)
        s.update(cb=on_update, cb_arg=1)
        assert done.wait(5)
        assert calls == [0, 1]
        assert reported == [("ldms.update", "RuntimeError", "callback exploded")]
        assert ldms.callback_errors() == before + 1
    finally:
        ldms.set_error_hook(None)


def test_default_report_goes_to_stderr(served):
    code = f"""
import threading
from pvloom import ldms
x = ldms.Xprt(); x.connect("127.0.0.1", {served.port})
s = x.lookup("h/simple_0")
done = threading.Event()
def bad(lset, flags, arg):
    raise ValueError("boom in update")
def good(lset, flags, arg):
    done.set()
s.update(cb=bad)
import time; time.sleep(0.3)
s.update(cb=good)
assert done.wait(5)
print("errors", ldms.callback_errors())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=15)
    assert proc.returncode == 0, proc.stderr
    assert "ValueError: boom in update" in proc.stderr
    assert "errors 1" in proc.stdout


def test_lifetimes_dirset_kept_and_values_of_each_update(served, xprt):
    kept = []
    done = threading.Event()

    def on_dir(x, status, dd, arg):
        kept.extend(dd.set_data)
        if not dd.more:
            done.set()

    xprt.dir(cb=on_dir)
    assert done.wait(5)
    names = {d.name: d for d in kept}
    assert names["h/simple_1"].schema_name == "simple" and names["h/simple_1"].card == 3

    src = served.sets[0]
    s = xprt.lookup("h/simple_0")
    seen = []
    ready = threading.Semaphore(0)

    def on_update(lset, flags, arg):
        seen.append((arg, lset["x"], lset["y"], lset.data_gn))
        ready.release()

    for i in range(5):
        Served.write(src, 100 + i, i / 2)
        s.update(cb=on_update, cb_arg=(100 + i, src.data_gn))
        assert ready.acquire(timeout=5)
    for (x_want, gn_want), x, y, gn in seen:
        assert x == x_want and y == (x_want - 100) / 2 and gn == gn_want
    Served.write(src, 0, 0)


def test_push_register_pushes_cancel(served, xprt):
    src = served.sets[1]
    s = xprt.lookup("h/simple_1")
    s.update()
    got = []
    last = threading.Event()

    def on_push(lset, flags, arg):
        got.append((flags, lset["x"], arg))
        if flags & ldms.UPD_F_PUSH_LAST:
            last.set()

    s.register_push(ldms.LDMS_XPRT_PUSH_F_CHANGE, cb=on_push, cb_arg="p")
    time.sleep(0.2)  # the registration reaches the server
    for i in range(5):
        Served.write(src, 1000 + i, 0)
        assert wait_until(lambda: len(got) >= i + 1), got
    s.cancel_push()
    assert last.wait(5), got
    pushes = [g for g in got if not g[0] & ldms.UPD_F_PUSH_LAST]
    assert [g[1] for g in pushes] == [1000, 1001, 1002, 1003, 1004]
    assert all(g[0] & ldms.UPD_F_PUSH and g[2] == "p" for g in got)
    assert ldms.LDMS_UPD_ERROR(got[-1][0]) == 0
    Served.write(src, 1, 0)


def test_subscribe_push_name(served, xprt):
    s = xprt.lookup("h/simple_2")
    got = threading.Event()
    s.subscribe_push(cb=lambda lset, flags, arg: got.set() if flags & ldms.UPD_F_PUSH else None)
    time.sleep(0.2)
    Served.write(served.sets[2], 2, 1.0)
    assert got.wait(5)
    s.cancel_push()


def test_lookup_regex_more_and_failed_lookup(served, xprt):
    res = []
    done = threading.Event()

    def on_lookup(x, status, more, lset, arg):
        res.append((status, more, lset.name if lset else None))
        if not more:
            done.set()

    xprt.lookup("h/simple_.*", ldms.LOOKUP_RE, cb=on_lookup)
    assert done.wait(5)
    assert sorted(r[2] for r in res) == ["h/simple_0", "h/simple_1", "h/simple_2"]
    assert [r[1] for r in res] == [1, 1, 0] and all(r[0] == 0 for r in res)

    by_schema = xprt.lookup("simple", ldms.LOOKUP_BY_SCHEMA)
    assert isinstance(by_schema, list) and len(by_schema) == 3

    failed = []
    done.clear()
    xprt.lookup("h/none", cb=lambda x, status, more, lset, arg: (failed.append((status, more, lset)), done.set()))
    assert done.wait(5)
    assert failed == [(errno.ENOENT, 0, None)]
    with pytest.raises(ConnectionError) as info:
        xprt.lookup("h/none")
    assert info.value.errno == errno.ENOENT


def test_set_delete_event(served):
    events = []
    s_local = ldms.Set("h/doomed", served.simple, producer="h")
    s_local.publish()
    x = ldms.Xprt()
    x.connect("127.0.0.1", served.port, cb=lambda x, ev, arg: events.append(ev))
    assert wait_until(lambda: events)
    looked = []
    x.lookup("h/doomed", cb=lambda x, st, more, lset, arg: looked.append(lset))
    assert wait_until(lambda: looked)
    s_local.unpublish()
    assert wait_until(lambda: any(e.type == ldms.EVENT_SET_DELETE for e in events))
    ev = next(e for e in events if e.type == ldms.EVENT_SET_DELETE)
    assert ev.set_delete.name == "h/doomed" and ev.set_delete.set is looked[0]
    x.close()


def test_update_all(served, xprt):
    sets = xprt.lookup("h/simple_.*", ldms.LOOKUP_RE)
    for i, src in enumerate(served.sets):
        Served.write(src, 500 + i, 0)
    assert ldms.update_all(sets) == 3
    assert sorted(s["x"] for s in sets) == [500, 501, 502]
    for i, src in enumerate(served.sets):
        Served.write(src, i, 0)


def test_connect_refused_and_recv_timeout(served, xprt):
    x = ldms.Xprt()
    with pytest.raises(ConnectionError):
        x.connect("127.0.0.1", free_port(), timeout=5)
    import queue

    with pytest.raises(queue.Empty):
        xprt.recv(timeout=0.1)
    xprt.send(b"hello server")  # served sets' server takes application messages


# --- the server side: listen(cb=...) and accept() ---------------------------------


def test_listen_cb_connected_recv_disconnected_same_xprt():
    events = []
    got = {}
    disconnected = threading.Event()

    def on_event(x, ev, arg):
        events.append((x, ev.type, ev.data, arg))
        if ev.type == ldms.EVENT_CONNECTED:
            got["connected"] = x.is_connected
        if ev.type == ldms.EVENT_RECV:
            x.send(b"echo:" + ev.data)
        if ev.type == ldms.EVENT_DISCONNECTED:
            disconnected.set()

    lx = ldms.Xprt()
    lx.listen("127.0.0.1", 0, cb=on_event, cb_arg="the arg")
    port = lx.get_addr()[0][1]
    c = ldms.Xprt()
    c.connect("127.0.0.1", port)
    c.send(b"hello listener")
    assert c.recv(timeout=5) == b"echo:hello listener"
    local = c.get_addr()
    c.close()
    assert disconnected.wait(5)
    types = [t for _, t, _, _ in events]
    assert types == [ldms.EVENT_CONNECTED, ldms.EVENT_RECV, ldms.EVENT_DISCONNECTED]
    assert events[1][2] == b"hello listener"
    accepted = events[0][0]
    assert all(x is accepted for x, _, _, _ in events)
    assert all(a == "the arg" for _, _, _, a in events)
    assert accepted is not lx and isinstance(accepted, ldms.Xprt)
    assert got["connected"] is True and not accepted.is_connected
    (lhost, lport), (rhost, rport) = accepted.get_addr()
    assert (lhost, lport) == ("127.0.0.1", port)
    assert rhost == "127.0.0.1" and rport not in (0, port)
    assert local[1] == ("127.0.0.1", port)
    with pytest.raises(ValueError):
        accepted.recv(timeout=0.1)  # the callback gets the messages
    with pytest.raises(ValueError):
        lx.accept(timeout=0.1)  # ... and the connections
    lx.close()


def test_accept_recv_send_close():
    import queue

    lx = ldms.Xprt()
    lx.listen("127.0.0.1", 0)
    port = lx.get_addr()[0][1]
    with pytest.raises(queue.Empty):
        lx.accept(timeout=0.05)
    c = ldms.Xprt()
    c.connect("127.0.0.1", port)
    a = lx.accept(timeout=5)
    assert isinstance(a, ldms.Xprt) and a.is_connected
    assert "accepted" in repr(a)
    c.send(b"to the server")
    c.send(b"second")
    assert a.recv(timeout=5) == b"to the server"
    assert a.recv(timeout=5) == b"second"
    a.send(b"to the client")
    assert c.recv(timeout=5) == b"to the client"
    with pytest.raises(queue.Empty):
        a.recv(timeout=0.05)
    with pytest.raises(ConnectionError) as e:
        a.dir()
    assert e.value.errno == errno.ENOTSUP
    with pytest.raises(ConnectionError):
        a.lookup("anything")
    # The server closes: the client sees the end, the accepted side's recv() too.
    a.close()
    assert c.recv(timeout=5) is None
    assert a.recv(timeout=5) is None
    assert wait_until(lambda: not a.is_connected)
    with pytest.raises(ConnectionError) as e:
        a.send(b"late")
    assert e.value.errno == errno.ENOTCONN
    lx.close()


def test_accept_in_callback_raises_would_deadlock():
    seen = {}
    done = threading.Event()
    lx = ldms.Xprt()

    def on_event(x, ev, arg):
        if ev.type != ldms.EVENT_CONNECTED:
            return
        for name, call in [("accept", lambda: lx.accept(timeout=5)), ("recv", lambda: x.recv(timeout=5))]:
            try:
                call()
                seen[name] = "returned"
            except pvloom.WouldDeadlock:
                seen[name] = "WouldDeadlock"
            except ValueError:
                seen[name] = "ValueError"
        done.set()

    lx.listen("127.0.0.1", 0, cb=on_event)
    c = ldms.Xprt()
    c.connect("127.0.0.1", lx.get_addr()[0][1])
    assert done.wait(5)
    # accept() checks for the deadlock first; recv() on a callback-driven xprt refuses.
    assert seen == {"accept": "WouldDeadlock", "recv": "ValueError"}
    c.close()
    lx.close()


def test_listener_still_serves_sets_with_a_callback(served):
    events = []
    lx = ldms.Xprt()
    lx.listen("127.0.0.1", 0, cb=lambda x, ev, arg: events.append(ev.type))
    c = ldms.Xprt()
    c.connect("127.0.0.1", lx.get_addr()[0][1])
    s = c.lookup("h/simple_1")
    s.update()
    assert s["x"] == 1
    c.close()
    assert wait_until(lambda: events == [ldms.EVENT_CONNECTED, ldms.EVENT_DISCONNECTED])
    lx.close()


# --- a pvloom ldmsd subprocess running test_sampler -----------------------------------


@pytest.fixture(scope="module")
def ldmsd(tmp_path_factory, pvloom_bin):
    binary = pvloom_bin
    port = free_port()
    conf = tmp_path_factory.mktemp("ldmsd") / "sampler.conf"
    metrics = ",".join(["component_id:m:u64:0"] + [f"v{i}:d:u64:{i}" for i in range(8)])
    lines = ["load name=test_sampler", f"config name=test_sampler action=add_schema schema=bench metrics={metrics}"]
    lines += [
        f"config name=test_sampler action=add_set schema=bench instance=h/bench_{i} producer=h component_id={i}"
        for i in range(4)
    ]
    lines.append("start name=test_sampler interval=100000 offset=0")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [binary, "ldmsd", "-x", f"sock:{port}:127.0.0.1", "-c", str(conf), "-F", "-v", "ERROR"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        ok = wait_until(lambda: proc.poll() is None and _can_connect(port), timeout=10)
        if not ok:
            pytest.fail(f"pvloom ldmsd did not start: {proc.stderr.read().decode() if proc.poll() is not None else ''}")
        yield port
    finally:
        proc.kill()
        proc.wait(5)


def _can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_pvloom_ldmsd_test_sampler(ldmsd):
    x = ldms.Xprt()
    x.connect("127.0.0.1", ldmsd)
    assert wait_until(lambda: len(x.dir()) == 4)
    sets = x.lookup("bench", ldms.LOOKUP_BY_SCHEMA)
    assert sorted(s.name for s in sets) == [f"h/bench_{i}" for i in range(4)]
    assert ldms.update_all(sets) == 4
    for s in sets:
        assert s["component_id"] == int(s.name.rsplit("_", 1)[1])
        assert len(s) == 9 and s.schema_name == "bench"
    gn = sets[0].data_gn
    assert wait_until(lambda: (sets[0].update(), sets[0].data_gn)[1] > gn, timeout=5)
    x.close()
