"""pvloom.sync primitives from Python threads."""

import queue
import subprocess
import sys
import threading
import time

import pytest

import pvloom
from pvloom.sync import AsyncResult, Event, Launcher, Lock, Queue, RLock, Thread, ThreadResource


def test_queue_many_threads_lose_and_duplicate_nothing():
    q = Queue(maxsize=16)
    n_threads, per = 8, 500
    got = []
    got_lock = threading.Lock()

    def producer(base):
        for i in range(per):
            q.put(base + i, timeout=10)

    def consumer():
        mine = [q.get(timeout=10) for _ in range(per)]
        with got_lock:
            got.extend(mine)

    threads = [threading.Thread(target=producer, args=(t * per,)) for t in range(n_threads)]
    threads += [threading.Thread(target=consumer) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(n_threads * per))
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    small = Queue(maxsize=1)
    small.put(1)
    with pytest.raises(queue.Full):
        small.put(2, timeout=0.01)
    with pytest.raises(queue.Full):
        small.put_nowait(2)


def test_lock_and_rlock():
    lock = Lock()
    counter = [0]

    def bump():
        for _ in range(2000):
            with lock:
                value = counter[0]
                counter[0] = value + 1

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter[0] == 16000
    assert lock.acquire()
    assert lock.acquire(timeout=0.01) is False
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()

    rlock = RLock()
    with rlock:
        with rlock:
            other = []
            t = threading.Thread(target=lambda: other.append(rlock.acquire(timeout=0.01)))
            t.start()
            t.join()
            assert other == [False]
    t = threading.Thread(target=lambda: other.append(rlock.acquire(blocking=False) and rlock.release() is None))
    t.start()
    t.join()
    assert other[-1] is True


def test_async_result_value_and_exception():
    result = AsyncResult()
    assert not result.ready()
    threading.Timer(0.02, result.set, args=(7,)).start()
    assert result.get(timeout=5) == 7
    assert result.successful()
    with pytest.raises(pvloom.PvloomError):
        result.set(8)

    failing = AsyncResult()
    failing.set(KeyError("missing"))
    with pytest.raises(KeyError):
        failing.get()
    assert failing.ready() and not failing.successful()
    assert AsyncResult().wait(0.01) is False


def test_launcher_runs_on_its_owner_thread():
    launcher = Launcher()
    owner = threading.get_ident()
    results = []

    def caller():
        results.append(launcher.apply(lambda x: (threading.get_ident(), x * 2), 21))

    t = threading.Thread(target=caller)
    t.start()
    while t.is_alive():
        launcher.serve(timeout=0.05)
    t.join()
    assert results == [(owner, 42)]
    assert launcher.apply(lambda: "inline") == "inline"  # the owner itself: runs at once


def test_thread_apply_spawn_stop_get():
    worker = Thread(name="py-worker")
    worker.start()
    assert worker.apply(lambda: threading.current_thread().name) != threading.current_thread().name
    assert worker.apply_async(lambda a, b: a * b, 6, 7).result(5) == 42
    hits = Event()
    worker.spawn(hits.set)
    assert hits.wait(5)
    worker.stop(timeout=5)
    assert not worker.is_alive()

    def main(ctx):
        served = 0
        while not ctx.should_stop():
            served += ctx.serve(0.05)
        return served

    serving = Thread(main, name="py-main")
    serving.start()
    serving.apply(lambda: None)
    serving.stop(wait=False)
    assert serving.get(timeout=5) >= 1

    failing = Thread(lambda ctx: 1 / 0)
    failing.start()
    with pytest.raises(ZeroDivisionError):
        failing.get(timeout=5)


def test_threads_started_without_waiting_are_all_stopped_at_exit():
    # Starting one thread pruned the exit registry of every thread not alive yet, so
    # one started a moment before without waiting was never stopped at exit (and went
    # on calling into a finalizing interpreter).
    script = """
import sys
from pvloom.sync import Thread
def main(ctx):
    while not ctx.should_stop():
        ctx.serve(0.05)
    print("stopped", flush=True)
for i in range(4):
    Thread(main, name="exit-%d" % i).start(wait=False)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # Printed by four threads at once: their lines may interleave.
    assert done.stdout.count("stopped") == 4, done.stdout + done.stderr


def test_thread_resource_per_thread_values():
    made = []
    resource = ThreadResource(lambda: made.append(1) or object())
    mine = resource.get()
    assert resource.get() is mine
    others = []
    t = threading.Thread(target=lambda: others.append(resource.get()))
    t.start()
    t.join()
    assert others[0] is not mine
    assert len(made) == 2
    deadline = time.monotonic() + 5
    while len(resource) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(resource) == 1, "the ended thread's value was dropped"
    assert list(resource) == [mine]
    assert resource.pop() is mine
    assert resource.pop() is None


# HubTrigger: the hub is the launcher the creating thread serves.


def test_hub_trigger_runs_on_the_creating_thread_and_coalesces():
    import threading as _t

    from pvloom.sync import HubTrigger, Launcher

    hub = Launcher.current()
    ran_on = []
    trigger = HubTrigger(lambda: ran_on.append(_t.get_ident()))
    senders = [_t.Thread(target=lambda: [trigger.send() for _ in range(1000)]) for _ in range(4)]
    for s in senders:
        s.start()
    for s in senders:
        s.join()
    while hub.pending():
        hub.run_pending()
    assert 1 <= len(ran_on) <= 4000
    assert set(ran_on) == {_t.get_ident()}
    assert not trigger.pending()


def test_hub_trigger_blocking_runs_inline_on_the_hub_and_exceptions_stay_in_the_hub(monkeypatch):
    import sys

    from pvloom.sync import HubTrigger, Launcher

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))
    runs = []
    assert HubTrigger(lambda: runs.append(1), blocking=True).send()
    assert runs == [1]

    def bad():
        raise ValueError("hub trigger failed")

    failing = HubTrigger(bad)
    assert failing.send()
    Launcher.current().run_pending()
    assert [str(e) for e in reported] == ["hub trigger failed"]
    assert failing.send()
    Launcher.current().run_pending()
    assert len(reported) == 2


def test_hub_trigger_made_in_a_pvloom_thread_runs_there():
    import threading as _t

    from pvloom.sync import HubTrigger, Thread

    made = Queue(0)
    ran_on = Queue(0)

    def main(ctx):
        made.put(HubTrigger(lambda: ran_on.put(_t.get_ident())), True, None)
        while not ctx.should_stop():
            ctx.serve(0.05)
        return _t.get_ident()

    thread = Thread(main)
    thread.start()
    trigger = made.get(True, 5)
    trigger.send()
    ident = ran_on.get(True, 5)
    thread.stop()
    assert thread.get(5) == ident != _t.get_ident()


def test_hub_trigger_dropped_cancels_its_pending_run():
    from pvloom.sync import HubTrigger, Launcher

    runs = []
    trigger = HubTrigger(lambda: runs.append(1))
    trigger.send()
    del trigger
    Launcher.current().run_pending()
    assert runs == []
