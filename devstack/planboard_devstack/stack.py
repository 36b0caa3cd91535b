"""The dev infrastructure (MongoDB-compatible server, Kafka, Redis, mail sink) as one unit.

Servers named by ``PLANBOARD_MONGODB_URI``, ``PLANBOARD_KAFKA_BOOTSTRAP`` or
``PLANBOARD_REDIS_URL`` (and ``PLANBOARD_SMTP_HOST``) are used as they are and
not started.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from planboard_devstack.kafka import KafkaServer
from planboard_devstack.mailsink import MailSinkServer
from planboard_devstack.mongo import mongo_server
from planboard_devstack.paths import free_port, port_open
from planboard_devstack.process import Server, ServerError
from planboard_devstack.redis import RedisServer

log = logging.getLogger(__name__)

PREFERRED_PORTS = {
    "mongodb": 27017,
    "kafka": 9092,
    "redis": 6379,
    "mailsink": 1025,
    "mailsink-http": 8025,
}


@dataclass(frozen=True, slots=True)
class Endpoints:
    mongodb_uri: str
    kafka_bootstrap: str
    redis_url: str
    smtp_host: str
    smtp_port: int
    mail_http_url: str | None

    def env(self) -> dict[str, str]:
        """The variables that point every Planboard process at these servers."""
        env = {
            "PLANBOARD_MONGODB_URI": self.mongodb_uri,
            "PLANBOARD_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "PLANBOARD_REDIS_URL": self.redis_url,
            "PLANBOARD_SMTP_HOST": self.smtp_host,
            "PLANBOARD_SMTP_PORT": str(self.smtp_port),
        }
        if self.mail_http_url:
            env["PLANBOARD_MAILSINK_URL"] = self.mail_http_url
        return env


class InfraStack:
    """Starts what the environment does not already provide, in parallel."""

    def __init__(
        self,
        run_dir: Path,
        *,
        preferred_ports: bool = False,
        environ: Mapping[str, str] | None = None,
        mongo_kind: str | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.environ = dict(os.environ if environ is None else environ)
        self.preferred_ports = preferred_ports
        self.mongo_kind = mongo_kind
        self.servers: dict[str, Server] = {}

    def _port(self, name: str) -> int:
        preferred = PREFERRED_PORTS[name]
        if self.preferred_ports and not port_open("127.0.0.1", preferred):
            return preferred
        return free_port()

    def _plan(self) -> None:
        env = self.environ
        if not env.get("PLANBOARD_MONGODB_URI"):
            self.servers["mongodb"] = mongo_server(
                self.mongo_kind, self.run_dir / "mongodb", self._port("mongodb")
            )
        if not env.get("PLANBOARD_KAFKA_BOOTSTRAP"):
            self.servers["kafka"] = KafkaServer(self.run_dir / "kafka", self._port("kafka"))
        if not env.get("PLANBOARD_REDIS_URL"):
            self.servers["redis"] = RedisServer(self.run_dir / "redis", self._port("redis"))
        if not env.get("PLANBOARD_SMTP_HOST"):
            self.servers["mailsink"] = MailSinkServer(
                self.run_dir / "mailsink",
                self._port("mailsink"),
                http_port=self._port("mailsink-http"),
            )

    def install(self) -> None:
        """Download/build whatever is missing (cached), in parallel."""
        if not self.servers:
            self._plan()
        with ThreadPoolExecutor(max_workers=4) as pool:
            for future in [pool.submit(s.install) for s in self.servers.values()]:
                future.result()

    def start(self) -> Endpoints:
        if not self.servers:
            self._plan()
        self.install()
        atexit.register(self.stop)  # never leave servers behind if the caller dies on an error
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {name: pool.submit(server.start) for name, server in self.servers.items()}
            errors = []
            for name, future in futures.items():
                try:
                    future.result()
                except ServerError as exc:
                    errors.append(f"{name}: {exc}")
        if errors:
            self.stop()
            raise ServerError("dev servers failed to start:\n" + "\n".join(errors))
        return self.endpoints()

    def endpoints(self) -> Endpoints:
        env = self.environ
        mail = self.servers.get("mailsink")
        smtp_host = env.get("PLANBOARD_SMTP_HOST") or "127.0.0.1"
        smtp_port = int(env.get("PLANBOARD_SMTP_PORT") or 25)
        if isinstance(mail, MailSinkServer):
            smtp_host, smtp_port = mail.host, mail.port
        return Endpoints(
            mongodb_uri=env.get("PLANBOARD_MONGODB_URI") or self.servers["mongodb"].url,
            kafka_bootstrap=env.get("PLANBOARD_KAFKA_BOOTSTRAP") or self.servers["kafka"].url,
            redis_url=env.get("PLANBOARD_REDIS_URL") or self.servers["redis"].url,
            smtp_host=smtp_host,
            smtp_port=smtp_port,
            mail_http_url=mail.http_url if isinstance(mail, MailSinkServer) else None,
        )

    def stop(self) -> None:
        for name in reversed(list(self.servers)):
            try:
                self.servers[name].stop()
            except Exception:
                log.exception("stopping %s failed", name)
