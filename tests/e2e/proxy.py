"""A loopback TCP forwarder for tests: it can be stopped, or reset connections every N bytes."""
from __future__ import annotations

import socket
import threading


class Forwarder:
    """Accepts on a free loopback port and relays each connection to ``target_port``.

    ``reset_every``: after that many bytes from the client on one connection, both sides
    are reset (RST), as a flaky link or a restarting proxy would. ``stop()`` closes the
    listener and every open connection, so the target looks unreachable.
    """

    def __init__(self, target_port: int, reset_every: int | None = None):
        self.target_port = target_port
        self.reset_every = reset_every
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.client_bytes = 0  # every byte the clients sent, over all connections
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
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if from_client and self.reset_every is not None and sent + len(data) > self.reset_every:
                    keep = self.reset_every - sent
                    dst.sendall(data[:keep])
                    with self.lock:
                        self.client_bytes += keep
                        self.resets += 1
                    self._reset(src, dst)
                    return
                dst.sendall(data)
                sent += len(data)
                if from_client:
                    with self.lock:
                        self.client_bytes += len(data)
        except OSError:
            self._reset(src, dst)

    @staticmethod
    def _reset(*socks: socket.socket) -> None:
        for sock in socks:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
            except OSError:
                pass

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
