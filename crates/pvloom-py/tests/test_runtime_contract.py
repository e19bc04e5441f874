"""The pvloom-core callback contract, seen from Python."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pvloom
from pvloom.sync import Event


def run_in_callback(rt, func):
    """Run func inside a runtime callback and return what it returned or raised."""
    box = {}
    done = threading.Event()

    def callback():
        try:
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            box["error"] = exc
        finally:
            done.set()

    rt.call_soon(callback)
    assert done.wait(10), "callback never ran"
    return box


def test_blocking_call_in_inline_callback_raises_would_deadlock_at_once():
    with pvloom.Runtime() as rt:
        event = Event()

        def blocking_wait():
            start = time.monotonic()
            try:
                event.wait(5)
            finally:
                blocking_wait.elapsed = time.monotonic() - start

        box = run_in_callback(rt, blocking_wait)
        assert isinstance(box.get("error"), pvloom.WouldDeadlock)
        assert blocking_wait.elapsed < 0.05

        pending = rt.submit(time.sleep, 0)  # a completion made outside the callback
        pending.result(10)
        never = pvloom.sync.AsyncResult()
        box = run_in_callback(rt, lambda: never.get(5))
        assert isinstance(box.get("error"), pvloom.WouldDeadlock)


def test_ordered_workers_may_block():
    with pvloom.Runtime(workers=2) as rt:
        event = Event()
        event.set()
        box = run_in_callback(rt, lambda: event.wait(1))
        assert box == {"value": True}
        names = run_in_callback(rt, lambda: threading.current_thread().name)
        assert "error" not in names


def test_exceptions_are_contained_counted_and_given_to_the_hook():
    with pvloom.Runtime() as rt:
        seen = []
        rt.set_error_hook(lambda origin, exc: seen.append((origin, type(exc).__name__, str(exc))))

        def fail(n):
            raise ValueError(f"bad {n}")

        for n in range(100):
            rt.call_soon(fail, n)
        after = rt.submit(lambda: "still running")
        assert after.result(10) == "still running"
        deadline = time.monotonic() + 10
        while rt.callback_errors < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rt.callback_errors == 100
        assert len(seen) == 100
        assert seen[0][0] == "runtime.call_soon"
        assert {kind for _, kind, _ in seen} == {"ValueError"}


def test_submit_delivers_value_and_exception():
    with pvloom.Runtime() as rt:
        assert rt.submit(lambda a, b=0: a + b, 40, b=2).result(10) == 42
        failing = rt.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failing.result(10)
        assert failing.done()
        assert isinstance(failing.exception(), ZeroDivisionError)

        got = []
        done = threading.Event()
        rt.submit(lambda: "later").add_done_callback(lambda c: (got.append(c.result()), done.set()))
        assert done.wait(10)
        assert got == ["later"]


def test_timeout_raises_timeout_error():
    with pvloom.Runtime() as rt:
        slow = rt.submit(time.sleep, 0.3)
        with pytest.raises(TimeoutError):
            slow.result(0.01)
        slow.result(5)


def test_other_python_threads_run_while_one_waits():
    """The GIL is released during a blocking wait."""
    event = Event()
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    time.sleep(0.05)
    before = counter[0]
    assert event.wait(0.5) is False
    progressed = counter[0] - before
    stop.set()
    spinner.join()
    assert progressed > 10_000, f"only {progressed} iterations while waiting"


def test_default_hook_prints_to_stderr_and_counts():
    script = textwrap.dedent(
        """
        import time, pvloom
        rt = pvloom.Runtime()
        def boom():
            raise RuntimeError("callback exploded")
        rt.call_soon(boom)
        print(rt.submit(lambda: "alive").result(10))
        deadline = time.monotonic() + 10
        while rt.callback_errors < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        print("errors", rt.callback_errors)
        rt.shutdown()
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "alive" in proc.stdout
    assert "errors 1" in proc.stdout
    assert "RuntimeError: callback exploded" in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_interrupts_a_blocking_wait():
    script = textwrap.dedent(
        """
        import sys, pvloom.sync
        print("waiting", flush=True)
        try:
            pvloom.sync.Event().wait()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(0)
        sys.exit(3)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "waiting"
        time.sleep(0.2)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "interrupted" in out
        assert time.monotonic() - start < 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_timers_and_thread_stats():
    with pvloom.Runtime(io_threads=3) as rt:
        fired = Event()
        ticks = []
        rt.call_later(0.02, fired.set)
        assert fired.wait(5)
        timer = rt.call_every(0.01, lambda: ticks.append(1))
        deadline = time.monotonic() + 5
        while len(ticks) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        timer.cancel()
        assert timer.cancelled and len(ticks) >= 3
        stats = rt.thread_stats()
        assert [s["name"] for s in stats] == ["pvloom-io-0", "pvloom-io-1", "pvloom-io-2"]
        assert all(0.0 <= s["busy_fraction"] <= 1.0 for s in stats)
        assert sum(s["callbacks"] for s in stats) >= 4
        assert rt.io_threads == 3


def test_interpreter_exits_cleanly_with_live_runtimes_and_threads():
    script = textwrap.dedent(
        """
        import time, pvloom
        from pvloom.sync import Thread
        ticks = []
        inline = pvloom.Runtime()
        ordered = pvloom.Runtime(workers=2)
        inline.call_every(0.001, ticks.append, 1)
        ordered.call_every(0.001, ticks.append, 2)
        worker = Thread(name="left-running")
        worker.start()
        time.sleep(0.2)
        print("leaving", len(ticks) > 0, flush=True)
        """
    )
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "leaving True" in proc.stdout


@contextlib.contextmanager
def one_busy_worker_and_one_place():
    """A runtime whose only worker is held (release it with the yielded gate) and whose
    queue holds one job: each new submit drops the oldest waiting one."""
    with pvloom.Runtime(workers=1, queue_capacity=1, overflow="drop_oldest") as rt:
        gate, started = Event(), Event()
        rt.call_soon(lambda: (started.set(), gate.wait(10)))
        assert started.wait(5)
        try:
            yield rt, gate
        finally:
            gate.set()


def test_submit_dropped_by_a_full_queue_fails_instead_of_hanging():
    with one_busy_worker_and_one_place() as (rt, gate):
        pending = [rt.submit(lambda i=i: i) for i in range(5)]
        gate.set()
        outcomes = []
        for completion in pending:
            try:
                outcomes.append(completion.result(5))
            except pvloom.PvloomError:
                outcomes.append("abandoned")
        assert outcomes[-1] == 4
        assert "abandoned" in outcomes


def test_a_callback_added_to_an_abandoned_completion_runs_at_once():
    # An abandoned completion with no callback yet kept an empty list that nobody
    # would run: a callback added afterwards was never called.
    with one_busy_worker_and_one_place() as (rt, gate):
        evicted = rt.submit(lambda: 1)
        rt.submit(lambda: 2)  # takes the only place in the queue: the first is dropped
        with pytest.raises(pvloom.PvloomError):
            evicted.result(5)
        called = []
        evicted.add_done_callback(called.append)
        gate.set()
        assert called == [evicted]


def test_odd_timeouts_do_not_panic():
    event = Event()
    event.set()
    assert event.wait(float("inf")) is True
    with pvloom.Runtime() as rt:
        timer = rt.call_later(1e300, lambda: None)
        timer.cancel()
        with pytest.raises(ValueError):
            rt.call_later(float("nan"), lambda: None)
