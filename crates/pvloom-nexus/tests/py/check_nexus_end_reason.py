"""Prints an entry's end_reason (h5py, SWMR-readable files too).

usage: check_nexus_end_reason.py FILE ENTRY
"""
import sys

import h5py

with h5py.File(sys.argv[1], "r") as f:
    value = f[sys.argv[2]]["end_reason"][()]
    print(value.decode() if isinstance(value, bytes) else value)
