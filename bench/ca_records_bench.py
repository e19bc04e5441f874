"""Records processed per CPU-second: `pvloom ioc` and EPICS base's own IOC
(tests/peers/base_iocsh.py, on epicscorelibs) load the same 10 000-record database in the
same run — CHAINS chains of calc records, half linked by FLNK (each record reads the one
before it), half by CP input links (each record processes when the one before it posts),
every chain started by a periodic head. Each IOC runs for SECONDS; the IOC's CPU time
(from /proc) over the records it processed gives CPU per record processing, and a read
of every chain's tail checks that the chain really ran to its end.

usage: ca_records_bench.py --pvloom PATH [--seconds S] [--chains N] [--length L]
       [--period P]  (the heads' SCAN period, a menu value: ".1 second", "1 second", ...)
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from ca_bench import epics_env, free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PERIODS = {"10 second": 10, "5 second": 5, "2 second": 2, "1 second": 1, ".5 second": 0.5,
           ".2 second": 0.2, ".1 second": 0.1}


def write_db(path, chains, length, period):
    with open(path, "w") as db:
        for c in range(chains):
            cp = c % 2 == 1
            # The head counts up each scan; the rest add 1 to the one before.
            first_link = "" if cp else f' field(FLNK, "R{c}_1")'
            db.write(f'record(calc, "R{c}_0") {{ field(SCAN, "{period}") field(CALC, "VAL+1"){first_link} }}\n')
            for k in range(1, length):
                inp = f"R{c}_{k - 1} CP" if cp else f"R{c}_{k - 1}"
                flnk = "" if cp or k == length - 1 else f' field(FLNK, "R{c}_{k + 1}")'
                db.write(f'record(calc, "R{c}_{k}") {{ field(INPA, "{inp}") field(CALC, "A+1"){flnk} }}\n')


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(proc, marker, limit=120):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError(f"IOC exited with {proc.returncode}")
        if marker in line:
            return
    raise RuntimeError(f"no {marker!r} from the IOC")


def heads_and_tails(env, chains, length):
    """Every chain's head and tail value, read with pyepics in a child."""
    names = [f"R{c}_0" for c in range(chains)] + [f"R{c}_{length - 1}" for c in range(chains)]
    script = ("import json, sys, epics\n"
              "pvs = [epics.PV(n, auto_monitor=False) for n in sys.argv[1:]]\n"
              "[p.wait_for_connection(10) for p in pvs]\n"
              "print(json.dumps([p.get(use_monitor=False, timeout=10) for p in pvs]))\n")
    out = subprocess.run([sys.executable, "-c", script, *names], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    import json
    values = json.loads(out.strip().splitlines()[-1])
    return values[:chains], values[chains:]


def run(kind, args, workdir):
    port = free_port()
    env = epics_env(port, free_port())
    if kind == "pvloom":
        cmd, marker = [args.pvloom, "ioc", "st.cmd"], "served on port"
    else:
        cmd, marker = [sys.executable, os.path.join(REPO, "tests/peers/base_iocsh.py"), "st.cmd"], "SCRIPT-DONE"
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        wait_for(proc, marker)
        time.sleep(1.0)
        heads0, _ = heads_and_tails(env, args.chains, args.length)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        heads1, tails = heads_and_tails(env, args.chains, args.length)
        # A chain that ran to its end: the tail is its head plus the chain's length - 1
        # (give or take the scans in flight while reading: CP chains lag in base). Only
        # those count whole; of the others only the head is known to have processed.
        ok = [abs(t - (h + args.length - 1)) <= 2 for h, t in zip(heads1, tails)]
        processed = sum((h1 - h0) * (args.length if good else 1) for h0, h1, good in zip(heads0, heads1, ok))
        return {"processed": processed, "seconds": t1 - t0, "cpu": cpu1 - cpu0, "chains_ok": sum(ok)}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pvloom", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--period", default=".1 second", choices=sorted(PERIODS))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="pvloom-records-bench-")
    write_db(os.path.join(workdir, "chains.db"), args.chains, args.length, args.period)
    with open(os.path.join(workdir, "st.cmd"), "w") as st:
        st.write('dbLoadRecords("chains.db")\niocInit\n')
    records = args.chains * args.length
    offered = records / PERIODS[args.period]
    print(f"== records: {records:,} calc records in {args.chains} chains of {args.length} (half FLNK, half CP), "
          f"heads every {args.period}: {offered:,.0f} processings/s offered, {args.seconds} s ==")
    rows = {}
    for kind in ["pvloom", "base"]:
        r = run(kind, args, workdir)
        rows[kind] = r
        per_cpu = r["processed"] / r["cpu"] if r["cpu"] else float("inf")
        print(f"  {kind:6} IOC: {r['processed'] / r['seconds']:>10,.0f} records processed/s, "
              f"{r['cpu'] / max(r['processed'], 1) * 1e6:6.2f} us CPU per processing, "
              f"{per_cpu:>12,.0f} processings per CPU-second, chains run to their end {r['chains_ok']}/{args.chains}")
    p, b = rows["pvloom"], rows["base"]
    if p["cpu"] and b["cpu"] and b["processed"]:
        ratio = (p["processed"] / p["cpu"]) / (b["processed"] / b["cpu"])
        print(f"  pvloom/base: {ratio:.2f}x the records processed per CPU-second (target 2x)")


if __name__ == "__main__":
    main()
