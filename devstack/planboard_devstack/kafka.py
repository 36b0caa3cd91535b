"""A real Apache Kafka broker (KRaft, combined broker+controller) for dev and tests.

The broker's jars come from Maven Central: ``install`` resolves
``org.apache.kafka:kafka_2.13`` and its runtime dependencies once with Maven into
``cache_dir()/kafka/<version>/libs``. ``start`` formats a KRaft storage directory
inside the run dir (once: a restart of the same server keeps its data and ports)
and runs ``kafka.Kafka`` with a small heap on loopback.

Environment:
    PLANBOARD_JAVA             the java executable (default: ``java`` on PATH)
    PLANBOARD_MVN              the mvn executable (default: ``mvn`` on PATH)
    PLANBOARD_KAFKA_LOG_LEVEL  root log level of the broker (default: WARN)
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

from planboard_devstack.paths import cache_dir, free_port, port_open
from planboard_devstack.process import Server, ServerError

KAFKA_VERSION = "4.4.0"
"""The Kafka release the dev stack runs: the newest on Maven Central that was tried
with aiokafka 0.14 (acks=all, idempotent producer, groups with commits, admin client).
3.9.1 also works (slf4j + reload4j logging instead of log4j2)."""

SCALA_VERSION = "2.13"
LOG4J2_VERSION = "2.24.3"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
INSTALL_HINT = "apt-get install openjdk-17-jre-headless maven"

_STORAGE_TOOL_CLASSES = ("kafka.tools.StorageTool", "org.apache.kafka.tools.StorageTool")


def _executable(tool: str, env_var: str, purpose: str) -> str:
    configured = os.environ.get(env_var)
    found = shutil.which(configured or tool)
    if found is None:
        if configured:
            where = f"{env_var}={configured!r} is not an executable"
        else:
            where = f"no '{tool}' is on PATH"
        raise ServerError(f"{purpose}, but {where} (install: {INSTALL_HINT})")
    return found


def java_executable() -> str:
    """The java to run the broker with: ``$PLANBOARD_JAVA`` or ``java`` on PATH."""
    return _executable("java", "PLANBOARD_JAVA", "the kafka dev server needs Java 17+")


def maven_executable() -> str:
    """The mvn used to fetch the broker's jars: ``$PLANBOARD_MVN`` or ``mvn`` on PATH."""
    return _executable("mvn", "PLANBOARD_MVN", "installing the kafka dev server needs Maven")


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


def _pom(version: str) -> str:
    """A throwaway project whose runtime dependencies are the broker's classpath."""
    deps = [("org.apache.kafka", f"kafka_{SCALA_VERSION}", version)]
    if _major(version) >= 4:
        # Kafka 4 logs through slf4j 1.7 to log4j2 (as its binary release ships),
        # but its pom names no backend: without one the broker logs nothing.
        deps += [
            ("org.apache.logging.log4j", "log4j-api", LOG4J2_VERSION),
            ("org.apache.logging.log4j", "log4j-core", LOG4J2_VERSION),
            ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J2_VERSION),
        ]
    else:
        deps += [
            ("org.slf4j", "slf4j-reload4j", "1.7.36"),
            ("ch.qos.reload4j", "reload4j", "1.2.25"),
        ]
    body = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>planboard_devstack</groupId>
  <artifactId>kafka-libs</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{body}
  </dependencies>
</project>
"""


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _find_storage_tool(libs: Path) -> str:
    """The class name of Kafka's StorageTool (it moved between releases)."""
    wanted = {name.replace(".", "/") + ".class": name for name in _STORAGE_TOOL_CLASSES}
    for jar in sorted(libs.glob("kafka*.jar")):
        with zipfile.ZipFile(jar) as archive:
            for entry in archive.namelist():
                if entry in wanted:
                    return wanted[entry]
    raise ServerError(f"no StorageTool class in the kafka jars under {libs}")


def _random_cluster_id() -> str:
    """A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return bytes(data)


def _request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    """Send one request (header v1) and return the response body after its correlation id."""
    client = b"planboard-devstack"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    response = _recv_exact(sock, size)
    (got,) = struct.unpack(">i", response[:4])
    if got != corr:
        raise ConnectionError(f"correlation id {got} != {corr}")
    return response[4:]


def _read_string(data: bytes, pos: int) -> tuple[str | None, int]:
    (length,) = struct.unpack_from(">h", data, pos)
    pos += 2
    if length < 0:
        return None, pos
    return data[pos : pos + length].decode(), pos + length


def broker_cluster_id(host: str, port: int, timeout: float = 2.0) -> str | None:
    """The cluster id of a Kafka broker on ``host:port`` that serves requests, else None.

    Sends ApiVersions v0 (every broker answers it) and Metadata v4 for no topics
    (served by Kafka 1.0 through 4.x). A KRaft broker lists itself there only once
    it is unfenced, so a non-None answer means clients can use it.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            body = _request(sock, 18, 0, 1, b"")
            (error,) = struct.unpack_from(">h", body, 0)
            if error != 0:
                return None
            # Metadata v4: topics = [] (not null: lists none), allow_auto_topic_creation=false.
            body = _request(sock, 3, 4, 2, struct.pack(">ib", 0, 0))
            _throttle, brokers = struct.unpack_from(">ii", body, 0)
            if brokers <= 0:
                return None
            pos = 8
            for _ in range(brokers):
                pos += 4  # node_id
                _host, pos = _read_string(body, pos)
                pos += 4  # port
                _rack, pos = _read_string(body, pos)
            cluster_id, _pos = _read_string(body, pos)
            return cluster_id
    except (OSError, struct.error, UnicodeDecodeError):
        return None


class KafkaServer(Server):
    """Apache Kafka in KRaft combined mode on loopback, data under ``run_dir/kafka``."""

    name = "kafka"
    start_timeout = 90.0
    stop_timeout = 30.0
    version = KAFKA_VERSION

    def __init__(self, run_dir: Path, port: int, host: str = "127.0.0.1") -> None:
        super().__init__(run_dir, port, host)
        self.controller_port = free_port(host)
        while self.controller_port == port:
            self.controller_port = free_port(host)

    # -- locations ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """The bootstrap servers string for clients."""
        return f"{self.host}:{self.port}"

    @classmethod
    def home(cls) -> Path:
        return cache_dir() / "kafka" / cls.version

    @classmethod
    def libs_dir(cls) -> Path:
        return cls.home() / "libs"

    @classmethod
    def _marker(cls) -> Path:
        return cls.home() / "installed.json"

    @property
    def kafka_dir(self) -> Path:
        return self.run_dir / "kafka"

    @property
    def data_dir(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def config_path(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def log_config_path(self) -> Path:
        suffix = "log4j2.xml" if _major(self.version) >= 4 else "log4j.properties"
        return self.kafka_dir / suffix

    # -- install -----------------------------------------------------------------

    @classmethod
    def _install_info(cls) -> dict[str, str]:
        info: dict[str, str] = json.loads(cls._marker().read_text())
        return info

    def install(self) -> None:
        """Fetch the broker's jars from Maven Central once (cached, process-safe)."""
        type(self).install_libs()

    @classmethod
    def install_libs(cls) -> Path:
        marker = cls._marker()
        if marker.is_file() and cls.libs_dir().is_dir():
            return cls.libs_dir()
        home = cls.home()
        with _file_lock(home.parent / f"{cls.version}.lock"):
            # Another process may have finished the install while we waited.
            if marker.is_file() and cls.libs_dir().is_dir():
                return cls.libs_dir()
            mvn = maven_executable()
            home.mkdir(parents=True, exist_ok=True)
            staging = home / "libs.partial"
            shutil.rmtree(staging, ignore_errors=True)
            with tempfile.TemporaryDirectory(prefix="planboard-kafka-pom-") as tmp:
                (Path(tmp) / "pom.xml").write_text(_pom(cls.version))
                argv = [
                    mvn,
                    "-q",
                    "-B",
                    f"-Dmaven.repo.local={cache_dir() / 'm2'}",
                    f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={staging}",
                ]
                result = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                output = (result.stdout + result.stderr).strip()[-4000:]
                raise ServerError(
                    f"maven could not fetch kafka {cls.version} "
                    f"(exit {result.returncode}):\n{output}"
                )
            storage_tool = _find_storage_tool(staging)
            libs = cls.libs_dir()
            shutil.rmtree(libs, ignore_errors=True)
            staging.rename(libs)
            info = {"version": cls.version, "storage_tool": storage_tool}
            tmp_marker = marker.with_suffix(".tmp")
            tmp_marker.write_text(json.dumps(info))
            tmp_marker.rename(marker)
            return libs

    # -- configuration -------------------------------------------------------------

    def _properties(self) -> dict[str, str]:
        listener = f"PLAINTEXT://{self.host}:{self.port}"
        return {
            "node.id": "1",
            "process.roles": "broker,controller",
            "listeners": f"{listener},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": listener,
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "log.dirs": str(self.data_dir),
            # Topics and groups: one broker, test friendly.
            "num.partitions": "3",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "5",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "group.min.session.timeout.ms": "1000",
            # After a crash (SIGKILL) the restarted broker waits until its old
            # registration's session has expired: keep that short.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            # Small footprint on a 2-core machine.
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "num.replica.fetchers": "1",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "log.segment.bytes": str(64 * 1024 * 1024),
        }

    def _log_config(self) -> str:
        level = os.environ.get("PLANBOARD_KAFKA_LOG_LEVEL", "WARN").upper()
        if _major(self.version) >= 4:
            return f"""<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN" shutdownHook="disable">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="{level}"><AppenderRef ref="STDOUT"/></Root>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
  </Loggers>
</Configuration>
"""
        return (
            f"log4j.rootLogger={level}, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
        )

    def _java_base(self) -> list[str]:
        return [
            java_executable(),
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            "-Dfile.encoding=UTF-8",
            *self._log_options(),
            "-cp",
            str(self.libs_dir() / "*"),
        ]

    def _log_options(self) -> list[str]:
        if _major(self.version) >= 4:
            return [f"-Dlog4j2.configurationFile={self.log_config_path}"]
        return [f"-Dlog4j.configuration=file:{self.log_config_path}"]

    def formatted(self) -> bool:
        """True once the KRaft storage under ``run_dir`` has been formatted."""
        return (self.data_dir / "meta.properties").is_file()

    @property
    def cluster_id(self) -> str | None:
        """The id the storage was formatted with (None before the first start)."""
        try:
            text = (self.data_dir / "meta.properties").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id":
                return value.strip()
        return None

    def prepare(self) -> None:
        """Write server.properties and the log config; format the storage once."""
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{key}={value}" for key, value in self._properties().items()]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.log_config_path.write_text(self._log_config())
        if self.formatted():
            return
        argv = [
            *self._java_base(),
            self._install_info()["storage_tool"],
            "format",
            "--config",
            str(self.config_path),
            "--cluster-id",
            _random_cluster_id(),
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not self.formatted():
            output = (result.stdout + result.stderr).strip()[-4000:]
            raise ServerError(
                f"formatting kafka storage failed (exit {result.returncode}):\n{output}"
            )

    # -- run ---------------------------------------------------------------------

    def _argv(self) -> list[str]:
        return [*self._java_base(), "kafka.Kafka", str(self.config_path)]

    def _ready(self) -> bool:
        # Our own cluster id: a leftover broker on the same port does not count.
        expected = self.cluster_id
        return (
            expected is not None
            and port_open(self.host, self.port)
            and broker_cluster_id(self.host, self.port) == expected
        )

    def start(self) -> None:
        """Start (or restart, keeping data and ports) and wait until clients can use it."""
        if self.running():
            return
        for port in (self.port, self.controller_port):
            if port_open(self.host, port):
                raise ServerError(
                    f"kafka cannot start: {self.host}:{port} is already in use "
                    "(a leftover broker from an earlier run?)"
                )
        super().start()
