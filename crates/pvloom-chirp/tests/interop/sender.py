"""A libchirp sender (the pool API): sends COUNT messages to 127.0.0.1:TARGET,
waits for each to be echoed with its identity and data, and exits 0 if all were.

usage: sender.py PORT TARGET sync|async COUNT"""
import os
import sys
import threading

import tls_env

from libchirp.pool import Chirp, Config, Loop, Message

port, target, mode, count = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
done = threading.Event()
lock = threading.Lock()
answers = {}


class Sender(Chirp):
    def handler(self, msg):
        with lock:
            answers[bytes(msg.identity)] = bytes(msg.data)
            if len(answers) >= count:
                done.set()


loop = Loop()
config = Config()
tls_env.apply(config)
config.SYNCHRONOUS = mode == "sync"
config.PORT = port
ok = False
try:
    chirp = Sender(loop, config)
    try:
        sent = {}
        for i in range(count):
            msg = Message()
            msg.data = b"libchirp %d" % i
            msg.address = os.environ.get("CHIRP_TARGET_ADDRESS", "127.0.0.1")
            msg.port = target
            chirp.send(msg).result(timeout=10)
            sent[bytes(msg.identity)] = bytes(msg.data)
        done.wait(20)
        with lock:
            ok = answers == sent
            print("answers", len(answers), "of", count, "match" if ok else "MISMATCH", flush=True)
    finally:
        try:
            chirp.stop()
        except Exception as e:  # libchirp's own shutdown sometimes raises after a clean run
            print("libchirp stop() raised:", repr(e), file=sys.stderr, flush=True)
finally:
    loop.stop()
sys.exit(0 if ok else 1)
