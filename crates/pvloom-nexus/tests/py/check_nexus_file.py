"""Checks a NeXus file against an expectation document written by the Rust test.

usage: check_nexus_file.py FILE EXPECT.json
EXPECT: {"swmr": bool, "datasets": {path: {"dtype", "shape", "values"?, "strings"?, "min_len"?,
                                         "prefix"? (values are the dataset's first), "prefix_of"? (the dataset is the values' first),
                                         "prefix_then_fill"? (the values' first, then NaN fill only)}},
         "attrs": {path: {name: value ("*": any; "$version": any X.Y.Z)}}, "links": {path: target}, "absent": [path]}
Prints one line per failure and "checks=N failures=M"; exits 1 on any failure.
"""
import json
import re
import sys

import h5py
import numpy as np

path, expect_path = sys.argv[1], sys.argv[2]
with open(expect_path) as f:
    expect = json.load(f)

failures = []
checks = 0


def fail(msg):
    failures.append(msg)
    print("FAIL", msg)


def norm(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return [norm(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


kw = dict(libver="latest", swmr=True) if expect.get("swmr") else {}
with h5py.File(path, "r", **kw) as f:
    for p, d in expect.get("datasets", {}).items():
        checks += 1
        if p not in f:
            fail(f"{p}: missing")
            continue
        ds = f[p]
        if "dtype" in d and ds.dtype.str != d["dtype"] and not (d["dtype"] == "|b1" and ds.dtype == np.bool_):
            fail(f"{p}: dtype {ds.dtype.str} != {d['dtype']}")
        if "shape" in d and list(ds.shape) != d["shape"]:
            fail(f"{p}: shape {list(ds.shape)} != {d['shape']}")
        if "min_len" in d and ds.shape[0] < d["min_len"]:
            fail(f"{p}: {ds.shape[0]} points < {d['min_len']}")
        if "values" in d:
            got = ds[()]
            n = len(d["values"]) if d.get("prefix") else None
            if n is not None:
                got = got[:n] if got.ndim else got
            if d.get("prefix_of"):  # the dataset holds the first len(dataset) of the values
                d = dict(d, values=d["values"][: len(got)])
            if d.get("prefix_then_fill"):
                # A file whose writes failed: the values' first k, then only the fill value
                # (NaN) where the points in flight never reached the disk; k > 0.
                filled = np.isnan(got)
                k = int(np.argmax(filled)) if filled.any() else len(got)
                if k == 0 or not filled[k:].all():
                    fail(f"{p}: not a prefix then fill: first fill at {k}, {int(filled[k:].sum())} of {len(got) - k} after it")
                got = got[:k]
                d = dict(d, values=d["values"][:k])
            if got.dtype.kind == "c":
                got = np.stack([got.real, got.imag], -1)
            want = np.array(d["values"], dtype=float if got.dtype.kind in "fc" else (bool if got.dtype.kind == "b" else None))
            got_cmp = np.asarray(got, dtype=float if got.dtype.kind in "fc" else None)
            if got_cmp.shape != want.shape:
                fail(f"{p}: values shape {got_cmp.shape} != {want.shape}")
            elif got.dtype.kind in "fc":
                if not np.allclose(got_cmp, want, equal_nan=True, rtol=1e-6, atol=0):
                    fail(f"{p}: values {got_cmp.ravel()[:10]} != {want.ravel()[:10]}")
            elif not np.array_equal(got_cmp, want):
                fail(f"{p}: values {got_cmp.ravel()[:10]} != {want.ravel()[:10]}")
        if "strings" in d:
            got = ds[()]
            got = [norm(x) for x in np.atleast_1d(got)] if ds.shape else norm(got)
            if got != d["strings"]:
                fail(f"{p}: strings {got!r} != {d['strings']!r}")
    for p, attrs in expect.get("attrs", {}).items():
        if p not in f and p != "/":
            fail(f"{p}: missing (attributes)")
            continue
        obj = f[p]
        for name, want in attrs.items():
            checks += 1
            if name not in obj.attrs:
                fail(f"{p}@{name}: missing")
                continue
            got = norm(obj.attrs[name])
            if want == "*":
                continue
            if want == "$version":
                # The writer's HDF5 (not necessarily h5py's bundled one): "X.Y.Z".
                if not (isinstance(got, str) and re.fullmatch(r"\d+\.\d+\.\d+", got)):
                    fail(f"{p}@{name}: {got!r} is not a version X.Y.Z")
                continue
            if got != want:
                fail(f"{p}@{name}: {got!r} != {want!r}")
    for p, target in expect.get("links", {}).items():
        checks += 1
        link = f.get(p, getlink=True)
        if not isinstance(link, h5py.SoftLink):
            fail(f"{p}: not a soft link ({link!r})")
        elif link.path != target:
            fail(f"{p}: link to {link.path} != {target}")
        elif p not in f:
            fail(f"{p}: dangling link to {target}")
    for p in expect.get("absent", []):
        checks += 1
        if p in f:
            fail(f"{p}: present, expected absent")

print(f"checks={checks} failures={len(failures)}")
sys.exit(1 if failures else 0)
