"""Driver of bench/ca: starts each server, runs every client against it, prints a table."""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = ["pvloom-rust", "pvloom-py", "caproto", "pyepics"]
GROUPS = [("plain", ["read", "batch", "connect"]), ("flood", ["flood"]), ("many", ["many"])]
TITLES = {
    "read": "blocking reads of one PV",
    "batch": "batch read of 1000 PVs",
    "connect": "connect 1000 PVs",
    "flood": "monitor, one PV flooded",
    "many": "3000 subscriptions (30k/s offered)",
}


def free_port():
    while True:
        tcp = socket.socket()
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("0.0.0.0", port))
            return port
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()


def epics_env(port, repeater):
    env = dict(os.environ)
    env.update({
        "EPICS_CA_SERVER_PORT": str(port), "EPICS_CAS_SERVER_PORT": str(port),
        "EPICS_CA_REPEATER_PORT": str(repeater), "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1", "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_CA_AUTO_ADDR_LIST": "NO", "EPICS_CA_ADDR_LIST": f"127.0.0.1:{port}",
        "EPICS_CA_MAX_ARRAY_BYTES": "10000000", "PYTHONUNBUFFERED": "1",
    })
    return env


def start_server(kind, mode, prefix, env):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "bench_iocs.py"), kind, mode, prefix],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "READY" in line:
            break
    port = int(env["EPICS_CAS_SERVER_PORT"])
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} {mode} server did not start")


def run_client(client, scenario, prefix, seconds, env, rust_client, base_client=None):
    if client == "pvloom-rust":
        cmd = [rust_client, scenario, prefix, str(seconds)]
    elif client == "pvloom-rust@base":
        cmd = [base_client, scenario, prefix, str(seconds)]
    else:
        lib = {"pvloom-py": "pvloom", "caproto": "caproto", "pyepics": "pyepics"}[client]
        cmd = [sys.executable, os.path.join(HERE, "clients", "py_client.py"), lib, scenario, prefix, str(seconds)]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120 + 4 * seconds)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1][:60]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rust-client", required=True)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--servers", default="softioc,caproto")
    parser.add_argument("--scenarios", default=",".join(TITLES), help="comma-separated subset of " + ",".join(TITLES))
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset of " + ",".join(CLIENTS))
    parser.add_argument("--baseline-client", help="the Rust client built at an earlier revision")
    args = parser.parse_args()
    wanted, clients = args.scenarios.split(","), args.clients.split(",")
    if args.baseline_client and "pvloom-rust" in clients:
        clients.insert(clients.index("pvloom-rust") + 1, "pvloom-rust@base")
    groups = [(mode, [s for s in scenarios if s in wanted]) for mode, scenarios in GROUPS]
    groups = [(mode, scenarios) for mode, scenarios in groups if scenarios]
    results = {}
    for kind in args.servers.split(","):
        for mode, scenarios in groups:
            port, repeater = free_port(), free_port()
            env = epics_env(port, repeater)
            prefix = f"B{port}:"
            rep = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "caproto-repeater")], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            server = start_server(kind, mode, prefix, env)
            try:
                for scenario in scenarios:
                    for client in clients:
                        result = run_client(client, scenario, prefix, args.seconds, env, args.rust_client,
                                            args.baseline_client)
                        results[(kind, scenario, client)] = result
                        print(f"  {kind:8} {scenario:8} {client:12} {result}", file=sys.stderr, flush=True)
                if mode == "plain" and "pvloom-rust" in clients:
                    timers = run_client("pvloom-rust", "timers", prefix, args.seconds, env, args.rust_client)
                    results[(kind, "timers", "pvloom-rust")] = timers
            finally:
                server.terminate()
                out, _ = server.communicate(timeout=10)
                posted = [l for l in (out or "").splitlines() if l.startswith("POSTED")]
                if posted and mode in ("flood", "many"):
                    print(f"  {kind} {mode}: server posted {posted[-1].split()[1]} updates in all", file=sys.stderr)
                rep.kill()
                rep.wait()
    print()
    header = (f"{'measurement':44}" + "".join(f"{c:>16}" for c in CLIENTS)
              + f"{'rust/pyepics':>14}{'py/pyepics':>12}{'py/caproto':>12}")
    print(header)
    print("-" * len(header))
    for kind in args.servers.split(","):
        for _, scenarios in groups:
            for scenario in scenarios:
                row = [results.get((kind, scenario, c), {}) for c in CLIENTS]
                unit = next((r.get("unit") for r in row if "unit" in r), "")
                cells = "".join(f"{r['rate']:>16,.0f}" if "rate" in r else f"{'error' if r else '-':>16}" for r in row)
                base = row[3].get("rate")
                ratio = lambda r: f"{r['rate'] / base:.2f}x" if base and "rate" in r else "-"
                caproto = row[2].get("rate")
                py_caproto = f"{row[1]['rate'] / caproto:.2f}x" if caproto and "rate" in row[1] else "-"
                print(f"{TITLES[scenario] + ' @' + kind + ' (' + unit + ')':44}{cells}{ratio(row[0]):>14}"
                      f"{ratio(row[1]):>12}{py_caproto:>12}")
                if scenario in ("flood", "many"):
                    cpu = "".join(f"{r['cpu_us_per_update']:>13,.2f} us" if "cpu_us_per_update" in r else f"{'-':>16}" for r in row)
                    cbase = row[3].get("cpu_us_per_update")
                    cratio = lambda r: f"{cbase / r['cpu_us_per_update']:.2f}x" if cbase and r.get("cpu_us_per_update") else "-"
                    print(f"{'  client CPU per update (lower is better)':44}{cpu}{cratio(row[0]):>14}{cratio(row[1]):>12}")
                    rss = "".join(f"{r['rss_mib']:>13,.1f} MB" if "rss_mib" in r else f"{'-':>16}" for r in row)
                    print(f"{'  client peak RSS':44}{rss}")
    for kind in args.servers.split(","):
        row = {c: results.get((kind, "batch", c), {}).get("rate") for c in CLIENTS}
        if row["pvloom-py"] is None:
            continue
        print(f"\nbatch read of 1000 PVs @{kind}: pvloom (Python) {row['pvloom-py']:,.0f} reads/s", end="")
        for other in ("caproto", "pyepics"):
            if row[other]:
                print(f", {row['pvloom-py'] / row[other]:.2f}x {other} ({row[other]:,.0f})", end="")
        print()
    if args.baseline_client:
        print("\npvloom Rust client, this revision / baseline (same run):")
        for kind in args.servers.split(","):
            for _, scenarios in groups:
                for scenario in scenarios:
                    new = results.get((kind, scenario, "pvloom-rust"), {}).get("rate")
                    old = results.get((kind, scenario, "pvloom-rust@base"), {}).get("rate")
                    if new and old:
                        print(f"  {TITLES[scenario] + ' @' + kind:52}{new:>12,.0f}{old:>12,.0f}{new / old:>8.2f}x")
    for kind in args.servers.split(","):
        timers = results.get((kind, "timers", "pvloom-rust"), {})
        if "timers_after" in timers:
            print(f"\nruntime timers armed after 100 000 reads @{kind}: {timers['timers_after']} "
                  f"({timers['circuits']} circuit(s), each with its echo keepalive; {timers['rate']:,.0f} reads/s)")
    errors = {k: v["error"] for k, v in results.items() if "error" in v}
    if errors:
        print("\nerrors:")
        for key, error in errors.items():
            print(f"  {key}: {error}")


if __name__ == "__main__":
    main()
