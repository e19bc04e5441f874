"""Record real Channel Access traffic as fuzz seeds (seeds/decode_tcp, seeds/decode_udp).

Usage: .venv/bin/python crates/pvloom-ca/fuzz/record_seeds.py [OUT_DIR]

Runs each peer server (pythonSoftIOC, i.e. EPICS base's rsrv, and caproto's server,
tests/peers/*) behind a recording proxy on loopback ports, and each peer client
(pyepics, i.e. EPICS base's libca, and caproto's threading client) against it:
searches (one name that does not exist), connects, reads of every class, writes
with and without notify, a subscription, clean disconnects. The proxy:

* TCP: forwards each circuit and keeps both directions' byte streams. A decode_tcp
  seed is one stream, prefixed by the target's "cut" byte (how the input is split
  into pushes): 0xff (255-byte pushes, alignment not required) and 0x08 (8-byte
  pushes, alignment required).
* UDP: forwards searches to the server and its replies back (rewriting only the
  port a search reply names, so the client connects through the proxy), and listens
  on the repeater port for the server's beacons and the clients' repeater
  registrations. Each distinct datagram (as sent by its peer) is a decode_udp seed,
  a few per kind.

The .db parser's seeds (seeds/parse_db) are the repository's test databases, copied
by hand; this script does not touch them.
"""

import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PEERS = ROOT / "tests" / "peers"
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "seeds"
PER_KIND = 3  # distinct datagrams kept per (server, client, kind)


def free_port():
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def env_for(server_port, repeater_port, search_port):
    env = dict(os.environ)
    env.update({
        "EPICS_CA_SERVER_PORT": str(server_port), "EPICS_CAS_SERVER_PORT": str(server_port),
        "EPICS_CA_REPEATER_PORT": str(repeater_port), "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1", "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_CA_AUTO_ADDR_LIST": "NO", "EPICS_CA_ADDR_LIST": f"127.0.0.1:{search_port}",
        "EPICS_CA_MAX_ARRAY_BYTES": "1000000", "PYTHONUNBUFFERED": "1",
    })
    return env


def commands(datagram):
    """(offset, command) of each CA message in a datagram."""
    offset = 0
    while offset + 16 <= len(datagram):
        command, size = struct.unpack_from(">HH", datagram, offset)
        yield offset, command
        offset += 16 + size


class Recorder:
    def __init__(self, server_port, proxy_port, repeater_port):
        self.server_port, self.proxy_port = server_port, proxy_port
        self.streams = []  # (name, bytearray)
        self.datagrams = {}  # (phase, kind) -> {digest: bytes}
        self.phase = "startup"  # the client running (beacons come in any phase)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.tcp = socket.create_server(("127.0.0.1", proxy_port))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", proxy_port))
        self.repeater = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.repeater.bind(("127.0.0.1", repeater_port))
        self.upstreams = {}  # client address -> socket to the server
        for target in (self.accept_loop, self.udp_loop, self.repeater_loop):
            threading.Thread(target=target, daemon=True).start()

    def keep(self, kind, data):
        with self.lock:
            kept = self.datagrams.setdefault((self.phase, kind), {})
            if len(kept) < PER_KIND:
                kept.setdefault(hashlib.sha1(data).hexdigest(), bytes(data))

    def kind_of(self, data, direction):
        names = {0: "version", 6: "search", 13: "beacon", 17: "repeater-confirm", 24: "repeater-register",
                 14: "not-found"}
        kinds = [names.get(c, f"cmd{c}") for _, c in commands(data) if c != 0] or ["version"]
        return f"{direction}-{'+'.join(sorted(set(kinds)))}"

    def accept_loop(self):
        n = 0
        while not self.stop.is_set():
            try:
                client, _ = self.tcp.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.server_port))
            up, down = bytearray(), bytearray()
            with self.lock:
                self.streams.append((f"circuit{n}-client-to-server", up))
                self.streams.append((f"circuit{n}-server-to-client", down))
            n += 1
            for src, dst, buf in ((client, server, up), (server, client, down)):
                threading.Thread(target=self.pump, args=(src, dst, buf), daemon=True).start()

    def pump(self, src, dst, buf):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    buf.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def udp_loop(self):
        while not self.stop.is_set():
            try:
                data, client = self.udp.recvfrom(65536)
            except OSError:
                return
            self.keep(self.kind_of(data, "client"), data)
            upstream = self.upstreams.get(client)
            if upstream is None:
                upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                upstream.bind(("127.0.0.1", 0))
                self.upstreams[client] = upstream
                threading.Thread(target=self.reply_loop, args=(upstream, client), daemon=True).start()
            upstream.sendto(data, ("127.0.0.1", self.server_port))

    def reply_loop(self, upstream, client):
        while not self.stop.is_set():
            try:
                data, _ = upstream.recvfrom(65536)
            except OSError:
                return
            self.keep(self.kind_of(data, "server"), data)
            patched = bytearray(data)
            for offset, command in commands(data):
                if command == 6:  # search reply: the TCP port is the data type field
                    struct.pack_into(">H", patched, offset + 4, self.proxy_port)
            self.udp.sendto(bytes(patched), client)

    def repeater_loop(self):
        while not self.stop.is_set():
            try:
                data, sender = self.repeater.recvfrom(65536)
            except OSError:
                return
            self.keep(self.kind_of(data, "to-repeater"), data)
            if any(c == 24 for _, c in commands(data)):  # confirm registrations, as caRepeater does
                confirm = struct.pack(">HHHHII", 17, 0, 0, 0, 0, struct.unpack(">I", socket.inet_aton(sender[0]))[0])
                self.repeater.sendto(confirm, sender)

    def close(self):
        self.stop.set()
        for s in (self.tcp, self.udp, self.repeater, *self.upstreams.values()):
            s.close()


CLIENTS = {
    "pyepics": r'''
import sys, time, epics
from epics import ca
p = sys.argv[1]
names = {"softioc": ["AI", "AO", "LI", "SI", "MBBI", "SHORTWF", "CHARWF", "FLOATWF", "BO"],
         "caproto": ["double", "float", "long", "string", "enum", "int", "char", "array1k"]}[sys.argv[2]]
out = {"softioc": ("AO", "SO", "MBBO", "LO"), "caproto": ("double", "string", "enum", "long")}[sys.argv[2]]
pvs = [epics.PV(p + n, auto_monitor=False) for n in names]
for pv in pvs:
    pv.wait_for_connection(timeout=5)
for pv in pvs:
    pv.get(use_monitor=False, timeout=5)
    pv.get_ctrlvars(timeout=5)
    pv.get_timevars(timeout=5)
epics.caput(p + out[0], 1.25, wait=True)
epics.caput(p + out[1], "seed", wait=True)
epics.caput(p + out[2], 1, wait=True)
epics.caput(p + out[3], 5, wait=False)
seen = []
mon = epics.PV(p + out[0], callback=lambda **kw: seen.append(kw), form="time")
mon.wait_for_connection(timeout=5)
time.sleep(0.3)
epics.caput(p + out[0], 2.5, wait=True)
time.sleep(0.3)
epics.PV(p + "NO:SUCH:NAME").wait_for_connection(timeout=0.3)
mon.clear_callbacks()
mon.disconnect()
ca.finalize_libca()
''',
    "caproto": r'''
import sys, time
from caproto.threading.client import Context
p = sys.argv[1]
names = {"softioc": ["AI", "AO", "LI", "SI", "MBBI", "SHORTWF", "CHARWF", "FLOATWF", "BO"],
         "caproto": ["double", "float", "long", "string", "enum", "int", "char", "array1k"]}[sys.argv[2]]
out = {"softioc": ("AO", "SO", "MBBO", "LO"), "caproto": ("double", "string", "enum", "long")}[sys.argv[2]]
ctx = Context(timeout=5)
pvs = ctx.get_pvs(*[p + n for n in names])
for pv in pvs:
    pv.wait_for_connection()
    for data_type in ("native", "status", "time", "graphic", "control"):
        pv.read(data_type=data_type)
a, s, e, l = ctx.get_pvs(*[p + n for n in out])
a.write([1.5], wait=True)
s.write(["caproto seed"], wait=True)
e.write([2], wait=True)
l.write([9], wait=False)
sub = a.subscribe(data_type="time")
sub.add_callback(lambda sub, response: None)
time.sleep(0.3)
a.write([3.5], wait=True)
time.sleep(0.3)
sub.clear()
(missing,) = ctx.get_pvs(p + "NO:SUCH:NAME")
try:
    missing.wait_for_connection(timeout=0.3)
except Exception:
    pass
ctx.disconnect()
''',
}

SERVERS = {
    "softioc": [sys.executable, str(PEERS / "softioc_ioc.py"), "S:"],
    "caproto": [sys.executable, str(PEERS / "caproto_ioc.py"), "S:"],
}


def wait_ready(proc, port):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "READY" in (proc.stdout.readline() or ""):
            break
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print(f"  {path.relative_to(OUT.parent) if OUT.parent in path.parents else path} ({len(data)} bytes)")


def main():
    for server_kind, argv in SERVERS.items():
        server_port, proxy_port, repeater_port = free_port(), free_port(), free_port()
        recorder = Recorder(server_port, proxy_port, repeater_port)
        env = env_for(server_port, repeater_port, proxy_port)
        server = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        try:
            wait_ready(server, server_port)
            time.sleep(0.5)  # the first beacons
            for client_kind, code in CLIENTS.items():
                before = len(recorder.streams)
                with recorder.lock:
                    recorder.phase = client_kind
                subprocess.run([sys.executable, "-c", code, "S:", server_kind], env=env, timeout=60, check=True,
                               stdout=subprocess.DEVNULL)
                time.sleep(0.3)
                with recorder.lock:
                    streams = recorder.streams[before:]
                for name, data in streams:
                    if data:
                        for cut in (0xFF, 0x08):
                            write(OUT / "decode_tcp" / f"{server_kind}-{client_kind}-{name}.cut{cut:02x}",
                                  bytes([cut]) + bytes(data))
            with recorder.lock:
                datagrams = {key: dict(kept) for key, kept in recorder.datagrams.items()}
            for (phase, kind), kept in sorted(datagrams.items()):
                for digest, data in sorted(kept.items()):
                    write(OUT / "decode_udp" / f"{server_kind}-{phase}-{kind}-{digest[:8]}", data)
        finally:
            server.kill()
            server.wait()
            recorder.close()


if __name__ == "__main__":
    main()
