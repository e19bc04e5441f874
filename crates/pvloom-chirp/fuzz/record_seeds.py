"""Record real libchirp traffic as fuzz seeds for pvloom-chirp's targets.

Two libchirp 1.2 nodes (the pool API: tests/interop/sender.py and echo_node.py) talk
through a recording TCP proxy on 127.0.0.1, synchronous and asynchronous; each
direction's bytes (handshake, messages, ACKs, as libchirp wrote them) become seeds for
`conn_stream` and `decode_header`, whose first byte picks the mode and how the input
is cut into reads.

usage: python record_seeds.py   (with libchirp installed, e.g. the workspace .venv)
Writes fuzz/seeds/{conn_stream,decode_header}/libchirp-*. Run again only to refresh."""
import os
import socket
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.join(HERE, "..", "tests", "interop")
SEEDS = os.path.join(HERE, "seeds")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pump(src, dst, record, public_port=None):
    """Copy src to dst into `record`. With `public_port`, the handshake's port (its
    first two bytes) is rewritten to it: libchirp drops a connection whose handshake
    names another port than the one it dialled, here the proxy's."""
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            break
        if public_port is not None and not record:
            data = public_port.to_bytes(2, "big") + data[2:]
        record.extend(data)
        try:
            dst.sendall(data)
        except OSError:
            break
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def proxy(listener, target, to_target, from_target):
    """Forward the first connection to `target`, recording both directions."""
    client, _ = listener.accept()
    port = listener.getsockname()[1]
    upstream = socket.create_connection(("127.0.0.1", target))
    threads = [
        threading.Thread(target=pump, args=(client, upstream, to_target)),
        threading.Thread(target=pump, args=(upstream, client, from_target, port)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def record(mode, count):
    echo_port, proxy_port, sender_port = free_port(), free_port(), free_port()
    echo = subprocess.Popen(
        [sys.executable, os.path.join(INTEROP, "echo_node.py"), str(echo_port), mode, str(count)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": INTEROP},
    )
    try:
        assert echo.stdout.readline().startswith("ready"), "the libchirp echo node did not start"
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", proxy_port))
        listener.listen(1)
        to_echo, from_echo = bytearray(), bytearray()
        recorder = threading.Thread(target=proxy, args=(listener, echo_port, to_echo, from_echo))
        recorder.start()
        sender = subprocess.run(
            [sys.executable, os.path.join(INTEROP, "sender.py"), str(sender_port), str(proxy_port), mode, str(count)],
            env={**os.environ, "PYTHONPATH": INTEROP},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sender.returncode == 0, f"libchirp sender failed: {sender.stdout} {sender.stderr}"
        recorder.join(30)
        listener.close()
        return bytes(to_echo), bytes(from_echo)
    finally:
        echo.kill()
        echo.wait()


def write(target, name, data):
    os.makedirs(os.path.join(SEEDS, target), exist_ok=True)
    with open(os.path.join(SEEDS, target, name), "wb") as f:
        f.write(data)


def main():
    for mode in ("async", "sync"):
        sync_bit = 1 if mode == "sync" else 0
        to_echo, from_echo = record(mode, 12)
        assert len(to_echo) > 18 and len(from_echo) > 18, "nothing recorded"
        for side, stream in (("sender", to_echo), ("echo", from_echo)):
            # conn_stream: bit 0 the mode, the rest the read size (127: whole reads;
            # 3: reads of 1 byte cutting every header).
            write("conn_stream", f"libchirp-{mode}-{side}", bytes([0xFE | sync_bit]) + stream)
            write("conn_stream", f"libchirp-{mode}-{side}-bytewise", bytes([0x02 | sync_bit]) + stream)
            # decode_header: bit 0 a free slot, the rest the read size.
            write("decode_header", f"libchirp-{mode}-{side}", bytes([0x35]) + stream)
        print(f"{mode}: {len(to_echo)} bytes to the echo node, {len(from_echo)} back")


if __name__ == "__main__":
    main()
