"""Servers for bench/ca: the same PVs from EPICS base (pythonSoftIOC) and caproto.

Usage: python bench_iocs.py {softioc|caproto} {plain|flood|many} PREFIX
  plain: PREFIX+AI (a double) and PREFIX+N0..N999 (longs) for reads and connects
  flood: PREFIX+FLOOD, posted as fast as the server can
  many:  PREFIX+C0..C2999, each updated at 10 Hz (30 000 updates/s offered)
Ports from EPICS_CAS_SERVER_PORT; prints READY when serving, and on exit (SIGTERM)
the number of updates it posted ("POSTED n").
"""

import os
import signal
import sys
import tempfile
import threading
import time

server, mode, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
posted = [0]


def report(*_):
    print(f"POSTED {posted[0]}", flush=True)
    os._exit(0)


signal.signal(signal.SIGTERM, report)

if server == "softioc":
    from softioc import asyncio_dispatcher, builder, softioc

    builder.SetDeviceName(prefix.rstrip(":"))
    extra_db = None
    if mode == "db":
        # The same database file pvloom's server loads (BENCH_DB, macro P).
        softioc.dbLoadDatabase(os.environ["BENCH_DB"], substitutions=f"P={prefix}")
        builder.aIn("UNUSED_KEEPALIVE", initial_value=0.0)
    elif mode == "plain":
        builder.aIn("AI", initial_value=1.5)
        for i in range(1000):
            builder.longIn(f"N{i}", initial_value=i)
    elif mode == "flood":
        flood = builder.aIn("FLOOD", initial_value=0.0)
    else:
        # Scanned by the IOC's own C scan thread: no Python in the update path.
        extra_db = tempfile.NamedTemporaryFile("w", suffix=".db", delete=False)
        for i in range(3000):
            extra_db.write(f'record(calc, "{prefix}C{i}") {{ field(SCAN, ".1 second") field(CALC, "VAL+1") }}\n')
        extra_db.close()
    dispatcher = asyncio_dispatcher.AsyncioDispatcher()
    builder.LoadDatabase()
    if extra_db is not None:
        softioc.dbLoadDatabase(extra_db.name)
    softioc.iocInit(dispatcher)
    print("READY", flush=True)
    if mode == "flood":
        # Paced bursts: unpaced, the IOC's callback ring overflows and drops updates
        # before they reach the CA server. FLOOD_RATE per second are offered.
        rate = float(os.environ.get("FLOOD_RATE", "20000"))
        n, burst = 0.0, max(1, int(rate / 100))
        while True:
            began = time.monotonic()
            for _ in range(burst):
                n += 1.0
                flood.set(n)
            posted[0] += burst
            time.sleep(max(0.0, 0.01 - (time.monotonic() - began)))
    else:
        if mode == "many":
            time.sleep(1.0)
        while True:
            time.sleep(1.0)
            if mode == "many":
                posted[0] += 30_000
else:
    import asyncio

    from caproto.server import PVGroup, pvproperty, run

    attrs = {}
    if mode == "db":
        # caproto cannot load a .db file: the same PVs, made in Python.
        attrs["AI"] = pvproperty(value=1.5)
        attrs.update({f"N{i}": pvproperty(value=i) for i in range(10_000)})
        attrs.update({f"C{i}": pvproperty(value=0.0) for i in range(100)})
    elif mode == "plain":
        attrs["AI"] = pvproperty(value=1.5)
        attrs.update({f"N{i}": pvproperty(value=i) for i in range(1000)})
    elif mode == "flood":
        attrs["FLOOD"] = pvproperty(value=0.0)
    else:
        attrs.update({f"C{i}": pvproperty(value=0.0) for i in range(3000)})

    async def drive(group, instance, async_lib):
        if mode == "flood":
            rate = float(os.environ.get("FLOOD_RATE", "20000"))
            target, n, burst = group.FLOOD, 0.0, max(1, int(rate / 100))
            while True:
                began = time.monotonic()
                for _ in range(burst):
                    n += 1.0
                    await target.write(n)
                posted[0] += burst
                await asyncio.sleep(max(0.001, 0.01 - (time.monotonic() - began)))
        elif mode in ("many", "db"):
            targets = [getattr(group, f"C{i}") for i in range(3000 if mode == "many" else 100)]
            n = 0.0
            while True:
                began = time.monotonic()
                n += 1.0
                for target in targets:
                    await target.write(n)
                posted[0] += len(targets)
                await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - began)))

    attrs["TICK"] = pvproperty(value=0, startup=drive)
    Bench = type("Bench", (PVGroup,), attrs)
    ioc = Bench(prefix=prefix)
    print("READY", flush=True)
    run(ioc.pvdb, module_name="caproto.asyncio.server", interfaces=["127.0.0.1"])
