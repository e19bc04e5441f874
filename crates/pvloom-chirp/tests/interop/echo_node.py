"""A libchirp echo node (the pool API, as the seed's pool_echo.py): every message
is sent back to where it came from. Stops after COUNT messages or 30 s.

usage: echo_node.py PORT sync|async COUNT
prints "ready <identity hex>" once listening."""
import sys
import threading

import tls_env

from libchirp.pool import Chirp, Config, Loop

port, mode, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
done = threading.Event()
lock = threading.Lock()
seen = [0]


class Echo(Chirp):
    def handler(self, msg):
        self.send(msg).result()
        with lock:
            seen[0] += 1
            if seen[0] >= count:
                done.set()


loop = Loop()
config = Config()
tls_env.apply(config)
config.SYNCHRONOUS = mode == "sync"
config.PORT = port
try:
    chirp = Echo(loop, config)
    try:
        print("ready", chirp.identity().hex(), flush=True)
        done.wait(30)
    finally:
        chirp.stop()
finally:
    loop.stop()
