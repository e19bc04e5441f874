"""A BLISS-shaped ascan written with blissdata's own writer: a motor axis:sy, timer and
diode counters, a uint16 [4,5] image, with the info BLISS gives (filename, positioners,
acquisition chain, a curve plot).

usage: bliss_ascan.py URL SESSION FILE NUMBER NPOINTS [hang]
Prints "KEY <key>" once created; with `hang`, "HALF" after half the points, then waits
to be killed (no stop, no close, no seals).
"""
import sys
import time

import numpy as np
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

url, session, filename, number, npoints = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
hang = len(sys.argv) > 6 and sys.argv[6] == "hang"
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
    "start_time": "2026-12-03T05:00:00+00:00",
    "positioners": {
        "positioners_start": {"sy": 0.0, "sz": 2.5},
        "positioners_end": {"sy": 1.0, "sz": 2.5},
        "positioners_units": {"sy": "mm", "sz": "mm"},
    },
    "acquisition_chain": {
        "axis": {"master": {"scalars": ["axis:sy"]}, "scalars": ["timer:elapsed_time", "diode:diode"], "images": ["lima:image"]}
    },
    "plots": [{"kind": "curve-plot", "name": "plot", "items": [{"kind": "curve", "x": "axis:sy", "y": "diode:diode"}]}],
}
scan = ds.create_scan(identity, info=info)
print("KEY", scan.key, flush=True)
sy = scan.create_stream(Stream.make_definition("axis:sy", "float64", (), info={"unit": "mm"}))
timer = scan.create_stream(Stream.make_definition("timer:elapsed_time", "float64", (), info={"unit": "s"}))
diode = scan.create_stream(Stream.make_definition("diode:diode", "float64"))
image = scan.create_stream(Stream.make_definition("lima:image", "uint16", (4, 5)))
scan.prepare()
scan.start()
for i in range(npoints):
    sy.send(np.float64(i / max(npoints - 1, 1)))
    timer.send(np.float64(0.01 * i))
    diode.send(np.float64(100.0 * np.sin(i)))
    image.send(((np.arange(20) + 100 * i) % 65536).astype(np.uint16).reshape(4, 5))
    if hang and i == npoints // 2:
        for s in (sy, timer, diode, image):
            s.join()
        print("HALF", flush=True)
        time.sleep(120)
        sys.exit(1)
scan.stop()
scan.info["end_reason"] = "SUCCESS"
scan.info["end_time"] = "2026-12-03T05:00:10+00:00"
scan.close()
print("DONE", flush=True)
