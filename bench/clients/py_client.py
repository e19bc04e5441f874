"""Python clients of bench/ca. The caproto and pvloom rows run the very same code:
only the import differs (pvloom.ca mirrors caproto.threading.client).

Usage: python py_client.py {pyepics|caproto|pvloom} SCENARIO PREFIX SECONDS
Prints one JSON object: {"rate": ..., "unit": ..., "rss_mib": ...}.
"""

import json
import resource
import sys
import threading
import time

lib, scenario, prefix, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


extra = {}


def timed_rounds(batch_round):
    """Reads per second of 1000-PV batch rounds: one warm-up round, then rounds for
    `seconds` (at least 5)."""
    batch_round()
    rounds, start = 0, time.monotonic()
    while rounds < 5 or time.monotonic() - start < seconds:
        batch_round()
        rounds += 1
    return rounds * 1000 / (time.monotonic() - start)


def names(stem, count):
    return [f"{prefix}{stem}{i}" for i in range(count)]


def run_threading_client(module):
    Context, Batch = module.Context, module.Batch
    ctx = Context(timeout=10.0)
    if scenario == "read":
        (pv,) = ctx.get_pvs(prefix + "AI")
        pv.wait_for_connection(timeout=10)
        start, reads = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            pv.read(timeout=10)
            reads += 1
        return reads / (time.monotonic() - start), "reads/s"
    if scenario in ("batch", "connect"):
        start = time.monotonic()
        pvs = ctx.get_pvs(*names("N", 1000))
        for pv in pvs:
            pv.wait_for_connection(timeout=30)
        if scenario == "connect":
            return 1000 / (time.monotonic() - start), "PVs/s"
        def batch_round():
            done = threading.Semaphore(0)
            with Batch() as batch:
                for pv in pvs:
                    batch.read(pv, lambda response: done.release())
            for _ in pvs:
                if not done.acquire(timeout=30):
                    raise TimeoutError("batch read")

        return timed_rounds(batch_round), "reads/s"
    pvs = ctx.get_pvs(*([prefix + "FLOOD"] if scenario == "flood" else names("C", 3000)))
    count = [0]
    lock = threading.Lock()

    def on_update(sub, response):
        with lock:
            count[0] += 1

    subs = []
    for pv in pvs:
        pv.wait_for_connection(timeout=30)
        sub = pv.subscribe(data_type="time")
        sub.add_callback(on_update)
        subs.append(sub)
    time.sleep(0.5)
    before, start, cpu = count[0], time.monotonic(), cpu_seconds()
    time.sleep(seconds)
    got = count[0] - before
    extra["cpu_us_per_update"] = (cpu_seconds() - cpu) * 1e6 / max(got, 1)
    return got / (time.monotonic() - start), "updates/s"


def run_pyepics():
    import epics
    from epics import ca

    if scenario == "read":
        pv = epics.PV(prefix + "AI", auto_monitor=False)
        pv.wait_for_connection(timeout=10)
        start, reads = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            pv.get(use_monitor=False, timeout=10)
            reads += 1
        return reads / (time.monotonic() - start), "reads/s"
    if scenario in ("batch", "connect"):
        start = time.monotonic()
        chids = [ca.create_channel(n, connect=False, auto_cb=False) for n in names("N", 1000)]
        for chid in chids:
            ca.connect_channel(chid, timeout=30)
        if scenario == "connect":
            return 1000 / (time.monotonic() - start), "PVs/s"
        def batch_round():
            for chid in chids:
                ca.get(chid, wait=False)
            ca.poll()
            for chid in chids:
                ca.get_complete(chid, timeout=30)

        return timed_rounds(batch_round), "reads/s"
    count = [0]
    lock = threading.Lock()

    def on_update(**kwargs):
        with lock:
            count[0] += 1

    pvs = []
    for name in [prefix + "FLOOD"] if scenario == "flood" else names("C", 3000):
        pv = epics.PV(name, form="time", callback=on_update, auto_monitor=True)
        pvs.append(pv)
    for pv in pvs:
        pv.wait_for_connection(timeout=30)
    time.sleep(0.5)
    before, start, cpu = count[0], time.monotonic(), cpu_seconds()
    time.sleep(seconds)
    got = count[0] - before
    extra["cpu_us_per_update"] = (cpu_seconds() - cpu) * 1e6 / max(got, 1)
    return got / (time.monotonic() - start), "updates/s"


if lib == "pyepics":
    rate, unit = run_pyepics()
elif lib == "caproto":
    import caproto.threading.client as module
    rate, unit = run_threading_client(module)
else:
    import pvloom.ca as module
    rate, unit = run_threading_client(module)
print(json.dumps({"rate": rate, "unit": unit, "rss_mib": peak_rss_mib(), **extra}), flush=True)
import os
os._exit(0)
