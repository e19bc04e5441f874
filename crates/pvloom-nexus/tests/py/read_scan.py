"""Loads a scan with blissdata's reader and prints it as JSON (streams' values as lists)."""
import json
import sys

from blissdata.redis_engine.store import DataStore

ds = DataStore(sys.argv[1])
scan = ds.load_scan(sys.argv[2])
out = {"state": int(scan.state), "name": scan.name, "number": scan.number, "session": scan.session,
       "info": scan.info, "streams": {}}
for name, stream in scan.streams.items():
    values = stream[:]
    if not isinstance(values, list):
        values = values.tolist()
    else:
        values = [v.tolist() if hasattr(v, "tolist") else v for v in values]
    out["streams"][name] = {"dtype": str(stream.dtype), "shape": list(stream.shape), "len": len(stream), "values": values}
# The RediSearch index finds it by its identity too.
_, keys = ds.search_existing_scans(name=scan.name)
out["indexed"] = sys.argv[2] in keys
print(json.dumps(out))
