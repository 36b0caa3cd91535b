"""Debian's redis-server on a loopback port, nothing persisted."""

from __future__ import annotations

from planboard_devstack.process import Server
from planboard_devstack.system import ensure_command


class RedisServer(Server):
    """Redis on ``host``: on loopback in protected mode (the default); on any other address
    Redis's protected mode would refuse every remote client, which there are there on
    purpose (the Pods of ``devstack.cluster``), so it is off."""

    name = "redis"
    start_timeout = 20.0
    _binary = "redis-server"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def install(self) -> None:
        self._binary = ensure_command("redis-server", "redis-server")

    def _argv(self) -> list[str]:
        return [
            self._binary,
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.run_dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes" if self.host.startswith("127.") or self.host == "localhost" else "no",
            "--loglevel",
            "warning",
        ]

    def _ready(self) -> bool:
        import socket

        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
