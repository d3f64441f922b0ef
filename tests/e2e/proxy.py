"""A loopback TCP forwarder for tests: it can be stopped, or reset connections every N bytes."""
from __future__ import annotations

import selectors
import socket
import threading
import time


class Forwarder:
    """Accepts on a free loopback port and relays each connection to ``target_port``.

    ``reset_every``: after that many bytes from the client on one connection (or, with
    ``downstream=True``, from the target to the client), both sides are reset (RST), as a
    flaky link or a restarting proxy would. ``stop()`` closes the listener and every open
    connection, so the target looks unreachable.
    """

    def __init__(self, target_port: int, reset_every: int | None = None, downstream: bool = False,
                 rate: float | None = None, rate_down: float | None = None):
        self.target_port = target_port
        self.reset_every = reset_every
        self.downstream = downstream
        self.rate = rate  # bytes per second from each client, at most (None: as fast as it goes)
        self.rate_down = rate_down  # bytes per second from the target to each client, at most
        self.refusing = False  # True: new connections are reset at once (the link is down)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.client_bytes = 0  # every byte the clients sent, over all connections
        self.server_bytes = 0  # every byte the target sent back, over all connections
        self.resets = 0
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Both directions of one connection in one thread, so a reset really closes both
        sockets (a socket another thread is blocked on would only close when it wakes)."""
        counts = {client: 0, upstream: 0}
        peer = {client: upstream, upstream: client}
        limited = upstream if self.downstream else client
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            open_sides = 2
            while open_sides and self.running:
                for key, _ in selector.select(timeout=0.5):
                    src = key.fileobj
                    try:
                        data = src.recv(65536)
                    except OSError:
                        self._reset(client, upstream)
                        return
                    if not data:
                        selector.unregister(src)
                        open_sides -= 1
                        try:
                            peer[src].shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    if src is limited and self.reset_every is not None and counts[src] + len(data) > self.reset_every:
                        data = data[:self.reset_every - counts[src]]
                        self._send(peer[src], data, src is client)
                        with self.lock:
                            self.resets += 1
                        self._reset(client, upstream)
                        return
                    counts[src] += len(data)
                    if not self._send(peer[src], data, src is client):
                        self._reset(client, upstream)
                        return
        self._reset(client, upstream)

    def _send(self, dst: socket.socket, data: bytes, from_client: bool) -> bool:
        rate = self.rate if from_client else self.rate_down
        if rate:
            time.sleep(len(data) / rate)
        try:
            dst.sendall(data)
        except OSError:
            return False
        with self.lock:
            if from_client:
                self.client_bytes += len(data)
            else:
                self.server_bytes += len(data)
        return True

    @staticmethod
    def _reset(*socks: socket.socket) -> None:
        for sock in socks:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
            except OSError:
                pass

    def cut(self) -> None:
        """Reset every open connection now (new ones are still accepted unless ``refusing``)."""
        with self.lock:
            socks, self.sockets = self.sockets, []
        self._reset(*socks)

    def stop(self) -> None:
        """Close the listener and every relayed connection."""
        self.running = False
        try:
            # shutdown wakes the thread blocked in accept(); close alone would not.
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            socks, self.sockets = self.sockets, []
        self._reset(*socks)
