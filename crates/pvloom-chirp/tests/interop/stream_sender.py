"""A libchirp sender (the pool API) of a numbered stream: COUNT messages of SIZE bytes
to 127.0.0.1:TARGET, the data starting with the message's number; all sent at once
(their futures waited for afterwards, in order, each within 30 s). Prints "sent N"
when the first N completed, then "done OK FAILED" and exits 0 if none failed.

usage: stream_sender.py PORT TARGET sync|async COUNT SIZE
prints "ready <identity hex>" first."""
import sys

import tls_env

from libchirp.pool import Chirp, Config, Loop, Message

port, target, mode, count, size = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                   int(sys.argv[4]), int(sys.argv[5]))

loop = Loop()
config = Config()
tls_env.apply(config)
config.SYNCHRONOUS = mode == "sync"
config.PORT = port
failed = 0
try:
    chirp = Chirp(loop, config)
    try:
        print("ready", chirp.identity().hex(), flush=True)
        futures = []
        for i in range(count):
            msg = Message()
            head = b"%d" % i
            msg.data = head + b" " * max(0, size - len(head))
            msg.address = "127.0.0.1"
            msg.port = target
            futures.append(chirp.send(msg))
        for i, future in enumerate(futures):
            try:
                future.result(timeout=30)
            except Exception as e:
                failed += 1
                print("failed", i, repr(e), flush=True)
            print("sent", i + 1, flush=True)
        print("done", count - failed, failed, flush=True)
    finally:
        try:
            chirp.stop()
        except Exception as e:  # libchirp's own shutdown sometimes raises after a clean run
            print("libchirp stop() raised:", repr(e), file=sys.stderr, flush=True)
finally:
    loop.stop()
sys.exit(0 if failed == 0 else 1)
