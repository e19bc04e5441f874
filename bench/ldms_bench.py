#!/usr/bin/env python3
"""bench/ldms, the daemon half: pvloom ldmsd beside the real ldmsd in one run.

1. Serving: N sets x 64 u64 metrics (test_sampler), updated by pvloom's Rust client
   (examples/ldms_bench: every set looked up, W updates in flight): updates/s, client
   and server CPU per update, and RSS per served set against the set's size.
2. Samplers: CPU per sample of meminfo, vmstat, loadavg, procstat and procnetdev2 run by
   the daemon at a 10 ms interval (the daemon's whole CPU time over its samples).
3. Aggregation: P producer daemons (pvloom ldmsd, one set each) pulled by one aggregator
   every second: the aggregator's CPU per set update and whether every set arrived.

Each measurement runs against `pvloom ldmsd` and, when LDMS_PREFIX holds a real LDMS
build (sbin/ldmsd), against the real ldmsd with the same configuration, and prints the
ratio. Every process started is killed by PID. Options: --seconds S, --sets N,
--window W, --producers P, --skip serve,samplers,aggregator.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
RELEASE = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"
PVLOOM = RELEASE / "pvloom"
CLIENT = RELEASE / "examples" / "ldms_bench"
PREFIX = pathlib.Path(os.environ.get("LDMS_PREFIX", "/nonexistent"))


def real_env() -> dict[str, str] | None:
    """The environment the real ldmsd needs, or None without a real build."""
    ldmsd = PREFIX / "sbin" / "ldmsd"
    if not ldmsd.exists():
        return None
    env = dict(os.environ)
    lib = PREFIX / "lib"
    plugins = lib / "ovis-ldms"
    env["LD_LIBRARY_PATH"] = f"{lib}:{plugins}:" + env.get("LD_LIBRARY_PATH", "")
    env["ZAP_LIBPATH"] = str(plugins)
    env["LDMSD_PLUGIN_LIBPATH"] = str(plugins)
    env["PATH"] = f"{PREFIX / 'sbin'}:{PREFIX / 'bin'}:" + env["PATH"]
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid`, in nanoseconds resolution where the kernel keeps
    schedstat (a 10 ms tick would swamp an aggregator's few updates), else from stat."""
    total = 0
    try:
        for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Daemon:
    """One ldmsd (real or pvloom) on 127.0.0.1, stopped by PID."""

    def __init__(self, kind: str, conf: str, tmp: pathlib.Path, port: int | None = None):
        self.kind, self.port = kind, port or free_port()
        path = tmp / f"{kind}-{self.port}.conf"
        path.write_text(conf)
        if kind == "pvloom":
            cmd, env = [str(PVLOOM), "ldmsd"], dict(os.environ)
        else:
            cmd, env = ["ldmsd"], real_env()
        cmd += ["-x", f"sock:{self.port}:127.0.0.1", "-c", str(path), "-F", "-v", "ERROR"]
        if kind == "real":
            cmd += ["-m", "1g"]
        self.log = open(tmp / f"{kind}-{self.port}.log", "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_listening()

    def wait_listening(self) -> None:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} ldmsd exited: see {self.log.name}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} ldmsd did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def kinds() -> list[str]:
    return ["pvloom", "real"] if real_env() else ["pvloom"]


def test_sampler_conf(nsets: int, prefix: str = "h/bench", interval_us: int = 1_000_000) -> str:
    metrics = ",".join(["component_id:m:u64:0"] + [f"v{i}:d:u64:{i}" for i in range(64)])
    lines = ["load name=test_sampler", f"config name=test_sampler action=add_schema schema=bench metrics={metrics}"]
    lines += [
        f"config name=test_sampler action=add_set schema=bench instance={prefix}_{i:04d} producer=h component_id={i}"
        for i in range(nsets)
    ]
    lines.append(f"start name=test_sampler interval={interval_us} offset=0")
    return "\n".join(lines) + "\n"


def parse_kv(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def serve(args, tmp: pathlib.Path) -> None:
    print(f"== serving: {args.sets} sets x 64 metrics, pvloom's Rust client, {args.window} updates in flight ==")
    conf = test_sampler_conf(args.sets)
    rows = {}
    for kind in kinds():
        empty = Daemon(kind, "", tmp)
        time.sleep(0.5)
        rss0 = rss_kib(empty.proc.pid)
        empty.stop()
        d = Daemon(kind, conf, tmp)
        try:
            time.sleep(1.5)
            out = subprocess.run(
                [str(CLIENT), f"127.0.0.1:{d.port}", "--seconds", str(args.seconds), "--window", str(args.window),
                 "--server-pid", str(d.proc.pid)],
                capture_output=True, text=True, timeout=args.seconds + 120, check=True,
            ).stdout
            r = parse_kv(out.strip().splitlines()[-1])
            r["rss_per_set"] = (rss_kib(d.proc.pid) - rss0) * 1024 / args.sets
            # And once the daemon has had 2 s of quiet to give a burst's memory back.
            time.sleep(2)
            r["rss_settled"] = (rss_kib(d.proc.pid) - rss0) * 1024 / args.sets
            rows[kind] = r
        finally:
            d.stop()
        print(
            f"  {kind:7} ldmsd: {float(r['rate']):>9,.0f} updates/s  client CPU {r['client_cpu_us']:>5} us/update  "
            f"server CPU {r['server_cpu_us']:>5} us/update  RSS/set {r['rss_per_set']:,.0f} B "
            f"({r['rss_per_set'] / int(r['set_bytes']):.2f}x the set's {int(r['set_bytes']):,} B) right after, "
            f"{r['rss_settled']:,.0f} B ({r['rss_settled'] / int(r['set_bytes']):.2f}x) 2 s later"
        )
    if "real" in rows:
        p, q = rows["pvloom"], rows["real"]
        print(f"  pvloom/real: rate {ratio(float(p['rate']), float(q['rate']))}, "
              f"server CPU per update {ratio(float(q['server_cpu_us']), float(p['server_cpu_us']))} less")
    else:
        print("  (no real ldmsd: set LDMS_PREFIX to an LDMS build to compare)")


SAMPLERS = ["meminfo", "vmstat", "loadavg", "procstat", "procnetdev2"]


def sampler_conf(interval_us: int) -> str:
    return "".join(
        f"load name={p}\nconfig name={p} producer=h instance=h/{p} component_id=1\n"
        f"start name={p} interval={interval_us} offset=0\n"
        for p in SAMPLERS
    )


def samplers(args, tmp: pathlib.Path) -> None:
    interval_us = 10_000
    print(f"== samplers: meminfo, vmstat, loadavg, procstat, procnetdev2 every {interval_us // 1000} ms ==")
    per = {}
    for kind in kinds():
        d = Daemon(kind, sampler_conf(interval_us), tmp)
        try:
            time.sleep(1.0)
            c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
            time.sleep(args.seconds)
            c1, t1 = cpu_seconds(d.proc.pid), time.monotonic()
        finally:
            d.stop()
        samples = len(SAMPLERS) * (t1 - t0) / (interval_us / 1e6)
        per[kind] = (c1 - c0) * 1e6 / samples
        print(f"  {kind:7} ldmsd: {per[kind]:6.1f} us CPU per sample (daemon total, {samples:,.0f} samples)")
    if "real" in per:
        print(f"  pvloom/real: {ratio(per['real'], per['pvloom'])} less CPU per sample")
    if (RELEASE / "examples" / "sample_cost").exists():
        out = subprocess.run([str(RELEASE / "examples" / "sample_cost")], capture_output=True, text=True, timeout=300)
        print("  pvloom sampler code alone (examples/sample_cost):")
        for line in out.stdout.strip().splitlines():
            print("    " + line)


def aggregator(args, tmp: pathlib.Path) -> None:
    n = args.producers
    print(f"== aggregation: {n} producers (pvloom ldmsd, one 64-metric set each), pulled every second ==")
    producers = []
    try:
        for i in range(n):
            producers.append(Daemon("pvloom", test_sampler_conf(1, prefix=f"p{i:03d}/bench"), tmp))
        conf = "".join(
            f"prdcr_add name=p{i} host=127.0.0.1 port={p.port} xprt=sock type=active reconnect=2000000\n"
            f"prdcr_start name=p{i}\n"
            for i, p in enumerate(producers)
        )
        conf += "updtr_add name=u1 interval=1000000 offset=100000\nupdtr_prdcr_add name=u1 regex=.*\nupdtr_start name=u1\n"
        per = {}
        for kind in kinds():
            agg = Daemon(kind, conf, tmp)
            try:
                time.sleep(4.0)
                c0, t0 = cpu_seconds(agg.proc.pid), time.monotonic()
                time.sleep(args.seconds)
                c1, t1 = cpu_seconds(agg.proc.pid), time.monotonic()
                rss = rss_kib(agg.proc.pid)
                ls = subprocess.run([str(PVLOOM), "ldms", "ls", "-h", "127.0.0.1", "-p", str(agg.port)],
                                    capture_output=True, text=True, timeout=30).stdout
                got = len([l for l in ls.splitlines() if l.strip()])
            finally:
                agg.stop()
            per[kind] = (c1 - c0) * 1e6 / (n * (t1 - t0))
            print(f"  {kind:7} aggregator: {per[kind]:6.1f} us CPU per set update, RSS {rss / 1024:.1f} MiB, "
                  f"serving {got}/{n} sets")
        if "real" in per:
            print(f"  pvloom/real: {ratio(per['real'], per['pvloom'])} less CPU per set update")
    finally:
        for p in producers:
            p.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--sets", type=int, default=1000)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--producers", type=int, default=100)
    ap.add_argument("--skip", default="")
    args = ap.parse_args()
    for b in (PVLOOM, CLIENT):
        if not b.exists():
            sys.exit(f"{b} is missing: run bench/ldms (it builds the release binaries)")
    print(f"real LDMS: {PREFIX} " + ("found" if real_env() else "not found (LDMS_PREFIX): pvloom only"))
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory(prefix="pvloom-ldms-bench-") as t:
        tmp = pathlib.Path(t)
        if "serve" not in skip:
            serve(args, tmp)
        if "samplers" not in skip:
            samplers(args, tmp)
        if "aggregator" not in skip:
            aggregator(args, tmp)


if __name__ == "__main__":
    main()
