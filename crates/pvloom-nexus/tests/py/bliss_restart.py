"""A BLISS-shaped ascan (axis:sy, timer, diode, and machinfo:current, a counter another
process may publish) written with blissdata's own writer, paused half-way while the test
cuts the reader's connection or restarts Redis.

usage: bliss_restart.py URL SESSION FILE NUMBER NPOINTS
Prints "KEY <key>", sends the first half of the points of axis:sy, timer:elapsed_time and
diode:diode, waits until they are in Redis and prints "HALF", then reads one line from stdin:
- "GO": Redis stayed up: send the rest (and every point of machinfo:current), stop and close
  the scan, print "DONE".
- "QUIT": Redis was restarted. blissdata's sinks died with their connections (a send would
  hang), as a BLISS session's would: exit, leaving the scan to bliss_resume.py or to no one.
"""
import os
import sys

import numpy as np
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

url, session, filename, number, npoints = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ds = DataStore(url)
identity = {"name": "ascan", "number": number, "data_policy": "no_policy", "session": session, "path": filename}
info = {
    "title": f"ascan sy 0 1 {npoints - 1} 0.01",
    "type": "ascan",
    "npoints": npoints,
    "count_time": 0.01,
    "filename": filename,
    "scan_nb": number,
    "session_name": session,
    "start_time": "2026-12-03T07:00:00+00:00",
    "positioners": {"positioners_start": {"sy": 0.0}, "positioners_end": {"sy": 1.0}, "positioners_units": {"sy": "mm"}},
    "acquisition_chain": {"axis": {"master": {"scalars": ["axis:sy"]}, "scalars": ["timer:elapsed_time", "diode:diode"]}},
    "plots": [{"kind": "curve-plot", "name": "plot", "items": [{"kind": "curve", "x": "axis:sy", "y": "diode:diode"}]}],
}
scan = ds.create_scan(identity, info=info)
print("KEY", scan.key, flush=True)
sy = scan.create_stream(Stream.make_definition("axis:sy", "float64", (), info={"unit": "mm"}))
timer = scan.create_stream(Stream.make_definition("timer:elapsed_time", "float64", (), info={"unit": "s"}))
diode = scan.create_stream(Stream.make_definition("diode:diode", "float64"))
current = scan.create_stream(Stream.make_definition("machinfo:current", "float64", (), info={"unit": "mA"}))
scan.prepare()
scan.start()


def send(i):
    sy.send(np.float64(i / max(npoints - 1, 1)))
    timer.send(np.float64(0.01 * i))
    diode.send(np.float64(100.0 * np.sin(i)))


half = npoints // 2
for i in range(half):
    send(i)
for s in (sy, timer, diode):
    s.join()
print("HALF", flush=True)
command = sys.stdin.readline().strip()
if command != "GO":
    # The sinks' threads are stuck on their dead connections and would keep the
    # interpreter from exiting.
    os._exit(0)
for i in range(half, npoints):
    send(i)
for i in range(npoints):
    current.send(np.float64(200.0 - 0.5 * i))
scan.stop()
scan.info["end_reason"] = "SUCCESS"
scan.info["end_time"] = "2026-12-03T07:00:10+00:00"
scan.close()
print("DONE", flush=True)
