"""Checks a NeXus file against an expectation document written by the Rust test.

usage: check_nexus_file.py FILE EXPECT.json
EXPECT: {"swmr": bool, "datasets": {path: {"dtype", "shape", "values"?, "strings"?, "min_len"?,
                                         "prefix"? (values are the dataset's first), "prefix_of"? (the dataset is the values' first),
                                         "prefix_then_fill"? (the values' first, then only unwritten points: NaN fill or zeros)}},
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
                # A file whose writes failed: the values' first k (k > 0), then only what
                # points that never reached the disk read as: the fill value (NaN), or
                # zeros where a chunk's write was cut short at the size limit (the part
                # of it written is correct, the rest of it was never written).
                want_all = np.array(d["values"][: len(got)], dtype=float)
                right = np.isclose(got, want_all[: len(got)], rtol=1e-6, atol=0)
                k = int(np.argmin(right)) if not right.all() else len(got)
                rest = got[k:]
                unwritten = np.isnan(rest) | (rest == 0.0)
                if k == 0 or not unwritten.all():
                    at = k + int(np.argmin(unwritten)) if not unwritten.all() else k
                    fail(f"{p}: not a prefix then unwritten points: prefix {k}, "
                         f"{int((~unwritten).sum())} wrong values after it, first at {at}: {got[at:at + 5]}")
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
                    bad = np.flatnonzero(~np.isclose(got_cmp.ravel(), want.ravel(), equal_nan=True, rtol=1e-6, atol=0))
                    at = int(bad[0])
                    fail(f"{p}: values differ at {len(bad)} of {got_cmp.size}, first at {at}: "
                         f"{got_cmp.ravel()[at:at + 5]} != {want.ravel()[at:at + 5]}")
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
