"""pvloom.ca (caproto's threading-client API) against real servers: caproto's IOC and
EPICS base's rsrv (pythonSoftIOC), started here on free loopback ports."""

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import pvloom
from pvloom import ca
from pvloom.ca import Batch, ChannelType, Context

ROOT = Path(__file__).resolve().parents[3]
PEERS = ROOT / "tests" / "peers"
CLASSES = [None, "native", "status", "time", "graphic", "control"]


# ------------------------------------------------------------------------ servers


def free_port():
    """A port free for TCP and UDP on loopback (a CA server needs both)."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("0.0.0.0", port))
                except OSError:
                    continue
                return port


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        return udp.getsockname()[1]


def ca_env(ports, repeater_port):
    """The environment a client (or server) needs to use only these ports."""
    return {
        "EPICS_CA_SERVER_PORT": str(ports[0]),
        "EPICS_CAS_SERVER_PORT": str(ports[0]),
        "EPICS_CA_REPEATER_PORT": str(repeater_port),
        "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CA_ADDR_LIST": " ".join(f"127.0.0.1:{p}" for p in ports),
        "EPICS_CA_MAX_ARRAY_BYTES": "100000000",
        "PYTHONUNBUFFERED": "1",
    }


class Server:
    """A peer server subprocess; `kill()` (or the fixture) ends it."""

    def __init__(self, argv, prefix, port=None, repeater_port=None, ready_line="READY"):
        self.argv, self.prefix, self.ready_line = argv, prefix, ready_line
        self.port = port or free_port()
        self.repeater_port = repeater_port or free_udp_port()
        self.proc = None
        self.start()

    def start(self):
        env = dict(os.environ, **ca_env([self.port], self.repeater_port))
        self.proc = subprocess.Popen(
            [sys.executable, *self.argv],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        if self.ready_line:
            ready = threading.Event()

            def watch(stdout=self.proc.stdout):
                for line in stdout:
                    if self.ready_line in line:
                        ready.set()

            threading.Thread(target=watch, daemon=True).start()
            if not ready.wait(60):
                self.kill()
                raise RuntimeError(f"{self.argv} did not start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"{self.argv} is not listening on {self.port}")

    def pv(self, suffix):
        return self.prefix + suffix

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()


@pytest.fixture(scope="module")
def caproto_server():
    server = Server([str(PEERS / "caproto_ioc.py"), "C:"], "C:")
    yield server
    server.kill()


@pytest.fixture(scope="module")
def softioc_server():
    server = Server([str(PEERS / "softioc_ioc.py"), "K:"], "K:")
    yield server
    server.kill()


@pytest.fixture(params=["caproto", "softioc"])
def server(request):
    return request.getfixturevalue(f"{request.param}_server")


@contextmanager
def environment(values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def make_context():
    """`make_context(*servers, **kwargs)`: a Context searching only those servers."""
    made = []

    def make(*servers, **kwargs):
        env = ca_env([s.port for s in servers], free_udp_port())
        with environment(env):
            ctx = Context(**kwargs)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.disconnect()


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# (suffix, native ChannelType, numpy dtype kind or 'bytes') of one PV per native type.
TYPED = {
    "caproto": [
        ("double", ChannelType.DOUBLE, "f8"),
        ("float", ChannelType.FLOAT, "f4"),
        ("long", ChannelType.LONG, "i4"),
        ("int", ChannelType.INT, "i2"),
        ("char", ChannelType.CHAR, "u1"),
        ("string", ChannelType.STRING, None),
        ("enum", ChannelType.ENUM, "u2"),
    ],
    "softioc": [
        ("AI", ChannelType.DOUBLE, "f8"),
        ("FLOATWF", ChannelType.FLOAT, "f4"),
        ("LI", ChannelType.LONG, "i4"),
        ("SHORTWF", ChannelType.INT, "i2"),
        ("CHARWF", ChannelType.CHAR, "u1"),
        ("SI", ChannelType.STRING, None),
        ("MBBI", ChannelType.ENUM, "u2"),
    ],
}


def kind_of(server):
    return "caproto" if server.prefix == "C:" else "softioc"


# -------------------------------------------------------------------------- tests


def test_read_and_subscribe_every_type_and_class(server, make_context):
    ctx = make_context(server)
    typed = TYPED[kind_of(server)]
    pvs = ctx.get_pvs(*(server.pv(s) for s, _, _ in typed))
    assert pvs == ctx.get_pvs(*(server.pv(s) for s, _, _ in typed)), "PVs are cached"
    for pv, (_, native, dtype) in zip(pvs, typed):
        pv.wait_for_connection(timeout=10)
        assert pv.channel.native_data_type == native
        for data_type in CLASSES:
            res = pv.read(data_type=data_type)
            assert isinstance(res, ca.ReadNotifyResponse)
            assert res.status.name == "ECA_NORMAL"
            assert res.data_count == len(res.data) >= 1
            if dtype is None:
                assert all(isinstance(item, bytes) for item in res.data), res.data
            else:
                assert isinstance(res.data, np.ndarray) and res.data.dtype == np.dtype(dtype), (pv.name, res.data)
            md = res.metadata
            if data_type in (None, "native"):
                assert md is None and res.data_type == native
                continue
            assert int(md.status) >= 0 and int(md.severity) >= 0
            if data_type == "time" or (data_type == "control" and native == ChannelType.STRING):
                assert md.timestamp > 1.6e9 and md.stamp.as_datetime().year >= 2020
            if data_type in ("graphic", "control") and native == ChannelType.ENUM:
                assert len(md.enum_strings) >= 2 and all(isinstance(s, bytes) for s in md.enum_strings)
            elif data_type in ("graphic", "control") and native != ChannelType.STRING:
                assert isinstance(md.units, bytes) and hasattr(md, "upper_disp_limit")
                if data_type == "control":
                    assert hasattr(md, "upper_ctrl_limit")
        # A ChannelType works as data_type too.
        if native != ChannelType.STRING:
            res = pv.read(data_type=ChannelType(int(native) + 14))  # the TIME_ type
            assert res.data_type == ChannelType(int(native) + 14) and res.metadata.timestamp > 1.6e9
        # Subscribe with each class: the first update arrives, shaped the same way.
        got = {}
        done = threading.Event()
        subs = [pv.subscribe(data_type=dt) for dt in CLASSES]
        assert pv.subscribe(data_type="time") is subs[3], "same arguments, same subscription"

        def on_update(sub, response, got=got):
            got.setdefault(sub.data_type, response)
            if len(got) == len(CLASSES):
                done.set()

        for sub in subs:
            sub.add_callback(on_update)
        assert done.wait(10), (pv.name, sorted(map(str, got)))
        assert isinstance(got["time"], ca.EventAddResponse) and got["time"].metadata.timestamp > 1.6e9
        assert got[None].metadata is None
        pv.unsubscribe_all()
        assert all(sub.subscriptionid is None for sub in subs)


def test_write_every_type(server, make_context):
    ctx = make_context(server)
    if kind_of(server) == "caproto":
        cases = [
            ("double", 4.25, 4.25),
            ("float", 2.5, 2.5),
            ("long", 17, 17),
            ("int", -9, -9),
            ("char", b"abc", b"abc"),
            ("string", "xyz", b"xyz"),
            ("enum", 2, 2),
            ("enum", "red", 0),
        ]
    else:
        cases = [
            ("AO", 4.25, 4.25),
            ("FLOATWF", [1.5, 2.5], [1.5, 2.5]),
            ("LO", 17, 17),
            ("SHORTWF", np.array([3, -4], dtype=np.int16), [3, -4]),
            ("CHARWF", b"abc\0", b"abc\0"),
            ("SO", "xyz", b"xyz"),
            ("MBBO", 1, 1),
            ("MBBO", "blue", 2),
            ("BO", 1, 1),
        ]
    for suffix, value, expected in cases:
        (pv,) = ctx.get_pvs(server.pv(suffix))
        res = pv.write(value)
        assert isinstance(res, ca.WriteNotifyResponse) and res.status.name == "ECA_NORMAL"
        data = pv.read().data
        if isinstance(data, list):
            assert data[0] == expected, suffix
        elif isinstance(expected, bytes):
            assert bytes(data[: len(expected)]) == expected, suffix
        else:
            assert list(np.atleast_1d(data)[: len(np.atleast_1d(expected))]) == list(np.atleast_1d(expected)), suffix


@pytest.mark.parametrize("count", [1, 1000, 1_000_000])
def test_arrays(server, make_context, count):
    ctx = make_context(server)
    suffix = {
        ("caproto", 1): "double",
        ("caproto", 1000): "array1k",
        ("caproto", 1_000_000): "array1m",
        ("softioc", 1): "WF1",
        ("softioc", 1000): "WF1K",
        ("softioc", 1_000_000): "WF1M",
    }[(kind_of(server), count)]
    (pv,) = ctx.get_pvs(server.pv(suffix))
    res = pv.read(timeout=20)
    assert isinstance(res.data, np.ndarray) and res.data.dtype == np.float64
    assert res.data_count == len(res.data) == count
    if count == 1000:
        assert np.array_equal(res.data, np.arange(1000.0))
        assert np.array_equal(pv.read(data_count=10).data, np.arange(10.0))
    elif count == 1_000_000:
        assert np.array_equal(res.data, np.arange(1_000_000) * 0.5)
        # Subscribing to the big array delivers it whole.
        got = []
        done = threading.Event()
        sub = pv.subscribe(data_type="time")
        sub.add_callback(lambda sub, response: (got.append(response.data), done.set()))
        assert done.wait(20) and len(got[0]) == count
        sub.clear()
    if kind_of(server) == "softioc" and count == 1000:
        values = np.linspace(0, 1, 1000)
        pv.write(values)
        assert np.array_equal(pv.read().data, values)
        pv.write(np.arange(1000.0))


def test_write_with_and_without_notify(caproto_server, make_context):
    ctx = make_context(caproto_server)
    (pv,) = ctx.get_pvs(caproto_server.pv("double"))
    pv.wait_for_connection(timeout=10)
    assert pv.write([1.0], wait=False) is None  # a plain WRITE, no confirmation
    assert wait_until(lambda: pv.read().data[0] == 1.0)
    confirmed = []
    done = threading.Event()
    assert pv.write(2.0, wait=False, callback=lambda r: (confirmed.append(r), done.set())) is None
    assert done.wait(5) and confirmed[0].status.name == "ECA_NORMAL"
    assert isinstance(confirmed[0], ca.WriteNotifyResponse)
    assert pv.read().data[0] == 2.0
    pv.write(3.0, wait=False, notify=True)  # notify without anyone waiting still writes
    assert wait_until(lambda: pv.read().data[0] == 3.0)
    blocked = []
    pv.write(3.5, callback=blocked.append)  # wait=True and a callback: both
    assert wait_until(lambda: blocked) and blocked[0].status.name == "ECA_NORMAL"
    with pytest.raises(ca.CaprotoValueError):
        pv.write(4.0, notify=False)
    with pytest.raises(ValueError):
        pv.write(4.0, wait=False, notify=False, callback=print)


def test_write_to_read_only_pv_raises(caproto_server, make_context):
    ctx = make_context(caproto_server)
    (pv,) = ctx.get_pvs(caproto_server.pv("readonly"))
    pv.wait_for_connection(timeout=10)
    assert pv.access_rights == ca.AccessRights.READ
    with pytest.raises(ca.AccessRightsError) as info:
        pv.write([3.0])
    assert isinstance(info.value, pvloom.PvloomError) and isinstance(info.value, ca.CaprotoError)
    assert "C:readonly" in str(info.value) and "read-only" in str(info.value)
    assert pv.read().data[0] == 1.0


def test_missing_pv_times_out_naming_it(caproto_server, make_context):
    ctx = make_context(caproto_server)
    (pv,) = ctx.get_pvs("C:does-not-exist", timeout=0.3)
    start = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        pv.read()
    assert time.monotonic() - start < 2
    assert isinstance(info.value, ca.CaprotoTimeoutError) and isinstance(info.value, pvloom.PvloomError)
    assert "C:does-not-exist" in str(info.value)
    with pytest.raises(ca.CaprotoTimeoutError, match="does-not-exist"):
        pv.wait_for_connection(timeout=0.2)
    with pytest.raises(ca.CaprotoTimeoutError, match="does-not-exist"):
        pv.write(1.0, timeout=0.2)
    assert "searching" in repr(pv)


def test_get_pvs_of_1000_names(softioc_server, make_context):
    ctx = make_context(softioc_server)
    names = [softioc_server.pv(f"N{i}") for i in range(1000)]
    pvs = ctx.get_pvs(*names)
    assert [pv.name for pv in pvs] == names
    for pv in pvs:
        pv.wait_for_connection(timeout=20)
    results = {}
    done = threading.Event()

    def stash(name, response):
        results[name] = int(response.data[0])
        if len(results) == len(pvs):
            done.set()

    with Batch() as batch:
        for pv in pvs:
            batch.read(pv, lambda response, name=pv.name: stash(name, response))
    assert done.wait(20), len(results)
    assert results == {name: i for i, name in enumerate(names)}
    assert "pvs=1000" in repr(ctx)


def test_batch_write(caproto_server, make_context):
    ctx = make_context(caproto_server)
    long_pv, int_pv = ctx.get_pvs(caproto_server.pv("long"), caproto_server.pv("int"))
    long_pv.wait_for_connection(timeout=10)
    int_pv.wait_for_connection(timeout=10)
    confirmed = threading.Event()
    with Batch() as batch:
        batch.write(long_pv, 123, callback=lambda response: confirmed.set())
        batch.write(int_pv, 45)
    assert confirmed.wait(5)
    assert wait_until(lambda: int_pv.read().data[0] == 45)
    assert long_pv.read().data[0] == 123


def test_batch_keeps_request_order_and_options(server, make_context):
    """Reads after a write in one batch see the written value (requests go out in
    order); reads with a data_type or data_count keep them; every callback runs once."""
    ctx = make_context(server)
    suffix = "long" if kind_of(server) == "caproto" else "LO"
    (pv,) = ctx.get_pvs(server.pv(suffix))
    pv.wait_for_connection(timeout=10)
    seen = []
    done = threading.Semaphore(0)

    def keep(tag):
        def callback(response):
            seen.append((tag, response))
            done.release()

        return callback

    with Batch() as batch:
        batch.read(pv, keep("before"))
        batch.write(pv, 41, callback=keep("write"))
        batch.read(pv, keep("after"))
        batch.read(pv, keep("time"), data_type="time")
        batch.read(pv, keep("counted"), data_count=1)
        batch.read(pv, keep("last"))
    for _ in range(6):
        assert done.acquire(timeout=10), seen
    by_tag = dict(seen)
    assert sorted(by_tag) == ["after", "before", "counted", "last", "time", "write"]
    for tag in ("after", "time", "counted", "last"):
        assert int(by_tag[tag].data[0]) == 41, tag
        assert by_tag[tag].status.name == "ECA_NORMAL"
    assert by_tag["time"].data_type == ChannelType.TIME_LONG
    assert by_tag["time"].metadata.timestamp > 0
    assert by_tag["last"].data_type == ChannelType.LONG and by_tag["last"].data_count == 1
    assert len({r.ioid for _, r in seen}) == 6


@pytest.mark.parametrize("max_workers", [0, 2])
def test_batch_read_failures_and_exceptions(caproto_server, make_context, max_workers, caplog):
    """A PV that never connects times out on its own (logged, no callback), a raising
    callback is counted, and every other read of the batch is delivered."""
    ctx = make_context(caproto_server, max_workers=max_workers)
    good = ctx.get_pvs(caproto_server.pv("double"), caproto_server.pv("int"))
    (missing,) = ctx.get_pvs("NO:SUCH:PV:IN:BATCH")
    for pv in good:
        pv.wait_for_connection(timeout=10)
    delivered = []
    reported = []
    ctx.set_error_hook(lambda origin, exc: reported.append((origin, exc)))
    with caplog.at_level("WARNING", logger="pvloom.ca"):
        with Batch(timeout=0.5) as batch:
            batch.read(good[0], lambda response: 1 / 0)
            batch.read(missing, delivered.append)
            batch.read(good[1], delivered.append)
        assert wait_until(lambda: delivered and reported, timeout=5)
        assert wait_until(lambda: "NO:SUCH:PV:IN:BATCH" in caplog.text, timeout=5)
    time.sleep(0.2)
    assert len(delivered) == 1 and delivered[0].data_type == ChannelType.INT
    assert [origin for origin, _ in reported] == ["read"]
    assert isinstance(reported[0][1], ZeroDivisionError)
    assert ctx.callback_errors == 1


def test_disconnect_with_batch_reads_pending(caproto_server, make_context):
    """Reads still waiting when the context closes never call back, and nothing hangs."""
    ctx = make_context(caproto_server)
    missing = ctx.get_pvs(*[f"NO:SUCH:PV:{i}" for i in range(10)])
    called = []
    with Batch(timeout=30) as batch:
        for pv in missing:
            batch.read(pv, called.append)
    time.sleep(0.2)
    start = time.monotonic()
    ctx.disconnect()
    assert time.monotonic() - start < 5
    time.sleep(0.2)
    assert called == []


def test_many_batches_in_flight(softioc_server, make_context):
    """Overlapping batches (and single non-blocking reads) each get all their replies."""
    ctx = make_context(softioc_server)
    pvs = ctx.get_pvs(*[softioc_server.pv(f"N{i}") for i in range(200)])
    for pv in pvs:
        pv.wait_for_connection(timeout=20)
    counts = [0] * 5
    lock = threading.Lock()
    done = threading.Semaphore(0)

    def count(index, response):
        assert response.status.name == "ECA_NORMAL"
        with lock:
            counts[index] += 1
        done.release()

    for index in range(4):
        with Batch() as batch:
            for pv in pvs:
                batch.read(pv, lambda response, index=index: count(index, response))
    for pv in pvs:
        pv.read(wait=False, callback=lambda response: count(4, response))
    for _ in range(5 * len(pvs)):
        assert done.acquire(timeout=20), counts
    assert counts == [len(pvs)] * 5


def test_server_restart_reconnects_and_resumes_subscription(make_context):
    server = Server([str(PEERS / "caproto_ioc.py"), "R:"], "R:")
    try:
        ctx = make_context(server)
        states = []
        (pv,) = ctx.get_pvs(server.pv("double"), connection_state_callback=lambda pv, state: states.append(state))
        updates = []
        sub = pv.subscribe()
        sub.add_callback(lambda sub, response: updates.append(float(response.data[0])))
        assert wait_until(lambda: updates) and states[:1] == ["connected"]
        pv.write(7.0)
        assert wait_until(lambda: updates[-1] == 7.0)
        server.kill()
        assert wait_until(lambda: "disconnected" in states, 10), states
        assert not pv.connected
        before = len(updates)
        server.start()
        assert wait_until(lambda: states[-1] == "connected", 30), states
        assert wait_until(lambda: len(updates) > before, 10), "the subscription resumed"
        assert updates[-1] == 3.5  # the restarted server's initial value
        pv.write(8.5)
        assert wait_until(lambda: updates[-1] == 8.5)
        assert pv.read().data[0] == 8.5
    finally:
        server.kill()


def test_go_idle_then_read(caproto_server, make_context):
    ctx = make_context(caproto_server)
    (pv,) = ctx.get_pvs(caproto_server.pv("long"))
    first = pv.read().data[0]
    pv.go_idle()
    assert wait_until(lambda: not pv.connected)
    assert "(idle)" in repr(pv)
    assert pv.read().data[0] == first
    assert pv.connected and "CONNECTED" in repr(pv)
    # A PV with a live subscription declines to go idle.
    sub = pv.subscribe()
    got = threading.Event()
    sub.add_callback(lambda sub, response: got.set())
    assert got.wait(5)
    pv.go_idle()
    time.sleep(0.1)
    assert pv.connected
    sub.clear()


def test_blocking_inside_inline_callback_raises_would_deadlock(caproto_server, make_context):
    ctx = make_context(caproto_server, max_workers=0)
    (pv,) = ctx.get_pvs(caproto_server.pv("double"))
    pv.wait_for_connection(timeout=10)
    outcome = {}
    done = threading.Event()
    nested = threading.Event()

    def on_update(sub, response):
        if "error" in outcome:
            return
        start = time.monotonic()
        try:
            pv.read(timeout=5)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - start
        for blocking in (lambda: pv.write(1.0), lambda: pv.wait_for_connection(timeout=1)):
            try:
                blocking()
            except pvloom.WouldDeadlock:
                outcome.setdefault("more", 0)
                outcome["more"] += 1
        # The non-blocking forms are fine on an I/O thread.
        pv.read(wait=False, callback=lambda response: nested.set())
        done.set()

    sub = pv.subscribe()
    sub.add_callback(on_update)
    assert done.wait(10)
    assert isinstance(outcome["error"], pvloom.WouldDeadlock), outcome
    assert outcome["elapsed"] < 0.1 and outcome["more"] == 2
    assert nested.wait(5)
    sub.clear()
    assert pv.read().data is not None  # fine outside the callback


def test_callback_exception_is_reported_and_counted(caproto_server, make_context):
    ctx = make_context(caproto_server)
    (pv,) = ctx.get_pvs(caproto_server.pv("double"))
    reported = []
    ctx.set_error_hook(lambda origin, exc: reported.append((origin, exc)))
    ok = threading.Event()

    def bad(sub, response):
        raise RuntimeError("boom")

    sub = pv.subscribe()
    sub.add_callback(bad)
    sub.add_callback(lambda sub, response: ok.set())
    assert ok.wait(5)
    assert wait_until(lambda: reported)
    assert ctx.callback_errors >= 1
    assert isinstance(reported[0][1], RuntimeError) and reported[0][0] == "ca.subscription"
    pv.read(wait=False, callback=lambda response: 1 / 0)
    assert wait_until(lambda: any(isinstance(e, ZeroDivisionError) for _, e in reported))
    sub.clear()


def test_subscription_callbacks_tokens_and_signatures(caproto_server, make_context):
    ctx = make_context(caproto_server)
    (pv,) = ctx.get_pvs(caproto_server.pv("float"))
    sub = pv.subscribe(data_type="time")
    first, second = [], []
    token = sub.add_callback(lambda sub, response: first.append(response))
    assert token == 0
    assert wait_until(lambda: first)
    assert sub.subscriptionid is not None and sub.most_recent_response is not None
    assert sub.add_callback(lambda sub, response: second.append(response)) == 1
    assert second, "a late callback gets the most recent response at once"
    with pytest.warns(DeprecationWarning):
        sub.add_callback(lambda response: None)  # caproto's old f(response)
    sub.remove_callback(token)
    assert set(sub.callbacks) == {1, 2}
    pv.write(6.5)
    assert wait_until(lambda: second[-1].data[0] == 6.5)
    sub.clear()
    assert sub.callbacks == {} and sub.subscriptionid is None
    assert "Subscription to 'C:float'" in repr(sub)


def test_connection_and_access_rights_callbacks(caproto_server, make_context):
    ctx = make_context(caproto_server)
    states, rights = [], []
    rw, ro = ctx.get_pvs(
        caproto_server.pv("long"),
        caproto_server.pv("readonly"),
        connection_state_callback=lambda pv, state: states.append((pv.name, state)),
        access_rights_callback=lambda pv, r: rights.append((pv.name, r)),
    )
    assert wait_until(lambda: len(states) == 2 and len(rights) == 2), (states, rights)
    assert sorted(states) == [("C:long", "connected"), ("C:readonly", "connected")]
    assert dict(rights) == {"C:long": ca.AccessRights.READ | ca.AccessRights.WRITE, "C:readonly": ca.AccessRights.READ}
    late = []
    ctx.get_pvs(caproto_server.pv("long"), connection_state_callback=lambda pv, state: late.append(state))
    assert wait_until(lambda: late == ["connected"]), "run=True replays the current state"
    assert rw.time_since_last_heard() < 60
    assert ctx.broadcaster.time_since_last_heard()
    rw.circuit_manager.events_off()
    rw.circuit_manager.events_on()


def test_context_disconnect(caproto_server, make_context):
    ctx = make_context(caproto_server)
    (pv,) = ctx.get_pvs(caproto_server.pv("long"))
    pv.read()
    ctx.disconnect()
    with pytest.raises(ca.ContextDisconnectedError):
        ctx.get_pvs("C:long-again")


def test_caproto_tutorial_script(make_context):
    """The caproto tutorial, with only its imports changed, against caproto's demo IOC."""
    ioc = Server(["-m", "caproto.ioc_examples.random_walk"], "random_walk:", ready_line=None)
    try:
        env = dict(os.environ, **ca_env([ioc.port], free_udp_port()))
        script = ROOT / "examples" / "python" / "ca_tutorial.py"
        result = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "TUTORIAL OK" in result.stdout
        assert "ReadNotifyResponse(data=array([" in result.stdout
        assert "DBR_TIME_DOUBLE(status=" in result.stdout
        assert "(idle)" in result.stdout
    finally:
        ioc.kill()


def test_cancel_search_and_per_server_events(caproto_server, make_context):
    """SharedBroadcaster.cancel stops a search; a circuit manager pauses its server only."""
    from pvloom.ca import SharedBroadcaster

    broadcaster = SharedBroadcaster()
    ctx = make_context(caproto_server, broadcaster=broadcaster, timeout=5)
    ctx.get_pvs("no:such:pv:typo")
    broadcaster.cancel("no:such:pv:typo")
    deadline = time.monotonic() + 5
    while ctx._native.unanswered_searches() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ctx._native.unanswered_searches() == 0
    (pv,) = ctx.get_pvs(caproto_server.pv("double"))
    pv.wait_for_connection(timeout=5)
    manager = pv.circuit_manager
    manager.events_off()
    manager.events_on()
    assert pv.read().data[0] is not None
