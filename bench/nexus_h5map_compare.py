"""pvloom's writer and blisswriter 3.0.0 on the same h5maps: one scan each, published by
crates/pvloom-nexus/tests/py/bliss_h5maps.py (a mapping built with blissdata's own h5map
models with every item and value kind: groups, raw/inline/base64/compound values, long
doubles, stream datasets of scalars, images and variable-shape spectra, a stream in two
places, soft/external links, external binary and virtual datasets; an end mapping that adds,
changes and removes items), into a private Redis. Prints what differs between the two
files' trees (paths, kinds, dtypes, shapes, attributes, values or checksums, links) and, apart,
how datasets are stored.

usage: nexus_h5map_compare.py PVLOOM_BIN BLISSWRITER_BIN [--points N]
"""

from __future__ import annotations

import argparse
import pathlib
import signal
import subprocess
import sys
import tempfile

from blissdata.redis_engine.store import DataStore

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from nexus_bench import LogTail, compare_trees, start_redis, tree  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
PUBLISH = ROOT / "crates/pvloom-nexus/tests/py/bliss_h5maps.py"


def publish(url: str, session: str, path: str, number: int, points: int, out: str, mode: str) -> str:
    res = subprocess.run([sys.executable, str(PUBLISH), url, session, path, str(number), str(points), out, mode],
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f"publishing failed: {res.stderr}")
    return next(line.split()[1] for line in res.stdout.splitlines() if line.startswith("KEY"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pvloom")
    ap.add_argument("blisswriter")
    ap.add_argument("--points", type=int, default=50)
    args = ap.parse_args()
    # `samestreams`: the end mapping leaves stream datasets' attributes alone. Without it
    # (the end adds a `units` attribute to a stream dataset) blisswriter 3.0.0 deletes that
    # stream's dataset at the end and fails the scan.
    for mode in ("samestreams", ""):
        print(f"== end mapping {'without' if mode else 'with'} a change to a stream dataset's attributes ==")
        compare(args, mode)


def compare(args, mode: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis_proc, url = start_redis(tmp)
        try:
            # pvloom first, alone (blisswriter writes every scan that has a path, pvloom's
            # too); then blisswriter alone, on the same session.
            out = pathlib.Path(tmp) / "pvloom"
            out.mkdir()
            pv_path = str(out / "mapped.h5")
            writer = subprocess.Popen([args.pvloom, "nexus", "writer", "--redis", url, "--session", "cmp",
                                       "--dir", str(out)], stdout=subprocess.PIPE, text=True)
            try:
                writer.stdout.readline()  # "nexus writer on ..."
                publish(url, "cmp", pv_path, 1, args.points, str(out / "expect.json"), mode)
                said = writer.stdout.readline().strip()
                print(f"pvloom said: {said}")
            finally:
                writer.terminate()
                writer.wait(10)
            # Then blisswriter (its standalone service), fed warm-up scans until it takes one.
            bw_dir = pathlib.Path(tmp) / "blisswriter"
            bw_dir.mkdir()
            bw_path = str(bw_dir / "mapped.h5")
            proc = subprocess.Popen([args.blisswriter, "run", url, "--log-level", "INFO"], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                log = LogTail(proc.stderr)
                if log.wait_for(lambda line: "Listening to" in line, 120) is None:
                    sys.exit(f"blisswriter did not start: {log.last()}")
                ds = DataStore(url)
                for n in range(20):
                    warm = ds.create_scan({"name": "warmup", "number": n, "data_policy": "no_policy",
                                           "session": "cmp_warmup"}, info={})
                    if log.wait_for(lambda line: warm.key in line, 2) is not None:
                        break
                key = publish(url, "cmp", bw_path, 2, args.points, str(bw_dir / "expect.json"), mode)
                said = log.wait_for(lambda line: key in line and ("Saving complete" in line or "ERROR" in line), 120)
                print(f"blisswriter said: {said[1] if said else 'nothing'}")
                warnings = [line for _, line in log.lines if " - WARNING" in line or " - ERROR" in line]
                for w in warnings[-5:]:
                    print(f"  blisswriter: {w.strip()}")
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            a, b = tree(pv_path, 1), tree(bw_path, 2)
            diff, storage = compare_trees(a, b)
            print(f"tree, pvloom vs blisswriter: {len(a)} vs {len(b)} items, "
                  + ("the same" if not diff else f"{len(diff)} differences:"))
            for d in diff:
                print(f"  {d}")
            print(f"storage (each writer's choice): {len(storage)} datasets differ" + (":" if storage else ""))
            for d in storage:
                print(f"  {d}")
        finally:
            redis_proc.kill()
            redis_proc.wait()


if __name__ == "__main__":
    main()
