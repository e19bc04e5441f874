"""Writes one scan with blissdata's own writer; prints KEY <key> once created.

usage: write_scan.py URL KIND [SESSION]
KIND: full (counters, image, variable, json, states, info at close)
      killed (prints STARTED after some points, then waits to be killed)
"""
import os
import sys
import time

import numpy as np
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

url, kind = sys.argv[1], sys.argv[2]
session = sys.argv[3] if len(sys.argv) > 3 else "demo_session"
ds = DataStore(url)
identity = {"name": "ascan", "number": 42, "data_policy": "no_policy", "session": session, "path": "/data/x/demo.h5"}
info = {"title": "ascan robz 0 1 4 0.1", "npoints": 4, "filename": "/data/x/demo.h5", "scan_nb": 42}
scan = ds.create_scan(identity, info=info)
print("KEY", scan.key, flush=True)
timer = scan.create_stream(Stream.make_definition("timer:elapsed_time", "float64", (), info={"unit": "s"}))
diode = scan.create_stream(Stream.make_definition("diode:diode", "int32"))
image = scan.create_stream(Stream.make_definition("lima:image", "uint16", (4, 5)))
spec = scan.create_stream(Stream.make_definition("mca:spectrum", "float32", (-1,)))
js = scan.create_stream(Stream.make_definition("meta:json", "json"))
scan.prepare()
scan.start()
if kind == "killed":
    timer.send(np.array([0.5, 1.5]))
    timer.join()
    print("STARTED", flush=True)
    time.sleep(60)
    os._exit(1)
timer.send(np.array([0.0, 0.1]))  # a batch of 2 (len field)
timer.send(np.float64(0.2))
timer.send(np.float64(0.3))
for i in range(4):
    diode.send(np.int32(10 * i - 7))
    image.send((np.arange(20, dtype=np.uint16) + 100 * i).reshape(4, 5))
    spec.send(np.arange(i + 1, dtype=np.float32) * 1.5)
    js.send({"i": i, "name": f"p{i}", "list": [i, None]})
scan.stop()
scan.info["end_reason"] = "SUCCESS"
scan.info["end_time"] = "2026-01-01T00:00:00"
scan.close()
print("DONE", flush=True)
