"""Checks that a file holds exactly the tree an h5maps mapping describes, read with h5py and
compared with what blissdata's own models decode (`HDF5Item.validate_python`, `.decode()`):
every group and its attributes, every dataset's dtype, shape, values and attributes, every
soft/external link, external binary and virtual dataset; stream datasets against the points sent.
Nothing else may be in the file.

usage: check_h5map_file.py FILE EXPECT.json [swmr] [appended]
(`appended`: the file holds earlier scans too: other entries at the root are allowed.)
EXPECT: bliss_h5maps.py's output ({"end": mapping, "streams": {name: points}}).
Prints one line per failure and "checks=N failures=M"; exits 1 on any failure.
"""
import json
import sys

import h5py
import numpy as np
from blissdata.h5map import (
    Dataset,
    ExternalBinaryDataset,
    ExternalLink,
    Group,
    HDF5Item,
    SoftLink,
    Stream,
    VirtualDataset,
)

path, expect_path = sys.argv[1], sys.argv[2]
swmr = "swmr" in sys.argv[3:]
appended = "appended" in sys.argv[3:]
with open(expect_path) as f:
    expect = json.load(f)
mapping = HDF5Item.validate_python(expect["end"])
streams = expect["streams"]
# The writer's own root attributes (blisswriter stamps HDF5_Version, h5py_version,
# file_time, file_update_time).
WRITER_ROOT_ATTRS = {"HDF5_Version", "h5py_version", "file_time", "file_update_time"}

failures = []
checks = 0


def fail(msg):
    failures.append(msg)
    print("FAIL", msg)


def skipped(value) -> bool:
    # Every data item is written (long doubles as x86-64's, where this test runs).
    return False


def norm(a):
    a = np.asarray(a)
    if a.dtype.kind in "OSU":
        return np.vectorize(lambda x: x.decode() if isinstance(x, bytes) else str(x), otypes=[object])(a) if a.size else a.astype(object)
    return a


def same(got, want, where):
    """got: what h5py read (with its dtype); want: blissdata's decode()."""
    global checks
    checks += 1
    got_a, want_a = np.asarray(got), np.asarray(want)
    if want_a.dtype.kind in "OSU":
        if got_a.dtype.kind not in "OSU" and h5py.check_string_dtype(got_a.dtype) is None:
            return fail(f"{where}: dtype {got_a.dtype} is not a string")
    elif got_a.dtype != want_a.dtype:
        return fail(f"{where}: dtype {got_a.dtype.str} != {want_a.dtype.str}")
    if got_a.shape != want_a.shape:
        return fail(f"{where}: shape {got_a.shape} != {want_a.shape}")
    g, w = norm(got_a), norm(want_a)
    if w.dtype.kind in "fc":
        ok = np.allclose(g, w, equal_nan=True, rtol=0, atol=0)
    else:
        ok = np.array_equal(g, w)
    if not ok:
        fail(f"{where}: values {g.ravel()[:8]} != {w.ravel()[:8]}")


def check_attrs(obj, item, where, root=False):
    global checks
    want = {k: v for k, v in item.attributes.items() if not skipped(v)}
    got = set(obj.attrs.keys()) - (WRITER_ROOT_ATTRS if root else set())
    checks += 1
    if got != set(want):
        fail(f"{where}: attributes {sorted(got)} != {sorted(want)}")
    for k, v in want.items():
        if k in obj.attrs:
            a = obj.attrs.get_id(k)
            value = obj.attrs[k]
            same(np.asarray(value, dtype=a.dtype) if a.dtype.kind != "O" else value, v.decode(), f"{where}@{k}")


def getlink(f, where):
    if where == "/":
        return h5py.HardLink()
    parent, name = where.rsplit("/", 1)
    parent = parent or "/"
    if parent not in f:
        return None
    return f[parent].get(name, getlink=True)


def check(f, item, where):
    global checks
    if isinstance(item, Dataset) and skipped(item.value):
        checks += 1
        if getlink(f, where) is not None:
            fail(f"{where}: present, but not writable (expected absent)")
        return
    checks += 1
    link = getlink(f, where)
    if link is None:
        return fail(f"{where}: missing")
    if isinstance(item, SoftLink):
        if not isinstance(link, h5py.SoftLink) or link.path != item.target_path:
            fail(f"{where}: {link!r} is not a soft link to {item.target_path}")
        return
    if isinstance(item, ExternalLink):
        if not isinstance(link, h5py.ExternalLink) or (link.filename, link.path) != (item.target_file, item.target_path):
            fail(f"{where}: {link!r} is not an external link to {item.target_file}::{item.target_path}")
        return
    obj = f[where]
    if isinstance(item, Group):
        if not isinstance(obj, h5py.Group):
            return fail(f"{where}: not a group")
        check_attrs(obj, item, where, root=where == "/")
        want = {k for k, c in item.children.items() if not (isinstance(c, Dataset) and skipped(c.value))}
        checks += 1
        got = set(obj.keys())
        if appended and where == "/":
            got &= want
        if got != want:
            fail(f"{where}: children {sorted(obj.keys())} != {sorted(want)}")
        for k, c in item.children.items():
            check(f, c, f"{where.rstrip('/')}/{k}")
        return
    if not isinstance(obj, h5py.Dataset):
        return fail(f"{where}: not a dataset")
    check_attrs(obj, item, where)
    if isinstance(item, VirtualDataset):
        checks += 1
        if not obj.is_virtual:
            return fail(f"{where}: not a virtual dataset")
        got_src = [(m.file_name, m.dset_name) for m in obj.virtual_sources()]
        want_src = [(v.src_file, v.src_dataset) for v in item.virtual_sources]
        if got_src != want_src:
            fail(f"{where}: virtual sources {got_src} != {want_src}")
        same(obj[()], np.array(expect["virtual"][where], dtype=item.dtype), where)
        return
    if isinstance(item, ExternalBinaryDataset):
        checks += 1
        want_ext = [(fi.name, fi.offset, fi.size if fi.size is not None else h5py.h5f.UNLIMITED) for fi in item.files]
        got_ext = [(n.decode() if isinstance(n, bytes) else n, o, s) for n, o, s in (obj.external or [])]
        if got_ext != want_ext:
            fail(f"{where}: external {got_ext} != {want_ext}")
        with open(item.files[0].name, "rb") as raw:
            raw.seek(item.files[0].offset)
            want = np.frombuffer(raw.read(int(np.prod(item.shape)) * np.dtype(item.dtype).itemsize), item.dtype)
        same(obj[()], want.reshape(item.shape), where)
        return
    if isinstance(item.value, Stream):
        points = streams[item.value.stream]
        dtype = np.dtype(expect["dtypes"][item.value.stream])
        if points and isinstance(points[0], list) and len({len(p) for p in points}) > 1:
            # Variable shape: padded to the largest point with the fill value (NaN).
            width = max(len(p) for p in points)
            want = np.full((len(points), width), np.nan, dtype=dtype)
            for i, p in enumerate(points):
                want[i, : len(p)] = p
        else:
            want = np.asarray(points).astype(dtype)
        same(obj[()], want, where)
        return
    same(obj[()], item.value.decode(), where)


kw = dict(libver="latest", swmr=True) if swmr else {}
with h5py.File(path, "r", **kw) as f:
    check(f, mapping, "/")
    checks += 1
    for k in WRITER_ROOT_ATTRS - {"h5py_version"}:
        if k not in f.attrs:
            fail(f"/@{k}: the writer's own root attribute is missing")

print(f"checks={checks} failures={len(failures)}")
sys.exit(1 if failures else 0)
