"""A libchirp sink (the pool API): prints "got <data>" for every message (its first 16
bytes of data, as text), then releases it; or, told to hold, keeps every slot until a
line "release" arrives on stdin, and releases at once from then on. Ends when stdin
closes or after 60 s (tests kill it by PID before).

usage: sink_node.py PORT sync|async hold|release
prints "ready <identity hex>" once listening, "released N" after a release."""
import sys
import threading

import tls_env

from libchirp.pool import Chirp, Config, Loop

port, mode, policy = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
held = []
holding = [policy == "hold"]
done = threading.Event()


def say(*words):
    # Handlers run on a thread pool: one write per line, under the lock.
    with lock:
        sys.stdout.write(" ".join(str(w) for w in words) + "\n")
        sys.stdout.flush()


class Sink(Chirp):
    def handler(self, msg):
        say("got", bytes(msg.data)[:16].decode(errors="replace").strip())
        with lock:
            if holding[0]:
                held.append(msg)
                return
        msg.release()


def commands():
    for line in sys.stdin:
        if line.strip() == "release":
            with lock:
                holding[0] = False
                batch = held[:]
                held.clear()
            for msg in batch:
                msg.release()
            say("released", len(batch))
    done.set()


loop = Loop()
config = Config()
tls_env.apply(config)
config.SYNCHRONOUS = mode == "sync"
config.PORT = port
config.AUTO_RELEASE = False
try:
    chirp = Sink(loop, config)
    try:
        say("ready", chirp.identity().hex())
        threading.Thread(target=commands, daemon=True).start()
        done.wait(60)
    finally:
        try:
            chirp.stop()
        except Exception as e:  # libchirp's own shutdown sometimes raises after a clean run
            print("libchirp stop() raised:", repr(e), file=sys.stderr, flush=True)
finally:
    loop.stop()
