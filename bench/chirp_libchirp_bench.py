"""libchirp's own Python pool, measured the way bench/chirp measures pvloom: a sink or
echo node in a child process, a sender here; one-way async and sync messages/s and
echo round trips/s, 64-byte messages, on 127.0.0.1.

usage: chirp_libchirp_bench.py [SECONDS]      (internal: serve PORT sink|echo sync|async)"""
import subprocess
import sys
import threading
import time

from libchirp.pool import Chirp, Config, Loop, Message


def config(port, sync):
    c = Config()
    c.DISABLE_ENCRYPTION = True
    c.SYNCHRONOUS = sync
    c.PORT = port
    return c


def serve(port, role, sync):
    class Node(Chirp):
        def handler(self, msg):
            if role == "echo":
                self.send(msg)

    loop = Loop()
    node = Node(loop, config(port, sync))
    print("ready", flush=True)
    sys.stdin.read()
    node.stop()
    loop.stop()


def child(port, role, mode):
    p = subprocess.Popen([sys.executable, __file__, "serve", str(port), role, mode],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    return p


def one_way(port, sync, seconds):
    srv = child(port, "sink", "sync" if sync else "async")
    loop = Loop()
    node = Chirp(loop, config(port + 1, sync))
    try:
        count, end, pending = 0, time.time() + seconds, []
        start = time.time()
        while time.time() < end:
            msg = Message()
            msg.data = b"x" * 64
            msg.address = "127.0.0.1"
            msg.port = port
            pending.append(node.send(msg))
            if len(pending) >= 1000:
                for f in pending:
                    f.result(timeout=10)
                count += len(pending)
                pending = []
        for f in pending:
            f.result(timeout=10)
        count += len(pending)
        return count / (time.time() - start)
    finally:
        node.stop()
        loop.stop()
        srv.kill()  # libchirp's stop() can hang on unreleased messages
        srv.wait(10)


def echo(port, seconds):
    srv = child(port, "echo", "async")
    got = threading.Event()

    class Client(Chirp):
        def handler(self, msg):
            got.set()

    loop = Loop()
    node = Client(loop, config(port + 1, False))
    try:
        count, end = 0, time.time() + seconds
        start = time.time()
        while time.time() < end:
            got.clear()
            msg = Message()
            msg.data = b"x" * 64
            msg.address = "127.0.0.1"
            msg.port = port
            node.send(msg).result(timeout=10)
            if got.wait(10):
                count += 1
        return count / (time.time() - start)
    finally:
        node.stop()
        loop.stop()
        srv.kill()  # libchirp's stop() can hang on unreleased messages
        srv.wait(10)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4] == "sync")
        sys.exit(0)
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    import socket
    def free():
        s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
    print("libchirp-py async %.0f msg/s" % one_way(free(), False, seconds), flush=True)
    print("libchirp-py sync %.0f msg/s" % one_way(free(), True, seconds), flush=True)
    print("libchirp-py echo %.0f round-trips/s" % echo(free(), seconds), flush=True)
