"""Finishes a scan whose publisher died with Redis, with blissdata's public calls only, as
another process of a BLISS session can: publishes the stream nobody had published yet
(machinfo:current, through Scan.get_writer_stream, meant for publishing from several
processes), seals every stream at the length it has, and closes the scan as blissdata's own
cleanup does (DataStore.delete_scan(force=True): end_reason DELETION, keys expiring in 10 s).

usage: bliss_resume.py URL KEY NCURRENT
Prints "DONE" once the scan is closed.
"""
import sys

import numpy as np
from blissdata.redis_engine.store import DataStore

url, key, ncurrent = sys.argv[1], sys.argv[2], int(sys.argv[3])
ds = DataStore(url)
scan = ds.load_scan(key)
current = scan.get_writer_stream("machinfo:current")
for i in range(ncurrent):
    current.send(np.float64(200.0 - 0.5 * i))
current.seal()
for name in scan.streams:
    if name != "machinfo:current":
        scan.get_writer_stream(name).seal()
ds.delete_scan(key, force=True)
print("DONE", flush=True)
