"""The server half of bench/ca: pvloom's server (`pvloom ioc`), pythonSoftIOC (EPICS base
rsrv) and caproto's server serve the same PVs (the first two load the very same .db
file); the same clients load them. Prints rates, server CPU per update and ratios."""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from ca_bench import HERE, epics_env, free_port, run_client

SERVERS = ["pvloom", "softioc", "caproto"]
ROWS = [
    ("batch", "pvloom-rust", "reads/s served (batches of 1000 reads)"),
    ("read", "pyepics", "blocking reads/s (pyepics client)"),
    ("fanout", "pvloom-rust", "fan-out: 50 clients x 100 PVs at 10 Hz"),
    ("connect10k", "pvloom-rust", "create 10 000 channels"),
]


def write_db(path):
    with open(path, "w") as db:
        db.write('record(ai, "$(P)AI") { field(VAL, "1.5") }\n')
        for i in range(10_000):
            db.write(f'record(longin, "$(P)N{i}") {{ field(VAL, "{i}") }}\n')
        for i in range(100):
            db.write(f'record(calc, "$(P)C{i}") {{ field(SCAN, ".1 second") field(CALC, "VAL+1") }}\n')


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(kind, prefix, env, db, pvloom_bin):
    if kind == "pvloom":
        cmd = [pvloom_bin, "ioc", db, "-m", f"P={prefix}"]
    else:
        cmd = [sys.executable, os.path.join(HERE, "bench_iocs.py"), kind, "db", prefix]
    env = dict(env, BENCH_DB=db)
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "READY" in line or "records served" in line:
            break
    time.sleep(1.0)
    return proc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rust-client", required=True)
    parser.add_argument("--pvloom", required=True)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--baseline-pvloom", help="pvloom built at an earlier revision")
    args, _client_half_only = parser.parse_known_args()  # --scenarios, --clients: the client half's
    servers = SERVERS + (["pvloom@base"] if args.baseline_pvloom else [])
    db = os.path.join(tempfile.mkdtemp(), "bench_server.db")
    write_db(db)
    results = {}
    for kind in servers:
        port, repeater = free_port(), free_port()
        env = epics_env(port, repeater)
        rep = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "caproto-repeater")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        prefix = f"S{port}:"
        binary = args.baseline_pvloom if kind == "pvloom@base" else args.pvloom
        server = start(kind.split("@")[0], prefix, env, db, binary)
        try:
            for scenario, client, _ in ROWS:
                before = cpu_seconds(server.pid)
                result = run_client(client, scenario, prefix, args.seconds, env, args.rust_client)
                used = cpu_seconds(server.pid) - before
                if "rate" in result and scenario == "fanout":
                    work = result["rate"] * (args.seconds + 0.5)
                    result["server_cpu_us"] = used * 1e6 / max(work, 1)
                results[(kind, scenario)] = result
                print(f"  {kind:8} {scenario:10} {result}", file=sys.stderr, flush=True)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
            rep.kill()
            rep.wait()
    print()
    header = f"{'server half':48}" + "".join(f"{s:>16}" for s in servers) + f"{'pvloom/softIoc':>16}"
    print(header)
    print("-" * len(header))
    for scenario, client, title in ROWS:
        row = [results.get((s, scenario), {}) for s in servers]
        unit = next((r.get("unit") for r in row if "unit" in r), "")
        cells = "".join(f"{r['rate']:>16,.0f}" if "rate" in r else f"{'error':>16}" for r in row)
        base = row[1].get("rate")
        ratio = f"{row[0]['rate'] / base:.2f}x" if base and "rate" in row[0] else "-"
        base_ratio = ""
        if args.baseline_pvloom and "rate" in row[0] and row[-1].get("rate"):
            base_ratio = f"   pvloom/pvloom@base {row[0]['rate'] / row[-1]['rate']:.2f}x"
        print(f"{title + ' (' + unit + ')':48}{cells}{ratio:>16}{base_ratio}")
        if any("server_cpu_us" in r for r in row):
            cpu = "".join(f"{r['server_cpu_us']:>13,.2f} us" if "server_cpu_us" in r else f"{'-':>16}" for r in row)
            cbase = row[1].get("server_cpu_us")
            cratio = f"{cbase / row[0]['server_cpu_us']:.2f}x" if cbase and row[0].get("server_cpu_us") else "-"
            print(f"{'  server CPU per update (lower is better)':48}{cpu}{cratio:>16}")
    errors = {k: v["error"] for k, v in results.items() if "error" in v}
    for key, error in errors.items():
        print(f"  error {key}: {error}")


if __name__ == "__main__":
    main()
