"""Follows a dataset of a file being written in SWMR mode and prints "len N" each time its
length changes (the values are checked as they arrive: element i must equal VALUE_SCALE*i).

usage: check_nexus_swmr_follow.py FILE DATASET TARGET_LEN VALUE_SCALE TIMEOUT_S [noend]
Prints "open" once the file is open, "len N" on changes, "done" at TARGET_LEN, then waits
(file still open) for the entry's end_reason to leave "RUNNING" and prints "end REASON";
exits 1 on timeout or a wrong value. With `noend` (a file with no end_reason placeholder,
e.g. one written from an h5maps mapping) it exits after "done".
"""
import sys
import time

import h5py
import numpy as np

path, dset, target, scale, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
noend = len(sys.argv) > 6 and sys.argv[6] == "noend"
deadline = time.monotonic() + timeout
f = None
while f is None:
    try:
        f = h5py.File(path, "r", libver="latest", swmr=True)
        if dset not in f:
            f.close()
            f = None
            raise KeyError(dset)
    except (OSError, KeyError):
        if time.monotonic() > deadline:
            print("timeout opening", flush=True)
            sys.exit(1)
        time.sleep(0.01)
print("open", flush=True)
d = f[dset]
last = -1
while True:
    d.refresh()
    n = d.shape[0]
    if n != last:
        values = d[:n]
        want = scale * np.arange(n)
        if not np.allclose(values, want):
            print(f"bad values {values[:10]} != {want[:10]}", flush=True)
            sys.exit(1)
        print(f"len {n}", flush=True)
        last = n
    if n >= target:
        print("done", flush=True)
        if noend:
            sys.exit(0)
        break
    if time.monotonic() > deadline:
        print(f"timeout at len {n}", flush=True)
        sys.exit(1)
    time.sleep(0.01)

# Then the end, written in place over the placeholder while this reader stays open.
entry = dset.split("/")[1]
reason = f[f"/{entry}/end_reason"]
while True:
    reason.refresh()
    value = reason[()]
    value = value.decode() if isinstance(value, bytes) else str(value)
    if value != "RUNNING":
        print(f"end {value}", flush=True)
        sys.exit(0)
    if time.monotonic() > deadline:
        print("timeout waiting for the end", flush=True)
        sys.exit(1)
    time.sleep(0.01)
