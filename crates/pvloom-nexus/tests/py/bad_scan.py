"""Writes a scan that breaks blissdata's layout in one way; prints KEY <key>.

usage: bad_scan.py URL CASE, CASE one of: doc, encoding, dtype, length, unsealed
"""
import os
import sys

import numpy as np
import redis
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

url, case = sys.argv[1], sys.argv[2]
ds = DataStore(url)
r = redis.Redis.from_url(url)
scan = ds.create_scan({"name": "bad", "number": 1, "data_policy": "no_policy", "session": "bad"}, info={})
s = scan.create_stream(Stream.make_definition("c:c", "float64", (2,)))
scan.prepare()
scan.start()
# After the last state change: blissdata rewrites the document at each one.
if case == "doc":
    r.json().set(scan.key, "$.data_streams", "not an object")
elif case == "encoding":
    r.json().set(scan.key, "$.data_streams['c:c'].encoding", {"type": "zarr"})
elif case == "dtype":
    r.json().set(scan.key, "$.data_streams['c:c'].encoding.dtype_str", "<x9")
elif case == "length":
    # 3 points claimed, 2 points of bytes given.
    r.xadd(s.key, {"payload": np.zeros((2, 2)).tobytes(), "len": 3}, id="0-1")
elif case == "unsealed":
    # Closed by hand, without blissdata's close() that seals the streams first.
    s.send(np.zeros(2))
    s.join()
    state_key = scan._model.state_stream.key()
    r.xadd(state_key, {"state": 3})
    r.xadd(state_key, {"state": 4})
print("KEY", scan.key, flush=True)
# The scan stays open: leave without waiting for the stream writer threads.
os._exit(0)
