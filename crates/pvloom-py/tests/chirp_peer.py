"""A chirp peer on either API, the same code: ``libchirp.pool`` (the real libchirp) or
``pvloom.chirp``. Run as a subprocess by test_chirp.py (the two modules never share a
process).

usage:
  chirp_peer.py MODULE echo  MODE COUNT          echo COUNT messages back, then exit
  chirp_peer.py MODULE send  MODE COUNT TARGET   send COUNT messages to 127.0.0.1:TARGET,
                                                 check every echo (identity and data)
  chirp_peer.py MODULE request MODE COUNT TARGET COUNT requests, one after the other
MODE is sync or async. Prints "ready <identity hex> <port>" once listening, and at the
end "answers N of COUNT match", "rate <per second>" and, for requests, "lost L late K"
(answers libchirp's pool lost to its race, and how many of those reached the handler);
exits 0 if every message was answered.
Gives up after 60 s.

TLS from the environment: CHIRP_CERT_CHAIN and CHIRP_DH_PARAMS (PEM files; without them
DISABLE_ENCRYPTION), CHIRP_ALWAYS_ENCRYPT=1 to encrypt 127.0.0.1 too (libchirp: its
process-wide C call ch_chirp_set_always_encrypt, which the cffi layer does not wrap,
reached through ctypes in the same loaded library; pvloom: Config.ALWAYS_ENCRYPT).
"""

import ctypes
import importlib
import os
import socket
import sys
import threading
import time

module, role, mode, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
target = int(sys.argv[5]) if len(sys.argv) > 5 else None
chirp_api = importlib.import_module(module)
Chirp, Config, Loop, Message = chirp_api.Chirp, chirp_api.Config, chirp_api.Loop, chirp_api.Message

LIMIT = 60.0
done = threading.Event()
lock = threading.Lock()
answers = {}
seen = [0]


def free_port():
    # libchirp refuses PORT 0: ask the OS for a free one.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer(Chirp):
    def handler(self, msg):
        if role == "echo":
            self.send(msg).result(timeout=LIMIT)
            with lock:
                seen[0] += 1
                if seen[0] >= count:
                    done.set()
        else:
            with lock:
                answers[bytes(msg.identity)] = (bytes(msg.data), bytes(msg.remote_identity))
                if len(answers) >= count:
                    done.set()


def message(i):
    msg = Message()
    msg.data = b"%s %d" % (module.encode(), i)
    msg.address = "127.0.0.1"
    msg.port = target
    return msg


loop = Loop()
config = Config()
if os.environ.get("CHIRP_CERT_CHAIN"):
    config.DISABLE_ENCRYPTION = False
    config.CERT_CHAIN_PEM = os.environ["CHIRP_CERT_CHAIN"]
    config.DH_PARAMS_PEM = os.environ["CHIRP_DH_PARAMS"]
    if os.environ.get("CHIRP_ALWAYS_ENCRYPT") == "1":
        if module.startswith("libchirp"):
            import _libchirp_cffi

            ctypes.CDLL(_libchirp_cffi.__file__).ch_chirp_set_always_encrypt()
        else:
            config.ALWAYS_ENCRYPT = True
else:
    config.DISABLE_ENCRYPTION = True
config.SYNCHRONOUS = mode == "sync"
config.PORT = free_port()
if role == "request":
    # A lost answer (libchirp's race) costs TIMEOUT: keep it short.
    config.TIMEOUT = 1.0
ok = False
try:
    chirp = Peer(loop, config)
    try:
        print("ready", chirp.identity().hex(), config.PORT, flush=True)
        start = time.monotonic()
        if role == "echo":
            ok = done.wait(LIMIT)
        elif role == "send":
            sent = {}
            futures = []
            for i in range(count):
                msg = message(i)
                sent[bytes(msg.identity)] = bytes(msg.data)
                futures.append(chirp.send(msg))
            for fut in futures:
                fut.result(timeout=LIMIT)
            done.wait(LIMIT)
            with lock:
                matched = sum(1 for k, v in sent.items() if answers.get(k, (None,))[0] == v)
                remotes = {r for _, r in answers.values()}
            ok = matched == count
            print("answers", matched, "of", count, "match", flush=True)
            print("remotes", " ".join(sorted(r.hex() for r in remotes)), flush=True)
        elif role == "request":
            matched, lost = 0, []
            for i in range(count):
                msg = message(i)
                try:
                    answer = chirp.request(msg).result(timeout=LIMIT)
                except TimeoutError:
                    # libchirp's pool loses an answer that arrives before its request
                    # is registered; it reaches the handler instead.
                    lost.append(bytes(msg.identity))
                    continue
                matched += answer.identity == msg.identity and answer.data == msg.data
            with lock:
                late = sum(1 for identity in lost if identity in answers)
            ok = matched + late == count
            print("answers", matched, "of", count, "match", flush=True)
            print("lost", len(lost), "late", late, flush=True)
        print("rate %.0f" % (count / max(time.monotonic() - start, 1e-9)), flush=True)
    finally:
        chirp.stop()
finally:
    loop.stop()
sys.exit(0 if ok else 1)
