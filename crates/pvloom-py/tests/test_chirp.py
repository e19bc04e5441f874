"""pvloom.chirp, libchirp's Python pool API on pvloom's node.

pvloom ↔ pvloom in this process: the config and its checks, messages, echoes and
requests (sync and async), AUTO_RELEASE on and off, a handler that raises, slots
exhausted, stop and shutdown, the queue API, 100 threads of concurrent requests.

pvloom ↔ the real libchirp (PyPI libchirp 1.2.1b3): the real peer runs in a subprocess
(``chirp_peer.py`` with ``libchirp.pool``), with the interpreter from
``PVLOOM_CHIRP_PYTHON``, else the workspace's ``.venv`` (which ./test.sh fills); without
it these tests fail, since an interop test that did not run proves nothing. Both
directions, sync and async, requests, identities, the config checks' wording, and the
seed's ``pool_echo.py`` run with only its import changed.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import concurrent.futures
from concurrent.futures import Future
from pathlib import Path

import pytest

from pvloom import chirp_queue
from pvloom.chirp import CH_SHUTDOWN, CH_TIMEOUT, CH_TLS_ERROR, CH_VALUE_ERROR, Chirp, Config, Loop, Message, QueueChirp

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).resolve().parent
PEER = HERE / "chirp_peer.py"
WAIT = 10.0


def config(sync=True, **fields):
    c = Config()
    c.DISABLE_ENCRYPTION = True
    c.PORT = 0
    c.BIND_V4 = "127.0.0.1"
    c.SYNCHRONOUS = sync
    for name, value in fields.items():
        setattr(c, name, value)
    return c


def to(node, data=b"x"):
    msg = Message()
    msg.data = data
    msg.address = "127.0.0.1"
    msg.port = node.port
    return msg


@pytest.fixture
def loop():
    lp = Loop()
    yield lp
    lp.stop()


class Echo(Chirp):
    """Sends every message back (the seed's pool_echo, for many messages)."""

    def handler(self, msg):
        self.send(msg).result(timeout=WAIT)


class Inbox(Chirp):
    """Keeps what it receives in a queue."""

    def __init__(self, *args, **kwargs):
        self.inbox = queue.Queue()
        super().__init__(*args, **kwargs)

    def handler(self, msg):
        self.inbox.put(msg)


# -- config and messages ----------------------------------------------------------


def test_config_has_libchirps_fields_and_defaults():
    c = Config()
    assert (c.PORT, c.BACKLOG, c.TIMEOUT, c.REUSE_TIME) == (2998, 100, 5.0, 30.0)
    assert (c.SYNCHRONOUS, c.AUTO_RELEASE, c.DISABLE_ENCRYPTION, c.DISABLE_SIGNALS) == (True, True, False, False)
    assert (c.MAX_SLOTS, c.BUFFER_SIZE, c.MAX_MSG_SIZE) == (0, 0, 100 * 1024 * 1024)
    assert (c.BIND_V4, c.BIND_V6, c.IDENTITY) == ("0.0.0.0", "::", b"\0" * 16)
    assert c.CERT_CHAIN_PEM is None and c.DH_PARAMS_PEM is None
    c.BIND_V6 = "1:0:0::"
    assert c.BIND_V6 == "1::"
    c.TIMEOUT = 0.1
    assert c.TIMEOUT == pytest.approx(0.1) and c.TIMEOUT != 0.1, "a C float, as libchirp stores it"
    with pytest.raises(OverflowError):
        c.PORT = 70000
    with pytest.raises(OverflowError):
        c.BACKLOG = 256
    with pytest.raises(TypeError):
        c.PORT = "2998"
    with pytest.raises(ValueError):
        c.BIND_V4 = "127.0"
    c._sealed = True
    with pytest.raises(RuntimeError):
        c.AUTO_RELEASE = False


BAD_CONFIGS = [
    ("PORT", 34),
    ("BACKLOG", 200),
    ("TIMEOUT", 0.05),
    ("TIMEOUT", 2000),
    ("REUSE_TIME", 0.1),
    ("REUSE_TIME", 4000),
    ("TIMEOUT", 20),
    ("MAX_SLOTS", 33),
    ("BUFFER_SIZE", 100),
    ("DISABLE_ENCRYPTION", False),
]

CONFIG_CHECK = r"""
import importlib, socket, sys
api = importlib.import_module(sys.argv[1])
cases = %r
loop = api.Loop()
for name, value in cases:
    c = api.Config()
    c.DISABLE_ENCRYPTION = True
    c.SYNCHRONOUS = False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        c.PORT = s.getsockname()[1]
    setattr(c, name, value)
    try:
        api.Chirp(loop, c).stop()
        print(name, value, "accepted")
    except Exception as e:
        print(name, value, type(e).__name__, e, getattr(e, "ecode", None))
loop.stop()
""" % (BAD_CONFIGS,)


def test_config_checks_say_what_libchirps_say(loop, libchirp_python):
    ours = subprocess.run([sys.executable, "-c", CONFIG_CHECK, "pvloom.chirp"], capture_output=True, text=True, timeout=60)
    real = subprocess.run(
        [str(libchirp_python), "-c", CONFIG_CHECK, "libchirp.pool"], capture_output=True, text=True, timeout=60
    )
    assert real.returncode == 0, real.stderr
    assert ours.returncode == 0, ours.stderr
    # libchirp's texts start with the C file and line that raised them.
    where = re.compile(r"(?<=Error )\S+\.c: \d+ ")
    assert [" ".join(where.sub("", line).split()) for line in real.stdout.splitlines()] == ours.stdout.splitlines()
    assert "REUSE_TIME 0.1 accepted" in ours.stdout, "libchirp raises REUSE_TIME to 3 x TIMEOUT before its checks"


def test_a_new_message():
    m = Message()
    assert len(m.identity) == 16 and m.identity != b"\0" * 16
    assert (m.serial, m.header, m.data, m.address, m.port) == (0, b"", b"", "0.0.0.0", 0)
    assert m.remote_identity == b"\0" * 16 and m.has_slot is False
    assert m.release().result(timeout=1) is None
    assert m.release_slot().result(timeout=1) is None
    m.address = "1:0:0::"
    assert m.address == "1::"
    with pytest.raises(AssertionError):
        m.data = "text"
    with pytest.raises(AssertionError):
        m.header = "text"
    with pytest.raises(AssertionError):
        m.port = -1
    with pytest.raises(AssertionError):
        m.port = 65537
    with pytest.raises(ValueError):
        m.address = "127.0"


# -- pvloom <-> pvloom --------------------------------------------------------------


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_echo_round_trips(loop, sync):
    echo = Echo(loop, config(sync))
    client = Inbox(loop, config(sync))
    try:
        sent = {}
        futures = []
        for i in range(50):
            msg = to(echo, b"m%d" % i)
            sent[msg.identity] = msg.data
            futures.append(client.send(msg))
        for fut, msg in zip(futures, sent):
            assert fut.result(timeout=WAIT).identity == msg, "the send's result is the message"
        echoed = [client.inbox.get(timeout=WAIT) for _ in sent]
        assert {m.identity: m.data for m in echoed} == sent, "every message echoed once, identity kept"
        for m in echoed:
            assert m.remote_identity == echo.identity()
            assert (m.address, m.port) == ("127.0.0.1", echo.port)
    finally:
        client.stop()
        echo.stop()


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_request_gets_its_answer(loop, sync):
    echo = Echo(loop, config(sync))
    client = Chirp(loop, config(sync))
    try:
        msg = to(echo, b"question")
        req = client.request(msg)
        assert req.send_result(timeout=WAIT) is msg
        answer = req.result(timeout=WAIT)
        assert (answer.identity, answer.data) == (msg.identity, b"question")
        assert answer.remote_identity == echo.identity()
        assert answer.has_slot is False
        unreleased = client.request(to(echo, b"again"), auto_release=False).result(timeout=WAIT)
        assert unreleased.data == b"again"
    finally:
        client.stop()
        echo.stop()


def test_an_unanswered_request_times_out(loop):
    short = dict(TIMEOUT=0.2, REUSE_TIME=1.0)
    silent = Chirp(loop, config(False, **short))
    client = Chirp(loop, config(False, **short))
    try:
        req = client.request(to(silent))
        req.send_result(timeout=WAIT)
        with pytest.raises(TimeoutError) as raised:
            req.result(timeout=WAIT)
        assert raised.value.ecode == CH_TIMEOUT
    finally:
        client.stop()
        silent.stop()


class Slow(Chirp):
    """Sets ``entered`` when a handler starts (``threads``: the names of the threads
    running them), returns when ``leave`` is set."""

    def __init__(self, *args, **kwargs):
        self.entered, self.leave = threading.Event(), threading.Event()
        self.threads, self._threads_lock = [], threading.Lock()
        super().__init__(*args, **kwargs)

    def handler(self, msg):
        with self._threads_lock:
            self.threads.append(threading.current_thread().name)
        self.entered.set()
        self.leave.wait(WAIT)


def test_sync_send_completes_when_the_handler_returns_with_auto_release(loop):
    receiver = Slow(loop, config(True))
    entered, leave = receiver.entered, receiver.leave
    sender = Chirp(loop, config(True))
    try:
        fut = sender.send(to(receiver))
        assert entered.wait(WAIT)
        assert not fut.done(), "a synchronous send waits for the release after the handler"
        leave.set()
        fut.result(timeout=WAIT)
    finally:
        leave.set()
        sender.stop()
        receiver.stop()


def test_a_send_future_waited_for_from_many_threads_with_timeouts_and_callbacks(loop):
    # The thread that waits resolves the future itself; the resolver thread does it for
    # futures nobody waits on. Either way: one result, every waiter sees it, callbacks
    # run once, a timeout is not waited twice, and a cancelled future stays cancelled.
    receiver = Slow(loop, config(True))
    entered, leave = receiver.entered, receiver.leave
    sender = Chirp(loop, config(True))
    try:
        msg = to(receiver)
        fut = sender.send(msg)
        assert entered.wait(WAIT)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            fut.result(timeout=0.2)
        assert time.monotonic() - started < 1.5, "the timeout is waited once"
        with pytest.raises(TimeoutError):
            fut.exception(timeout=0)
        called = []
        fut.add_done_callback(lambda f: called.append(f.result()))
        got = []
        waiters = [threading.Thread(target=lambda: got.append(fut.result(timeout=WAIT))) for _ in range(8)]
        for t in waiters:
            t.start()
        time.sleep(0.05)
        leave.set()
        for t in waiters:
            t.join(WAIT)
        assert got == [msg] * 8
        assert called == [msg]
        assert fut.exception(timeout=0) is None
        # Nobody waits: the resolver resolves it.
        unwaited = sender.send(to(receiver))
        assert eventually(unwaited.done) and unwaited.result(timeout=0) is not None
        # Cancelled by its owner before the node finished: it stays cancelled.
        leave.clear()
        entered.clear()
        cancelled = sender.send(to(receiver))
        assert cancelled.cancel()
        assert entered.wait(WAIT)
        leave.set()
        with pytest.raises(concurrent.futures.CancelledError):
            cancelled.result(timeout=WAIT)
    finally:
        leave.set()
        sender.stop()
        receiver.stop()


def test_a_future_the_node_finished_directly_wakes_what_began_waiting_meanwhile():
    # The node stores an outcome directly into a future nobody has looked at (no
    # Condition yet), and can lose the GIL between looking and storing (pyo3's intern!
    # detaches the first time): a result(), wait() or done-callback that came then
    # finds the future pending and waits on a Condition. _finished_directly, which the
    # node calls when it finds a Condition after its stores, must wake all of them.
    from pvloom.chirp import _NodeFuture

    fut = _NodeFuture()
    got, waited, called = [], [], []
    fut.add_done_callback(lambda f: called.append(f.result()))
    waiters = [
        threading.Thread(target=lambda: got.append(Future.result(fut, WAIT))),
        threading.Thread(target=lambda: waited.append(concurrent.futures.wait([fut], WAIT))),
    ]
    for t in waiters:
        t.start()
    deadline = time.monotonic() + WAIT
    while len(fut._waiters) < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # the result() thread is in its Condition's wait too
    started = time.monotonic()
    fut._result, fut._state = "answer", "FINISHED"  # the node's direct stores
    fut._finished_directly()
    for t in waiters:
        t.join(WAIT)
    assert time.monotonic() - started < 2.0, "a waiter slept until its timeout"
    assert got == ["answer"]
    assert len(waited) == 1 and fut in waited[0].done
    assert called == ["answer"]


def test_without_auto_release_the_handler_releases(loop):
    receiver = Inbox(loop, config(True, AUTO_RELEASE=False))
    sender = Chirp(loop, config(True))
    try:
        fut = sender.send(to(receiver, b"hold"))
        held = receiver.inbox.get(timeout=WAIT)
        assert held.has_slot and not fut.done()
        assert held.release().result(timeout=WAIT) == (held.identity, held.serial)
        assert not held.has_slot
        fut.result(timeout=WAIT)
        assert held.release_slot().result(timeout=WAIT) is None, "a second release finds no slot"
    finally:
        sender.stop()
        receiver.stop()


def test_the_default_handler_releases_whatever_auto_release_says(loop):
    receiver = Chirp(loop, config(True, AUTO_RELEASE=False))
    sender = Chirp(loop, config(True))
    try:
        for i in range(3):
            sender.send(to(receiver, b"%d" % i)).result(timeout=WAIT)
    finally:
        sender.stop()
        receiver.stop()


def test_a_handler_that_raises_is_reported_and_the_node_goes_on(loop, caplog):
    class Fragile(Inbox):
        def handler(self, msg):
            if msg.data == b"boom":
                raise ValueError("handler failed on purpose")
            super().handler(msg)

    receiver = Fragile(loop, config(True))
    sender = Chirp(loop, config(True))
    try:
        sender.send(to(receiver, b"boom")).result(timeout=WAIT)
        sender.send(to(receiver, b"fine")).result(timeout=WAIT)
        assert receiver.inbox.get(timeout=WAIT).data == b"fine"
        assert any("handler failed on purpose" in (r.exc_text or str(r.exc_info)) for r in caplog.records)
    finally:
        sender.stop()
        receiver.stop()


def test_slots_exhausted_stop_the_reading_until_released(loop):
    receiver = Inbox(loop, config(False, MAX_SLOTS=2, AUTO_RELEASE=False))
    sender = Chirp(loop, config(False))
    try:
        futures = [sender.send(to(receiver, b"%d" % i)) for i in range(6)]
        held = [receiver.inbox.get(timeout=WAIT) for _ in range(2)]
        with pytest.raises(queue.Empty):
            # Absence: nothing more may arrive while both slots are held.
            receiver.inbox.get(timeout=0.3)
        held[0].release().result(timeout=WAIT)
        held.append(receiver.inbox.get(timeout=WAIT))
        for msg in held[1:]:
            msg.release()
        for _ in range(3):
            receiver.inbox.get(timeout=WAIT).release().result(timeout=WAIT)
        assert sorted(m.data for m in held) == [b"0", b"1", b"2"]
        for fut in futures:
            fut.result(timeout=WAIT)
    finally:
        sender.stop()
        receiver.stop()


def test_the_same_message_cannot_be_sent_twice_at_once(loop):
    receiver = Inbox(loop, config(True, AUTO_RELEASE=False))
    sender = Chirp(loop, config(True))
    try:
        msg = to(receiver)
        fut = sender.send(msg)
        with pytest.raises(RuntimeError, match="still sending"):
            sender.send(msg)
        receiver.inbox.get(timeout=WAIT).release()
        fut.result(timeout=WAIT)
        sender.send(msg)  # once done, again
        receiver.inbox.get(timeout=WAIT).release()
    finally:
        sender.stop()
        receiver.stop()


def test_stop_fails_what_waits_and_refuses_new_sends(loop):
    receiver = Inbox(loop, config(True, AUTO_RELEASE=False))
    sender = Chirp(loop, config(True))
    try:
        first = sender.send(to(receiver, b"held"))
        second = sender.send(to(receiver, b"queued"))
        receiver.inbox.get(timeout=WAIT)
        sender.stop()
        for fut in (first, second):
            with pytest.raises((RuntimeError, ConnectionError)):
                fut.result(timeout=WAIT)
        with pytest.raises(RuntimeError) as raised:
            sender.send(to(receiver, b"late")).result(timeout=WAIT)
        assert raised.value.ecode == CH_SHUTDOWN
    finally:
        sender.stop()
        receiver._node.release_all()
        receiver.stop()


def test_stop_with_an_unreleased_message_raises_after_timeout(loop):
    short = dict(TIMEOUT=0.2, REUSE_TIME=1.0)
    receiver = Inbox(loop, config(False, AUTO_RELEASE=False, **short))
    sender = Chirp(loop, config(False, **short))
    try:
        sender.send(to(receiver)).result(timeout=WAIT)
        receiver.inbox.get(timeout=WAIT)
        with pytest.raises(RuntimeError, match="maybe a message was not released"):
            receiver.stop()
        receiver.stop()  # stopping twice is fine
    finally:
        sender.stop()


def test_shutdown_is_the_executors_and_a_stopped_loop_refuses_chirps():
    lp = Loop()
    node = Chirp(lp, config(False), max_workers=2)
    assert node.loop is lp and node._max_workers == 2
    assert node.submit(lambda: 6 * 7).result(timeout=WAIT) == 42
    node.shutdown()
    with pytest.raises(RuntimeError):
        node.submit(lambda: 0)
    node.stop()
    lp.stop()
    assert not lp.running
    with pytest.raises(RuntimeError):
        Chirp(lp, config(False))
    with pytest.raises(RuntimeError):
        lp.run()


def eventually(condition, timeout=WAIT):
    """Poll ``condition`` until it holds or ``timeout`` passes; its last value."""
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)
    return condition()


def test_messages_the_pool_drops_unrun_are_released(loop):
    """shutdown(cancel_futures=True) drops what waits in the pool's queue: those
    messages are released, not leaked (the pool queues them without a Future)."""
    receiver = Slow(loop, config(False), max_workers=1)
    entered, leave = receiver.entered, receiver.leave
    sender = Chirp(loop, config(False))
    try:
        for i in range(5):
            sender.send(to(receiver, b"%d" % i)).result(timeout=WAIT)
        assert entered.wait(WAIT)
        assert eventually(lambda: receiver._node.held == 5), "one message in the handler, four queued"
        receiver.shutdown(wait=False, cancel_futures=True)
        assert eventually(lambda: receiver._node.held == 1), "the four queued ones released, the running one still held"
        leave.set()
        assert receiver._node.wait_released(WAIT), "the running one released after its handler"
    finally:
        leave.set()
        sender.stop()
        receiver.stop()


def test_the_pools_workers_take_messages_and_submitted_work_alike_and_after_shutdown_messages_are_released(loop):
    """Received messages go to the pool's workers without a Future; submit() still
    works beside them; all workers run handlers at once; once the pool is shut down a
    message is released unhandled (a synchronous sender is not left waiting)."""
    receiver = Slow(loop, config(False), max_workers=4)
    inside, leave = receiver.threads, receiver.leave
    sender = Chirp(loop, config(False))
    try:
        for i in range(4):
            sender.send(to(receiver, b"%d" % i)).result(timeout=WAIT)
        assert eventually(lambda: len(inside) == 4)
        assert len(set(inside)) == 4, "four handlers run at once on four workers"
        leave.set()
        assert receiver.submit(lambda x: x * 2, 21).result(timeout=WAIT) == 42
        assert receiver._node.wait_released(WAIT)
        receiver.shutdown()
        sync_sender = Chirp(loop, config(True))
        sync_receiver = Slow(loop, config(True))
        try:
            sync_receiver.shutdown()
            sync_sender.send(to(sync_receiver)).result(timeout=WAIT)
            assert sync_receiver._node.held == 0
        finally:
            sync_sender.stop()
            sync_receiver.stop()
    finally:
        leave.set()
        sender.stop()
        receiver.stop()


def test_a_done_callback_may_stop_the_loop():
    """Send futures resolve on the loop's resolver thread; stopping the chirp and the
    loop from a done-callback there must not wait for that thread itself."""
    lp = Loop()
    # The receiver on a loop of its own: its message is handed to its workers by its
    # own resolver, which the callback below does not hold up (stop() waits for it).
    receiver_loop = Loop()
    receiver = Chirp(receiver_loop, config(False))
    sender = QueueChirp(lp, config(False))
    stopped = threading.Event()

    def stop_everything(fut):
        sender.stop()
        lp.stop()
        stopped.set()

    try:
        sender.send(to(receiver)).add_done_callback(stop_everything)
        assert stopped.wait(WAIT), "the callback ran to its end"
        assert not lp.running
    finally:
        stopped.wait(WAIT)
        receiver.stop()
        receiver_loop.stop()


def test_the_queue_api(loop):
    echo = Echo(loop, config(False))
    client = QueueChirp(loop, config(False))
    assert chirp_queue.Chirp is QueueChirp
    try:
        msg = to(echo, b"queued")
        client.send(msg).result(timeout=WAIT)
        got = client.get(timeout=WAIT)
        assert (got.identity, got.data, got.has_slot) == (msg.identity, b"queued", False)
        client.disable_queue = True
        client.send(to(echo)).result(timeout=WAIT)
        with pytest.raises(queue.Empty):
            client.get(timeout=0.3)
    finally:
        client.stop()
        echo.stop()


# -- TLS (certificates made here with the openssl CLI) -------------------------------


def make_certs(directory, name):
    """libchirp's TLS files: CERT_CHAIN_PEM (node certificate, CA certificate, node key,
    in one file) and DH_PARAMS_PEM. The DH parameters are RFC 7919's ffdhe2048 group:
    generating fresh ones takes minutes."""
    directory = Path(directory)

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ca_key, ca, key, csr, cert = (directory / f"{name}-{part}.pem" for part in ("ca-key", "ca", "key", "csr", "cert"))
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", f"/CN={name} test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=keyCertSign,cRLSign",
    )  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=chirp node")
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-set_serial", "1",
        "-days", "2", "-out", str(cert),
    )  # fmt: skip
    chain = directory / f"{name}-chain.pem"
    chain.write_bytes(cert.read_bytes() + ca.read_bytes() + key.read_bytes())
    dh = directory / f"{name}-dh.pem"
    openssl("genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048", "-out", str(dh))
    return chain, dh


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("tls"), "ours")


def tls_config(certs, sync=True, always=True, **fields):
    """Encryption on; ``always``: on 127.0.0.1 too (libchirp skips loopback)."""
    chain, dh = certs
    fields.update(DISABLE_ENCRYPTION=False, CERT_CHAIN_PEM=str(chain), DH_PARAMS_PEM=str(dh), ALWAYS_ENCRYPT=always)
    return config(sync, **fields)


def test_pem_files_openssl_refuses_fail_the_start_with_ch_tls_error(loop, tmp_path, certs):
    """libchirp's init fails with CH_TLS_ERROR here, which its Python layer raises as
    RuntimeError (libchirp 1.2.1b3 itself then aborts on a double free, so this is not
    compared with it)."""
    junk = tmp_path / "junk.pem"
    junk.write_text("not PEM at all\n")
    chain, dh = certs
    for bad in (dict(CERT_CHAIN_PEM=str(junk)), dict(DH_PARAMS_PEM=str(junk))):
        c = tls_config(certs)
        for name, value in bad.items():
            setattr(c, name, value)
        with pytest.raises(RuntimeError, match="Could not start encryption") as raised:
            Chirp(loop, c)
        assert raised.value.ecode == CH_TLS_ERROR
        assert str(junk) in str(raised.value), "the error names the file refused"


TLS_CONFIG_CHECK = r"""
import importlib, socket, sys
api = importlib.import_module(sys.argv[1])
chain, dh, missing = sys.argv[2:5]
cases = [
    {},
    {"DH_PARAMS_PEM": dh},
    {"CERT_CHAIN_PEM": chain},
    {"CERT_CHAIN_PEM": missing, "DH_PARAMS_PEM": dh},
    {"CERT_CHAIN_PEM": chain, "DH_PARAMS_PEM": missing},
    {"CERT_CHAIN_PEM": chain, "DH_PARAMS_PEM": dh},
]
loop = api.Loop()
for case in cases:
    c = api.Config()
    c.DISABLE_ENCRYPTION = False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        c.PORT = s.getsockname()[1]
    for name, value in case.items():
        setattr(c, name, value)
    try:
        api.Chirp(loop, c).stop()
        print(sorted(case), "accepted")
    except Exception as e:
        print(sorted(case), type(e).__name__, e, getattr(e, "ecode", None))
loop.stop()
"""


def test_pem_files_unset_or_missing_say_what_libchirps_say(libchirp_python, tmp_path, certs):
    chain, dh = certs
    args = [TLS_CONFIG_CHECK, str(chain), str(dh), str(tmp_path / "missing.pem")]
    ours = subprocess.run([sys.executable, "-c", args[0], "pvloom.chirp", *args[1:]], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    real = subprocess.run([str(libchirp_python), "-c", args[0], "libchirp.pool", *args[1:]], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert real.returncode == 0, real.stderr
    assert ours.returncode == 0, ours.stderr
    where = re.compile(r"(?<=Error )\S+\.c: \d+ ")
    assert [" ".join(where.sub("", line).split()) for line in real.stdout.splitlines()] == ours.stdout.splitlines()
    assert ours.stdout.splitlines()[-1].endswith("accepted"), "good files start a node"


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_two_pvloom_nodes_over_tls(loop, certs, sync):
    echo = Echo(loop, tls_config(certs, sync))
    client = Inbox(loop, tls_config(certs, sync))
    try:
        sent = {}
        futures = []
        for i in range(30):
            msg = to(echo, b"tls %d" % i)
            sent[msg.identity] = msg.data
            futures.append(client.send(msg))
        for fut in futures:
            fut.result(timeout=WAIT)
        echoed = [client.inbox.get(timeout=WAIT) for _ in sent]
        assert {m.identity: m.data for m in echoed} == sent
        assert {m.remote_identity for m in echoed} == {echo.identity()}
        msg = to(echo, b"a request over tls")
        answer = client.request(msg).result(timeout=WAIT)
        assert (answer.identity, answer.data) == (msg.identity, msg.data)
    finally:
        client.stop()
        echo.stop()


def test_a_tls_node_speaks_tls_with_the_chirp_handshake_inside(loop, certs):
    """A TLS client of Python's own ssl module, with a certificate of the same CA, gets
    the node's 18-byte chirp handshake (its port and identity) inside TLS 1.2+."""
    import ssl

    chain, _ = certs
    node = Chirp(loop, tls_config(certs))
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.load_verify_locations(str(chain))
        context.load_cert_chain(str(chain))
        with socket.create_connection(("127.0.0.1", node.port), timeout=WAIT) as raw:
            with context.wrap_socket(raw) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                handshake = b""
                while len(handshake) < 18:
                    chunk = tls.recv(18 - len(handshake))
                    assert chunk, "the node closed before its handshake"
                    handshake += chunk
        assert int.from_bytes(handshake[:2], "big") == node.port
        assert handshake[2:] == node.identity()
    finally:
        node.stop()


def test_loopback_is_not_encrypted_unless_always_encrypt(loop, certs):
    """libchirp's rule: 127.0.0.1 goes in clear text even with encryption on, so a node
    with encryption disabled talks to it; with ALWAYS_ENCRYPT it cannot."""
    clear = Chirp(loop, config(True, TIMEOUT=0.5, REUSE_TIME=2.0))
    open_loopback = Inbox(loop, tls_config(certs, always=False))
    strict = Inbox(loop, tls_config(certs, always=True))
    try:
        clear.send(to(open_loopback, b"in clear")).result(timeout=WAIT)
        assert open_loopback.inbox.get(timeout=WAIT).data == b"in clear"
        with pytest.raises((ConnectionError, TimeoutError)):
            clear.send(to(strict, b"refused")).result(timeout=WAIT)
        assert strict.inbox.empty(), "nothing reaches a node that requires TLS from a clear-text peer"
    finally:
        clear.stop()
        open_loopback.stop()
        strict.stop()


def test_a_certificate_from_another_ca_is_refused(loop, tmp_path, certs):
    theirs = make_certs(tmp_path, "theirs")
    server = Inbox(loop, tls_config(certs, True))
    stranger = Chirp(loop, tls_config(theirs, True, TIMEOUT=0.5, REUSE_TIME=2.0))
    friend = Chirp(loop, tls_config(certs, True))
    try:
        with pytest.raises((ConnectionError, TimeoutError)):
            stranger.send(to(server, b"let me in")).result(timeout=WAIT)
        friend.send(to(server, b"hello")).result(timeout=WAIT)
        assert server.inbox.get(timeout=WAIT).data == b"hello", "the server still serves its own CA's nodes"
        assert server.inbox.empty()
    finally:
        stranger.stop()
        friend.stop()
        server.stop()


def test_concurrent_requests_each_get_their_own_answer(loop):
    """100 threads each make requests one after the other against one echo node;
    every answer must reach its own future (libchirp's pool loses some).
    PVLOOM_CHIRP_FULL=1 makes it 1 000 requests per thread (100 000 in all)."""
    threads, per_thread = 100, 1000 if os.environ.get("PVLOOM_CHIRP_FULL") else 100
    echo = Echo(loop, config(False), max_workers=8)
    client = Chirp(loop, config(False))
    failures, answered = [], [0]
    lock = threading.Lock()

    def work(t):
        ok = 0
        try:
            for i in range(per_thread):
                msg = to(echo, b"%d/%d" % (t, i))
                answer = client.request(msg).result(timeout=WAIT)
                if (answer.identity, answer.data) != (msg.identity, msg.data):
                    raise AssertionError("thread %d got another's answer: %r" % (t, answer.data))
                ok += 1
        except Exception as e:
            with lock:
                failures.append(repr(e))
        with lock:
            answered[0] += ok

    try:
        start = time.monotonic()
        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=600)
        elapsed = time.monotonic() - start
        assert not failures, failures[:5]
        assert answered[0] == threads * per_thread
        print("\n%d concurrent requests in %.2f s: %.0f/s" % (answered[0], elapsed, answered[0] / elapsed))
    finally:
        client.stop()
        echo.stop()


# -- against the real libchirp ---------------------------------------------------


def _has_libchirp(python: Path) -> bool:
    try:
        return (
            subprocess.run([str(python), "-c", "import libchirp.pool"], capture_output=True, timeout=60).returncode
            == 0
        )
    except OSError:
        return False


@pytest.fixture(scope="session")
def libchirp_python() -> Path:
    """The interpreter with the real libchirp: PVLOOM_CHIRP_PYTHON, else the
    workspace's .venv. Missing is a failure, not a skip."""
    configured = os.environ.get("PVLOOM_CHIRP_PYTHON")
    if configured:
        if not _has_libchirp(Path(configured)):
            pytest.fail(f"PVLOOM_CHIRP_PYTHON={configured} cannot import libchirp.pool")
        return Path(configured)
    venv = HERE.parents[2] / ".venv" / "bin" / "python"
    if not _has_libchirp(venv):
        pytest.fail(
            "no Python with libchirp: run ./test.sh, or CFLAGS='-DFIPS_mode_set(x)=((void)0)' .venv/bin/pip install "
            "libchirp==1.2.1b3 (needs libuv1-dev libffi-dev libssl-dev), or set PVLOOM_CHIRP_PYTHON"
        )
    return venv


class Peer:
    """A chirp peer subprocess (chirp_peer.py); killed by its PID when done."""

    def __init__(self, python, module, role, mode, count, target=None, env=None):
        args = [str(python), str(PEER), module, role, mode, str(count)] + ([str(target)] if target else [])
        env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.line(30)
        assert ready.startswith("ready "), f"peer said {ready!r}: {self.proc.stderr.read() if self.proc.poll() else ''}"
        _, identity, port = ready.split()
        self.identity, self.port = bytes.fromhex(identity), int(port)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout=WAIT):
        line = self.lines.get(timeout=timeout)
        assert line is not None, "the peer ended early"
        return line

    def finish(self, timeout=60):
        """Wait for it to exit; its exit status and every line it printed after ready."""
        status = self.proc.wait(timeout=timeout)
        out = []
        while True:
            line = self.lines.get(timeout=WAIT)
            if line is None:
                return status, out, self.proc.stderr.read()
            out.append(line)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT)


@pytest.fixture
def peers():
    started = []
    yield started
    for peer in started:
        peer.kill()


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_pvloom_sends_and_requests_to_a_libchirp_echo(loop, libchirp_python, peers, sync):
    count, requests = 30, 10
    mode = "sync" if sync else "async"
    echo = Peer(libchirp_python, "libchirp.pool", "echo", mode, count + requests)
    peers.append(echo)
    client = Inbox(loop, config(sync))
    try:
        sent = {}
        futures = []
        for i in range(count):
            msg = Message()
            msg.data, msg.address, msg.port = b"pvloom %d" % i, "127.0.0.1", echo.port
            sent[msg.identity] = msg.data
            futures.append(client.send(msg))
        for fut in futures:
            fut.result(timeout=WAIT)
        echoed = [client.inbox.get(timeout=WAIT) for _ in range(count)]
        assert {m.identity: m.data for m in echoed} == sent, "every message echoed once by libchirp, identity kept"
        assert {(m.remote_identity, m.address, m.port) for m in echoed} == {(echo.identity, "127.0.0.1", echo.port)}
        for i in range(requests):
            msg = Message()
            msg.data, msg.address, msg.port = b"request %d" % i, "127.0.0.1", echo.port
            req = client.request(msg)
            req.send_result(timeout=WAIT)
            answer = req.result(timeout=WAIT)
            assert (answer.identity, answer.data, answer.remote_identity) == (msg.identity, msg.data, echo.identity)
        status, out, err = echo.finish()
        assert status == 0, (out, err)
    finally:
        client.stop()


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
@pytest.mark.parametrize("role", ["send", "request"])
def test_a_libchirp_node_talks_to_a_pvloom_echo(loop, libchirp_python, peers, sync, role):
    count = 30
    senders = []

    class Recording(Echo):
        def handler(self, msg):
            senders.append(msg.remote_identity)
            super().handler(msg)

    echo = Recording(loop, config(sync))
    try:
        sender = Peer(libchirp_python, "libchirp.pool", role, "sync" if sync else "async", count, echo.port)
        peers.append(sender)
        status, out, err = sender.finish()
        assert status == 0, (out, err)
        if role == "request":
            # libchirp's pool may lose answers to its request race; each lost one must
            # still have arrived (at its handler): pvloom answered every request.
            matched = int(next(line for line in out if line.startswith("answers")).split()[1])
            lost, late = (int(w) for w in next(line for line in out if line.startswith("lost")).split()[1::2])
            assert matched + lost == count and late == lost, out
        else:
            assert f"answers {count} of {count} match" in out
        if role == "send":
            assert f"remotes {echo.identity().hex()}" in out, "libchirp sees pvloom's identity"
        assert set(senders) == {sender.identity}, "pvloom sees libchirp's identity"
    finally:
        echo.stop()


def peer_tls(certs):
    """chirp_peer.py's TLS environment: these files, loopback encrypted too."""
    chain, dh = certs
    return {"CHIRP_CERT_CHAIN": str(chain), "CHIRP_DH_PARAMS": str(dh), "CHIRP_ALWAYS_ENCRYPT": "1"}


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_pvloom_sends_and_requests_to_a_libchirp_echo_over_tls(loop, libchirp_python, peers, certs, sync):
    count, requests = 20, 5
    echo = Peer(libchirp_python, "libchirp.pool", "echo", "sync" if sync else "async", count + requests,
                env=peer_tls(certs))  # fmt: skip
    peers.append(echo)
    client = Inbox(loop, tls_config(certs, sync))
    try:
        sent = {}
        futures = []
        for i in range(count):
            msg = Message()
            msg.data, msg.address, msg.port = b"pvloom tls %d" % i, "127.0.0.1", echo.port
            sent[msg.identity] = msg.data
            futures.append(client.send(msg))
        for fut in futures:
            fut.result(timeout=WAIT)
        echoed = [client.inbox.get(timeout=WAIT) for _ in range(count)]
        assert {m.identity: m.data for m in echoed} == sent, "libchirp echoed every message over TLS"
        assert {m.remote_identity for m in echoed} == {echo.identity}
        for i in range(requests):
            msg = Message()
            msg.data, msg.address, msg.port = b"tls request %d" % i, "127.0.0.1", echo.port
            answer = client.request(msg).result(timeout=WAIT)
            assert (answer.identity, answer.data) == (msg.identity, msg.data)
        status, out, err = echo.finish()
        assert status == 0, (out, err)
    finally:
        client.stop()


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_a_libchirp_node_talks_to_a_pvloom_echo_over_tls(loop, libchirp_python, peers, certs, sync):
    count = 20
    echo = Echo(loop, tls_config(certs, sync))
    try:
        sender = Peer(libchirp_python, "libchirp.pool", "send", "sync" if sync else "async", count, echo.port,
                      env=peer_tls(certs))  # fmt: skip
        peers.append(sender)
        status, out, err = sender.finish()
        assert status == 0, (out, err)
        assert f"answers {count} of {count} match" in out
        assert f"remotes {echo.identity().hex()}" in out
    finally:
        echo.stop()


def test_a_libchirp_node_without_tls_cannot_reach_a_pvloom_node_that_requires_it(
    loop, libchirp_python, peers, certs
):
    """The negative of the two above: the same libchirp sender in clear text gets
    nothing through to an ALWAYS_ENCRYPT pvloom node (so those did run over TLS)."""
    node = Inbox(loop, tls_config(certs, False))
    try:
        sender = Peer(libchirp_python, "libchirp.pool", "request", "async", 1, node.port)
        peers.append(sender)
        status, out, err = sender.finish()
        assert status == 1, (out, err)
        assert "answers 0 of 1 match" in out
        assert node.inbox.empty()
    finally:
        node.stop()


SEED_POOL_ECHO = '''\
import concurrent.futures
from concurrent.futures import Future
from libchirp.pool import Chirp, Config, Loop
res = Future()
class MyChirp(Chirp):
    def handler(self, msg):
        print(msg.data)
        res.set_result(self.send(msg).result())
loop = Loop(); config = Config()
config.DISABLE_ENCRYPTION = True
# Workers are usually asynchronous
config.SYNCHRONOUS = False
try:
    chirp = MyChirp(loop, config)
    try:
        res.result()
    finally:
        chirp.stop()
finally:
    loop.stop()
'''

# Runs an unmodified script with pvloom.chirp's default PORT moved to a free one (the
# script itself listens on the default, 2998, which the host may be using).
ON_PORT = (
    "import runpy, sys, pvloom.chirp, pvloom.chirp_queue; pvloom.chirp.DEFAULT_PORT = int(sys.argv[1]); "
    "runpy.run_path(sys.argv[2], run_name='__main__')"
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc):
    end = time.monotonic() + 30
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.parametrize(
    "script,import_line",
    [
        (SEED_POOL_ECHO, "from pvloom.chirp import Chirp, Config, Loop"),
        (
            # python-chirp's examples/queue_echo.py
            "from libchirp.queue import Chirp, Config, Loop, Message\n"
            "loop = Loop(); config = Config()\nconfig.DISABLE_ENCRYPTION = True\n"
            "# Workers are usually asynchronous\nconfig.SYNCHRONOUS = False\n"
            "try:\n    chirp = Chirp(loop, config)\n    msg = chirp.get()\n    print(msg.data)\n"
            "    chirp.send(msg).result()\n    msg.release().result()\nfinally:\n    chirp.stop()\n    loop.stop()\n",
            "from pvloom.chirp_queue import Chirp, Config, Loop, Message",
        ),
    ],
    ids=["seed-pool_echo", "queue_echo"],
)
def test_a_libchirp_script_with_its_import_changed_echoes_a_real_libchirp_sender(
    libchirp_python, peers, tmp_path, script, import_line
):
    lines = script.splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.startswith("from libchirp."))
    lines[index] = import_line + "\n"
    path = tmp_path / "echo.py"
    path.write_text("".join(lines))
    assert sum(a != b for a, b in zip(script.splitlines(), path.read_text().splitlines())) == 1
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", ON_PORT, str(port), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        sender = Peer(libchirp_python, "libchirp.pool", "send", "async", 1, port)
        peers.append(sender)
        status, out, err = sender.finish()
        assert status == 0, (out, err)
        assert "answers 1 of 1 match" in out
        echo_out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert echo_out.strip() == "b'libchirp.pool 0'"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)

