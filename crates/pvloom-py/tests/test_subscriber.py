"""pvloom.sync.Subscriber: states, wait/timeout, sequential and parallel modes, faults."""

import asyncio
import threading

import pytest

from pvloom.sync import FAULT, INIT, OFF, ON, Event, Killed, Subscriber


class Counter(Subscriber):
    """Emits `count` integers (or until stopped), then waits for stop when `hold`."""

    def __init__(self, count, hold=False, slow=None, fail_listen=None, fail_consume=None, **kw):
        super().__init__(**kw)
        self.count, self.hold, self.slow = count, hold, slow
        self.fail_listen, self.fail_consume = fail_listen, fail_consume
        self.consumed = []
        self.consumer_threads = set()
        self.listener_threads = set()

    def listen(self, emit):
        self.listener_threads.add(threading.current_thread().name)
        for i in range(self.count):
            if self.stopping():
                return
            if i == self.fail_listen:
                raise ValueError("listener broke")
            emit(i)
        if self.hold:
            self.wait_stop()

    def consume(self, event):
        self.consumer_threads.add(threading.current_thread().name)
        if self.slow is not None:
            self.slow.wait(0.001)
        if event == self.fail_consume:
            raise KeyError("consumer broke")
        self.consumed.append(event)


MODES = ["sequential", "parallel"]


@pytest.mark.parametrize("mode", MODES)
def test_init_on_off_and_everything_consumed_in_order(mode):
    gate = Event()

    class Gated(Counter):
        # Held until ON was seen: 1 000 events can otherwise end before the assert.
        def listen(self, emit):
            gate.wait(5)
            super().listen(emit)

    sub = Gated(1000, mode=mode, maxsize=8)
    assert sub.state == INIT and not sub.done() and sub.duration() == 0.0
    sub.start()
    assert sub.state == ON
    gate.set()
    sub.join(5)
    assert sub.state == OFF and sub.done() and sub.error is None
    assert sub.consumed == list(range(1000))
    first = sub.duration()
    assert first > 0 and sub.duration() == first


def test_sequential_runs_both_halves_in_one_thread_parallel_in_two():
    seq = Counter(10, mode="sequential")
    seq.start()
    seq.join(5)
    assert seq.listener_threads == seq.consumer_threads and len(seq.listener_threads) == 1
    par = Counter(10, mode="parallel")
    par.start()
    par.join(5)
    assert par.listener_threads.isdisjoint(par.consumer_threads)


def test_a_slow_consumer_behind_a_bounded_queue_loses_nothing():
    sub = Counter(300, mode="parallel", maxsize=2, slow=Event())
    sub.start()
    sub.join(10)
    assert sub.state == OFF and sub.consumed == list(range(300))


@pytest.mark.parametrize("mode", MODES)
def test_stop_with_wait_goes_off_and_join_times_out_before(mode):
    sub = Counter(5, hold=True, mode=mode)
    sub.start(wait=True)
    with pytest.raises(TimeoutError):
        sub.join(0.05)
    assert sub.state == ON and not sub.done()
    sub.stop(wait=True, timeout=5)
    assert sub.state == OFF and sub.consumed == list(range(5))


@pytest.mark.parametrize("mode", MODES)
def test_kill_goes_fault_and_keeps_the_cause(mode):
    sub = Counter(5, hold=True, mode=mode)
    sub.start()
    sub.kill(wait=True, timeout=5)
    assert sub.state == FAULT and isinstance(sub.error, Killed) and sub.exception is sub.error


def test_kill_while_the_listener_is_blocked_on_a_full_queue():
    never = Event()

    class Stuck(Counter):
        def consume(self, event):
            never.wait(10)

    sub = Stuck(100, mode="parallel", maxsize=1)
    sub.start()
    with pytest.raises(TimeoutError):
        sub.stop(wait=True, timeout=0.1)
    sub.kill(wait=True, timeout=5)
    never.set()
    assert sub.state == FAULT
    for t in sub._threads:
        t.join(5)
        assert not t.is_alive()


@pytest.mark.parametrize("mode", MODES)
def test_listener_exception_faults_with_the_cause(mode):
    sub = Counter(10, fail_listen=3, mode=mode)
    sub.start()
    sub.join(5)
    assert sub.state == FAULT and isinstance(sub.error, ValueError)
    assert str(sub.error) == "listener broke"


@pytest.mark.parametrize("mode", MODES)
def test_consumer_exception_faults_with_the_cause(mode):
    sub = Counter(10, fail_consume=4, mode=mode)
    sub.start()
    sub.join(5)
    assert sub.state == FAULT and isinstance(sub.error, KeyError)
    assert sub.consumed == [0, 1, 2, 3]


def test_wrong_transitions_refuse():
    sub = Counter(1)
    with pytest.raises(RuntimeError):
        sub.join(0)
    sub.start()
    with pytest.raises(RuntimeError):
        sub.start()
    sub.join(5)
    sub.kill()
    assert sub.state == OFF
    with pytest.raises(ValueError):
        Subscriber(mode="greedy")


def test_awaited_from_asyncio_through_a_thread():
    async def run():
        sub = Counter(50, mode="parallel")
        sub.start()
        await asyncio.get_running_loop().run_in_executor(None, sub.join, 5)
        return sub

    sub = asyncio.run(run())
    assert sub.state == OFF and sub.consumed == list(range(50))


def test_the_halves_may_be_callables_and_both_are_required():
    got = []

    def listen(emit):
        for i in range(3):
            emit(i)

    sub = Subscriber(listen=listen, consume=got.append)
    sub.start()
    sub.join(timeout=5)
    assert (sub.state, got) == ("OFF", [0, 1, 2])
    with pytest.raises(TypeError, match="no listen and no consume"):
        Subscriber()
    with pytest.raises(TypeError, match="no consume"):
        Subscriber(listen=listen)
