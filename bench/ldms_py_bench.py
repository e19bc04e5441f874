#!/usr/bin/env python3
"""Updates per second of the same Python update loop through the real LDMS Python API
(``from ovis_ldms import ldms``) and through ``pvloom.ldms``, against the same ldmsd.

The server is a real ``ldmsd`` (from ``$LDMS_PREFIX``) running test_sampler with
``$NSETS`` sets of 64 u64 data metrics; without a real LDMS it is ``pvloom ldmsd``
(``$PVLOOM_BIN``, or ``target/debug/pvloom``) with the same configuration. Each client
looks every set up, then updates each in turn for ``$BENCH_SECONDS`` seconds: blocking
``set.update()`` one after the other, and the callback form (``set.update(cb=...)`` for
every set, then wait for all the callbacks); pvloom also runs its batch form
(``ldms.update_all(sets)``).

Environment: ``LDMS_PREFIX`` (default /tmp/ldms-install), ``LDMS_PYTHON`` (the
interpreter the real API works with; default /usr/bin/python3), ``PVLOOM_PYTHON``
(default: this interpreter), ``PVLOOM_BIN``, ``NSETS`` (100), ``BENCH_SECONDS`` (5),
``PORT`` (a free one in 11400-11499), ``SERVER`` (``real``, the default when a real
ldmsd exists, or ``pvloom``), ``PINGPONG_BIN`` (pvloom-chirp's ``chirp_bench`` example:
when set, a strict TCP ping-pong between two processes is measured in the same run,
the floor of a blocking loop, in which every update is one round trip). Every process
started is killed by PID.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
PREFIX = pathlib.Path(os.environ.get("LDMS_PREFIX", "/tmp/ldms-install"))
NSETS = int(os.environ.get("NSETS", "100"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))

WORKER = r"""
import json, sys, time
which, port, nsets, seconds, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
if which == "real":
    from ovis_ldms import ldms
else:
    from pvloom import ldms
ldms.init(64 * 1024 * 1024)
x = ldms.Xprt(name="sock")
x.connect("127.0.0.1", port)
deadline = time.monotonic() + 20
while True:
    sets = x.lookup("h/bench_.*", ldms.LOOKUP_RE)
    sets = sets if isinstance(sets, list) else [sets]
    if len(sets) >= nsets or time.monotonic() > deadline:
        break
    time.sleep(0.2)
for s in sets:
    s.update()
check = sum(s["component_id"] for s in sets)
import threading
updated = threading.Semaphore(0)
def on_update(lset, flags, arg):
    updated.release()

n = 0
start = time.monotonic()
end = start + seconds
while time.monotonic() < end:
    if mode == "update_all":
        n += ldms.update_all(sets)
    elif mode == "cb":
        for s in sets:
            s.update(cb=on_update)
        for _ in sets:
            updated.acquire()
        n += len(sets)
    else:
        for s in sets:
            s.update()
        n += len(sets)
elapsed = time.monotonic() - start
v = sets[0]["v0"]
print(json.dumps({"updates": n, "seconds": elapsed, "rate": n / elapsed, "sets": len(sets), "check": check, "v0": v}))
"""


def free_port() -> int:
    if os.environ.get("PORT"):
        return int(os.environ["PORT"])
    for port in range(11400, 11500):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise SystemExit("no free port in 11400-11499")


def ldms_env() -> dict:
    """This environment plus the real LDMS's library and Python paths under
    `$LDMS_PREFIX` (when it is there; variables already set are kept in front)."""
    env = dict(os.environ)
    if not PREFIX.exists():
        return env

    def prepend(name, value):
        env[name] = value + (":" + env[name] if env.get(name) else "")

    prepend("LD_LIBRARY_PATH", f"{PREFIX}/lib:{PREFIX}/lib/ovis-ldms")
    env.setdefault("ZAP_LIBPATH", f"{PREFIX}/lib/ovis-ldms")
    env.setdefault("LDMSD_PLUGIN_LIBPATH", f"{PREFIX}/lib/ovis-ldms")
    site = next(PREFIX.glob("lib/python3*/site-packages"), None)
    if site:
        prepend("PYTHONPATH", str(site))
    return env


def pvloom_binary():
    if os.environ.get("PVLOOM_BIN"):
        return os.environ["PVLOOM_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR")
    candidates = [REPO / "target" / "release" / "pvloom", REPO / "target" / "debug" / "pvloom"]
    if target:
        for t in (target, f"{target}-wt-{REPO.name.removeprefix('wt-')}"):
            candidates += [pathlib.Path(t) / "release" / "pvloom", pathlib.Path(t) / "debug" / "pvloom"]
    found = [c for c in candidates if c.exists()]
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else shutil.which("pvloom")


def wait_port(port, proc, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def run_worker(python, which, port, mode, env):
    out = subprocess.run(
        [python, "-c", WORKER, which, str(port), str(NSETS), str(SECONDS), mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=SECONDS + 60,
    )
    if out.returncode != 0:
        print(f"  {which} ({mode}) failed:\n{out.stderr.strip()[-2000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def ping_pong_floor():
    """Round trips/s of a strict 1-byte TCP ping-pong between two processes
    (``$PINGPONG_BIN --seconds 2 pingpong``), or None."""
    binary = os.environ.get("PINGPONG_BIN")
    if not binary or not os.path.exists(binary):
        return None
    out = subprocess.run([binary, "--seconds", "2", "pingpong"], capture_output=True, text=True, timeout=60)
    for line in out.stdout.splitlines():
        if line.startswith("pingpong "):
            return float(line.split()[1])
    return None


def main() -> int:
    real_ldmsd = PREFIX / "sbin" / "ldmsd"
    real_python = os.environ.get("LDMS_PYTHON", "/usr/bin/python3")
    pvloom_python = os.environ.get("PVLOOM_PYTHON", sys.executable)
    env = ldms_env()
    port = free_port()
    metrics = ",".join(["component_id:m:u64:0"] + [f"v{i}:d:u64:{i}" for i in range(64)])
    conf_lines = ["load name=test_sampler", f"config name=test_sampler action=add_schema schema=bench metrics={metrics}"]
    conf_lines += [
        f"config name=test_sampler action=add_set schema=bench instance=h/bench_{i} producer=h component_id={i}"
        for i in range(NSETS)
    ]
    conf_lines.append("start name=test_sampler interval=1000000 offset=0")
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write("\n".join(conf_lines) + "\n")
    conf.close()

    if real_ldmsd.exists() and os.environ.get("SERVER", "real") == "real":
        server = [str(real_ldmsd), "-x", f"sock:{port}:127.0.0.1", "-c", conf.name, "-F", "-v", "ERROR"]
        server_name = f"real ldmsd ({real_ldmsd})"
    else:
        binary = pvloom_binary()
        if not binary:
            print("neither a real ldmsd nor a pvloom binary: nothing to measure against")
            return 1
        server = [binary, "ldmsd", "-x", f"sock:{port}:127.0.0.1", "-c", conf.name, "-F", "-v", "ERROR"]
        note = "" if real_ldmsd.exists() else f"; NO REAL LDMS at {PREFIX}"
        server_name = f"pvloom ldmsd ({binary}){note}"
    print(f"server: {server_name}, {NSETS} sets x 65 metrics, port {port}; {SECONDS:g} s per run")
    proc = subprocess.Popen(server, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port, proc):
            print("the server did not start")
            return 1
        time.sleep(1.5)  # the first samples
        check = subprocess.run([real_python, "-c", "from ovis_ldms import ldms"], env=env, capture_output=True)
        real = None
        if check.returncode == 0:
            real = run_worker(real_python, "real", port, "loop", env)
        else:
            print(f"real Python API: ABSENT ({real_python} cannot import ovis_ldms.ldms); only pvloom is measured")
        real_cb = run_worker(real_python, "real", port, "cb", env) if real else None
        mine = run_worker(pvloom_python, "pvloom", port, "loop", env)
        mine_cb = run_worker(pvloom_python, "pvloom", port, "cb", env)
        batch = run_worker(pvloom_python, "pvloom", port, "update_all", env)
        for name, r in [("real ovis_ldms.ldms, set.update() loop", real),
                        ("real ovis_ldms.ldms, set.update(cb) all", real_cb),
                        ("pvloom.ldms, set.update() loop", mine),
                        ("pvloom.ldms, set.update(cb) all", mine_cb),
                        ("pvloom.ldms, ldms.update_all(sets)", batch)]:  # fmt: skip
            if r:
                print(f"  {name:42s} {r['rate']:10.0f} updates/s  ({r['updates']} in {r['seconds']:.2f} s, {r['sets']} sets)")
        if real and mine:
            print(f"ratio pvloom/real (same blocking loop): {mine['rate'] / real['rate']:.2f}x")
            if real_cb and mine_cb:
                print(f"ratio pvloom/real (same callback form): {mine_cb['rate'] / real_cb['rate']:.2f}x")
            if batch:
                print(f"ratio pvloom update_all/real loop: {batch['rate'] / real['rate']:.2f}x")
            floor = ping_pong_floor()
            if floor:
                print(f"strict TCP ping-pong between two processes (1 byte each way, blocking reads):"
                      f" {floor:.0f} round trips/s; every blocking update is one round trip plus the"
                      f" server's work: the loops ran at {real['rate'] / floor:.2f} (real) and"
                      f" {mine['rate'] / floor:.2f} (pvloom) of the ping-pong's rate")
            if real["check"] != mine["check"]:
                print(f"WARNING: component_id sums differ: real {real['check']}, pvloom {mine['check']}")
        elif mine:
            print("ratio: not computed (no real Python API run)")
        return 0
    finally:
        proc.kill()
        proc.wait(10)
        os.unlink(conf.name)


if __name__ == "__main__":
    sys.exit(main())
