"""chirp's Python pool API measured the same way on both implementations: the real
libchirp pool (PyPI 1.2.1b3, ``--impl libchirp``) and pvloom.chirp (``--impl pvloom``).
One code path for both, so the numbers compare: a sink or echo node in a child process,
a sender here, 64-byte messages, on 127.0.0.1, encryption disabled.

Modes (one line each, ``<impl>-py <mode> <rate> <unit>``):
  async    one-way asynchronous sends/s (each future done at the OS hand-off)
  sync     one-way synchronous sends/s (each done when the remote released it)
  echo     round trips/s: send, wait for the echo to reach this node's handler
  request  round trips/s: ``request(msg).result()``, one at a time (libchirp's pool
           loses some answers to its race: each lost one costs TIMEOUT, 1 s here, and
           is counted as lost, not as a round trip)

usage: chirp_py_bench.py [--impl pvloom|libchirp] [SECONDS] [MODE ...]
(internal: chirp_py_bench.py --impl I serve PORT sink|echo sync|async)"""
import argparse
import importlib
import socket
import subprocess
import sys
import threading
import time

MODULES = {"libchirp": "libchirp.pool", "pvloom": "pvloom.chirp"}


def config(api, port, sync, timeout=None):
    c = api.Config()
    c.DISABLE_ENCRYPTION = True
    c.SYNCHRONOUS = sync
    c.PORT = port
    if timeout is not None:
        c.TIMEOUT = timeout
    return c


def message(api, port):
    msg = api.Message()
    msg.data = b"x" * 64
    msg.address = "127.0.0.1"
    msg.port = port
    return msg


def serve(api, port, role, sync):
    class Node(api.Chirp):
        def handler(self, msg):
            if role == "echo":
                # Waited for: AUTO_RELEASE releases after the handler, and a message
                # still sending cannot be released (both raise, and the slot leaks).
                self.send(msg).result(timeout=10)

    loop = api.Loop()
    node = Node(loop, config(api, port, sync))
    print("ready", flush=True)
    sys.stdin.read()
    node.stop()
    loop.stop()


def child(impl, port, role, mode):
    p = subprocess.Popen([sys.executable, __file__, "--impl", impl, "serve", str(port), role, mode],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    return p


def end_node(node, loop):
    try:
        node.stop()
    except Exception as e:
        # libchirp's pool: stop() can raise after a clean run (an answer its request
        # race lost is never released); reported, the rate still counts.
        print("stop() raised:", repr(e), file=sys.stderr, flush=True)
    loop.stop()


def end_child(srv):
    # libchirp's stop() can hang on unreleased messages: the child is killed by its PID.
    srv.kill()
    srv.wait(10)


def one_way(api, impl, port, sync, seconds):
    srv = child(impl, port, "sink", "sync" if sync else "async")
    loop = api.Loop()
    node = api.Chirp(loop, config(api, port + 1, sync))
    try:
        count, end, pending = 0, time.time() + seconds, []
        start = time.time()
        while time.time() < end:
            pending.append(node.send(message(api, port)))
            if len(pending) >= 1000:
                for f in pending:
                    f.result(timeout=10)
                count += len(pending)
                pending = []
        for f in pending:
            f.result(timeout=10)
        count += len(pending)
        return count / (time.time() - start), ""
    finally:
        end_node(node, loop)
        end_child(srv)


def echo(api, impl, port, seconds):
    srv = child(impl, port, "echo", "async")
    got = threading.Event()

    class Client(api.Chirp):
        def handler(self, msg):
            got.set()

    loop = api.Loop()
    node = Client(loop, config(api, port + 1, False))
    try:
        count, end = 0, time.time() + seconds
        start = time.time()
        while time.time() < end:
            got.clear()
            node.send(message(api, port)).result(timeout=10)
            if got.wait(10):
                count += 1
        return count / (time.time() - start), ""
    finally:
        end_node(node, loop)
        end_child(srv)


def request(api, impl, port, seconds):
    srv = child(impl, port, "echo", "async")
    loop = api.Loop()
    node = api.Chirp(loop, config(api, port + 1, False, timeout=1.0))
    try:
        count, lost, end = 0, 0, time.time() + seconds
        start = time.time()
        while time.time() < end:
            try:
                node.request(message(api, port)).result(timeout=10)
                count += 1
            except TimeoutError:
                lost += 1
        return count / (time.time() - start), " (%d lost)" % lost if lost else ""
    finally:
        end_node(node, loop)
        end_child(srv)


def free():
    # Both need PORT > 1024 free, and the sender takes the next one.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=sorted(MODULES), default="libchirp")
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args()
    api = importlib.import_module(MODULES[args.impl])
    if args.rest[:1] == ["serve"]:
        _, port, role, mode = args.rest
        serve(api, int(port), role, mode == "sync")
        return
    rest = list(args.rest)
    seconds = float(rest.pop(0)) if rest and rest[0].replace(".", "", 1).isdigit() else 3.0
    modes = rest or ["async", "sync", "echo", "request"]
    runs = {
        "async": (lambda: one_way(api, args.impl, free(), False, seconds), "msg/s"),
        "sync": (lambda: one_way(api, args.impl, free(), True, seconds), "msg/s"),
        "echo": (lambda: echo(api, args.impl, free(), seconds), "round-trips/s"),
        "request": (lambda: request(api, args.impl, free(), seconds), "round-trips/s"),
    }
    for mode in modes:
        run, unit = runs[mode]
        rate, note = run()
        print("%s-py %s %.0f %s%s" % (args.impl, mode, rate, unit, note), flush=True)


if __name__ == "__main__":
    main()
