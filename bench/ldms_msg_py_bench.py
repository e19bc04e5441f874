#!/usr/bin/env python3
"""The message half of bench/ldms from Python: a publisher process -> a daemon -> a
subscriber process, 64 B and 1 KiB messages, through pvloom.ldms + `pvloom ldmsd` and,
when LDMS_PREFIX names an LDMS build, through the real Python API + the real ldmsd.

It prints messages published and received per second, how many arrived, and the ratio
of pvloom's received rate to the real one's.

    bench/ldms_msg_py_bench.py [--count N] [--seconds S]

Roles (run by the driver in child processes): `pub API PORT NAME SIZE COUNT` and
`sub API PORT NAME COUNT SECONDS READYFILE`.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def load(api):
    if api == "real":
        from ovis_ldms import ldms  # noqa: PLC0415
    else:
        from pvloom import ldms  # noqa: PLC0415
    ldms.init(16 * 1024 * 1024)
    return ldms


def role_pub(api, port, name, size, count):
    ldms = load(api)
    x = ldms.Xprt("sock")
    x.connect("127.0.0.1", int(port))
    data = "x" * int(size)
    count = int(count)
    t0 = time.perf_counter()
    sent = 0
    for _ in range(count):
        try:
            x.msg_publish(name, data, ldms.LDMS_MSG_STRING)
            sent += 1
        except Exception as e:  # the real one fails when its quota is gone
            print(json.dumps({"error": str(e)}), file=sys.stderr)
            break
    dt = time.perf_counter() - t0
    time.sleep(0.5)
    x.close()
    print(json.dumps({"published": sent, "seconds": dt}))


def role_sub(api, port, name, count, seconds, ready):
    ldms = load(api)
    count, seconds = int(count), float(seconds)
    state = {"n": 0, "first": None, "last": None}
    done = threading.Event()

    def cb(client, m, arg):
        now = time.perf_counter()
        if state["first"] is None:
            state["first"] = now
        state["last"] = now
        state["n"] += 1
        if state["n"] >= count:
            done.set()

    client = ldms.MsgClient(name, 0, cb, None)
    x = ldms.Xprt("sock")
    x.connect("127.0.0.1", int(port))
    x.msg_subscribe(name, 0)
    with open(ready, "w") as f:
        f.write("ready\n")
    done.wait(seconds)
    time.sleep(0.2)
    span = (state["last"] or 0) - (state["first"] or 0)
    print(json.dumps({"received": state["n"], "seconds": span}))
    os._exit(0)  # the real module can hang in its exit handlers with a live xprt


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, secs=10):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start_daemon(kind, port, conf, env):
    if kind == "real":
        prefix = os.environ["LDMS_PREFIX"]
        cmd = [f"{prefix}/sbin/ldmsd", "-F", "-x", f"sock:{port}:127.0.0.1", "-c", conf, "-v", "ERROR"]
    else:
        exe = os.environ.get("PVLOOM", os.path.join(ROOT, "target", "release", "pvloom"))
        cmd = [exe, "ldmsd", "-F", "-x", f"sock:{port}:127.0.0.1", "-c", conf, "-v", "ERROR"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_port(port):
        p.kill()
        raise SystemExit(f"{kind} daemon did not listen")
    return p


def run_one(kind, size, count, seconds, env, python):
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "msg.conf")
        with open(conf, "w") as f:
            f.write("msg_enable\n")
        ready = os.path.join(tmp, "ready")
        daemon = start_daemon(kind, port, conf, env)
        procs = [daemon]
        try:
            me = os.path.abspath(__file__)
            sub = subprocess.Popen([python, me, "sub", kind, str(port), "bench", str(count), str(seconds), ready],
                                   env=env, stdout=subprocess.PIPE, text=True)
            procs.append(sub)
            end = time.time() + 20
            while not os.path.exists(ready) and time.time() < end:
                time.sleep(0.05)
            try:
                pub = subprocess.run([python, me, "pub", kind, str(port), "bench", str(size), str(count)],
                                     env=env, capture_output=True, text=True, timeout=seconds + 30)
                p = json.loads(pub.stdout.strip().splitlines()[-1])
            except (subprocess.TimeoutExpired, IndexError, ValueError):
                # The real publisher can stall for good once its quota is gone.
                p = {"published": 0, "seconds": 0, "stalled": True}
            out, _ = sub.communicate(timeout=seconds + 30)
            s = json.loads(out.strip().splitlines()[-1])
            return p, s
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "pub":
        return role_pub(*sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "sub":
        return role_sub(*sys.argv[2:])
    count = 50_000
    seconds = 30.0
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--count":
            count = int(args.pop(0))
        elif a == "--seconds":
            seconds = float(args.pop(0))
    kinds = ["pvloom"]
    real_env = None
    if os.environ.get("LDMS_PREFIX"):
        prefix = os.environ["LDMS_PREFIX"]
        lib = f"{prefix}/lib"
        site = next((os.path.join(lib, d, "site-packages") for d in os.listdir(lib) if d.startswith("python3")), "")
        real_env = dict(os.environ, LD_LIBRARY_PATH=f"{lib}:{lib}/ovis-ldms", ZAP_LIBPATH=f"{lib}/ovis-ldms",
                        LDMSD_PLUGIN_LIBPATH=f"{lib}/ovis-ldms", PYTHONPATH=site)
        kinds.append("real")
    print(f"{'stack':8} {'size':>6} {'published/s':>12} {'received/s':>11} {'received':>16}")
    rates = {}
    for size in (64, 1024):
        for kind in kinds:
            env = real_env if kind == "real" else dict(os.environ)
            python = os.environ.get("LDMS_PYTHON", "/usr/bin/python3") if kind == "real" else sys.executable
            p, s = run_one(kind, size, count, seconds, env, python)
            pub_rate = p["published"] / p["seconds"] if p["seconds"] else 0
            recv_rate = s["received"] / s["seconds"] if s["seconds"] else 0
            rates[(kind, size)] = recv_rate
            got = f"{s['received']}/{'stalled' if p.get('stalled') else p['published']}"
            print(f"{kind:8} {size:>6} {pub_rate:>12,.0f} {recv_rate:>11,.0f} {got:>16}", flush=True)
    if "real" in kinds:
        for size in (64, 1024):
            real = rates[("real", size)]
            if real:
                print(f"received-rate ratio pvloom/real at {size} B: {rates[('pvloom', size)] / real:.1f}x")


if __name__ == "__main__":
    main()
