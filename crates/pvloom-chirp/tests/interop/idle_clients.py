"""Bad input: N TCP connections to 127.0.0.1:PORT that never send a byte (not even a
chirp handshake). Prints "connected N" once all are up, "greeted N" once the server's
18-byte handshake arrived on every one (so it accepted them all), "closed K" as the
server closes them (K so far, at most every 0.1 s), and "done K" when all are closed or
after 60 s.

usage: idle_clients.py PORT N"""
import selectors
import socket
import sys
import time

port, count = int(sys.argv[1]), int(sys.argv[2])
selector = selectors.DefaultSelector()
sockets = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setblocking(False)
    selector.register(s, selectors.EVENT_READ)
    sockets.append(s)
print("connected", count, flush=True)
closed = 0
greeted = 0
heard = {}
reported = 0
last = 0.0
end = time.monotonic() + 60
while closed < count and time.monotonic() < end:
    for key, _ in selector.select(timeout=0.1):
        sock = key.fileobj
        try:
            data = sock.recv(4096)  # the server's handshake comes first
        except (ConnectionResetError, BlockingIOError):
            data = b"" if not isinstance(sys.exc_info()[1], BlockingIOError) else None
        if data:
            before = heard.get(sock, 0)
            heard[sock] = before + len(data)
            if before < 18 <= heard[sock]:
                greeted += 1
                if greeted == count:
                    print("greeted", count, flush=True)
        elif data == b"":
            selector.unregister(sock)
            sock.close()
            closed += 1
    if closed != reported and time.monotonic() - last >= 0.1:
        print("closed", closed, flush=True)
        reported, last = closed, time.monotonic()
print("done", closed, flush=True)
