"""MongoDB-wire-compatible dev servers: FerretDB (SQLite backend) and nx-27017.

No registry ships a real ``mongod``, so development and tests run one of these
wire-compatible servers on a loopback port (production runs real MongoDB). The
code keeps to the MongoDB subset that both the chosen dev server and MongoDB 7/8
serve; ``tests/compat`` pins that subset down and ``docs/devstack.md`` lists the
gaps.

- :class:`FerretDBServer` builds FerretDB v1.24 once with ``go install`` into
  ``cache_dir()/ferretdb`` (file-locked, reused) and runs it on SQLite.
- :class:`NxServer` runs the pure-Python nx-27017 server (PyPI ``nx-27017``,
  a dependency of this package) with the current interpreter, one SQLite file per
  database under the run dir.

:func:`mongo_server` picks one by name; ``PLANBOARD_MONGO_SERVER`` overrides
the default when no name is given.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from planboard_devstack.paths import cache_dir, port_open
from planboard_devstack.process import Server, ServerError

__all__ = [
    "DEFAULT_KIND",
    "ENV_KIND",
    "FERRETDB_MODULE",
    "FERRETDB_TOOLCHAINS",
    "FERRETDB_VERSION",
    "KINDS",
    "FerretDBServer",
    "NxServer",
    "mongo_server",
]

#: The dev server used when neither the caller nor ``PLANBOARD_MONGO_SERVER``
#: names one. Chosen by measurement, see docs/devstack.md (MongoDB).
DEFAULT_KIND: Final = "nx"
#: Environment variable that selects the kind when the caller passes none.
ENV_KIND: Final = "PLANBOARD_MONGO_SERVER"
KINDS: Final = ("ferretdb", "nx")

FERRETDB_MODULE: Final = "github.com/FerretDB/FerretDB/cmd/ferretdb"
FERRETDB_VERSION: Final = "v1.24.2"
#: Toolchains tried in order when building FerretDB; ``local`` is the machine's
#: Go, the other one is the version FerretDB's go.mod names, fetched from the
#: Go module proxy if the local Go cannot build it.
FERRETDB_TOOLCHAINS: Final = ("local", "go1.24.3")


def _mongo_ready(host: str, port: int, url: str) -> bool:
    """True when the server at ``url`` answers ``ping``."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    if not port_open(host, port, timeout=0.2):  # cheap check before a client's timeouts
        return False
    client: MongoClient[dict[str, object]] = MongoClient(
        url,
        serverSelectionTimeoutMS=500,
        connectTimeoutMS=500,
        socketTimeoutMS=2000,
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (blocks until other installers finish)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _go_binary() -> str:
    """The ``go`` command: ``$PLANBOARD_GO``, ``go`` on PATH or /usr/local/go."""
    explicit = os.environ.get("PLANBOARD_GO")
    if explicit:
        return explicit
    found = shutil.which("go")
    if found:
        return found
    fallback = Path("/usr/local/go/bin/go")
    if fallback.exists():
        return str(fallback)
    raise ServerError("FerretDB needs Go to build: no `go` on PATH (set PLANBOARD_GO)")


class FerretDBServer(Server):
    """FerretDB v1.24 on its SQLite backend, built once with ``go install``."""

    name = "ferretdb"
    start_timeout = 60.0
    install_timeout = 1800.0

    @staticmethod
    def home() -> Path:
        """``cache_dir()/ferretdb``: GOBIN, GOPATH, GOCACHE and GOMODCACHE live here."""
        return cache_dir() / "ferretdb"

    @classmethod
    def binary(cls) -> Path:
        return cls.home() / "bin" / FERRETDB_VERSION / "ferretdb"

    @classmethod
    def _marker(cls) -> Path:
        return cls.binary().with_name("installed")

    @classmethod
    def installed(cls) -> bool:
        """True when the pinned version was built and recorded by a finished install."""
        marker = cls._marker()
        binary = cls.binary()
        return (
            marker.is_file()
            and marker.read_text().strip() == FERRETDB_VERSION
            and binary.is_file()
            and os.access(binary, os.X_OK)
        )

    @property
    def url(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "ferretdb-data"

    def install(self) -> None:
        if self.installed():
            return
        home = self.home()
        with _file_lock(home / "install.lock"):
            if self.installed():  # another process finished it while we waited
                return
            self._build(home)

    def _build(self, home: Path) -> None:
        """Build the pinned release from the Go module proxy into ``binary()``.

        ``go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`` alone builds a
        binary that panics at start ("Invalid build/version/version.txt"): the module zip
        lacks the generated ``build/version/version.txt`` that FerretDB's release
        process writes. So: ``go mod download`` the module (cached in GOMODCACHE),
        copy its source into ``home/src``, write that file and ``go install
        ./cmd/ferretdb`` there with GOBIN, GOPATH, GOCACHE and GOMODCACHE under
        ``home``. No build tags are needed: the SQLite backend is in by default.
        """
        log_path = home / "build.log"
        go = _go_binary()
        failures: list[str] = []
        for toolchain in FERRETDB_TOOLCHAINS:
            env = dict(os.environ)
            env.update(
                GOBIN=str(self.binary().parent),
                GOPATH=str(home / "gopath"),
                GOCACHE=str(home / "gocache"),
                GOMODCACHE=str(home / "gomodcache"),
                GOTOOLCHAIN=toolchain,
                GOFLAGS="-trimpath",
                CGO_ENABLED="0",  # the SQLite driver (modernc.org/sqlite) is pure Go
            )
            try:
                self._build_with(go, env, home, log_path)
            except ServerError as exc:
                failures.append(f"GOTOOLCHAIN={toolchain}: {exc}")
                continue
            self._marker().write_text(FERRETDB_VERSION + "\n")
            return
        raise ServerError(
            f"building FerretDB {FERRETDB_VERSION} failed ({'; '.join(failures)}); log {log_path}"
        )

    def _build_with(self, go: str, env: dict[str, str], home: Path, log_path: Path) -> None:
        module = FERRETDB_MODULE.removesuffix("/cmd/ferretdb")
        download = self._go(
            [go, "mod", "download", "-json", f"{module}@{FERRETDB_VERSION}"],
            env,
            home,
            log_path,
            capture=True,
        )
        try:
            module_dir = Path(str(json.loads(download)["Dir"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ServerError(f"go mod download: unexpected output ({exc})") from exc
        src = home / "src" / f"FerretDB@{FERRETDB_VERSION}"
        if src.exists():
            shutil.rmtree(src)
        src.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(module_dir, src)
        for path in [src, *src.rglob("*")]:  # the module cache is read-only
            path.chmod(path.stat().st_mode | 0o200)
        (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        self.binary().parent.mkdir(parents=True, exist_ok=True)
        self._go([go, "install", "./cmd/ferretdb"], env, src, log_path)
        if not self.binary().is_file():
            raise ServerError(f"go install left no binary at {self.binary()}")

    def _go(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        log_path: Path,
        *,
        capture: bool = False,
    ) -> str:
        """Run one go command, output appended to ``log_path``; stdout if ``capture``."""
        with open(log_path, "ab") as log:
            log.write(f"\n=== {' '.join(argv)} (GOTOOLCHAIN={env['GOTOOLCHAIN']})\n".encode())
            log.flush()
            try:
                result = subprocess.run(
                    argv,
                    stdout=subprocess.PIPE if capture else log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=cwd,
                    timeout=self.install_timeout,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ServerError(f"{argv[1]}: {exc}") from exc
        if result.returncode != 0:
            raise ServerError(f"go {argv[1]} exited with code {result.returncode}")
        return result.stdout.decode() if capture else ""

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def _argv(self) -> list[str]:
        return [
            str(self.binary()),
            "--handler=sqlite",
            f"--sqlite-url=file:{self.data_dir}/",
            f"--listen-addr={self.host}:{self.port}",
            f"--state-dir={self.run_dir}",
            "--telemetry=disable",
            "--debug-addr=-",  # no metrics/pprof HTTP listener (default 127.0.0.1:8088)
            "--log-level=warn",
        ]

    def _env(self) -> dict[str, str] | None:
        return {"FERRETDB_TELEMETRY": "disable", "DO_NOT_TRACK": "1"}

    def _ready(self) -> bool:
        return _mongo_ready(self.host, self.port, self.url)


#: Runs nx-27017's CLI in the foreground with its own per-request INFO logging
#: turned down to warnings (it logs every command otherwise), and routes updates
#: that set datetimes around a storage bug (see docs/devstack.md; tested in
#: tests/compat/test_types.py).
_NX_BOOTSTRAP: Final = (
    "import logging, sys\n"
    "logging.getLogger('nx_27017').setLevel(logging.WARNING)\n"
    # neosqlite 1.17's SQL update path stores a datetime given to $set/$setOnInsert as a
    # string; send updates that carry datetimes down its Python path, which keeps them.
    "from datetime import datetime\n"
    "from neosqlite.collection.query_helper._sql_updates import SqlUpdatesMixin as _M\n"
    "def _has_dt(v):\n"
    "    if isinstance(v, datetime): return True\n"
    "    if isinstance(v, dict): return any(_has_dt(x) for x in v.values())\n"
    "    if isinstance(v, (list, tuple)): return any(_has_dt(x) for x in v)\n"
    "    return False\n"
    "_sql_ok = _M._can_use_sql_updates\n"
    "_M._can_use_sql_updates = lambda self, spec, doc_id, original_doc=None: (\n"
    "    not _has_dt(spec) and _sql_ok(self, spec, doc_id, original_doc))\n"
    "from nx_27017.nx_27017 import main\n"
    "sys.argv[0] = 'nx-27017'\n"
    "sys.exit(main())\n"
)


class NxServer(Server):
    """nx-27017 (pure Python on SQLite), one database file per MongoDB database."""

    name = "nx-27017"
    start_timeout = 30.0

    @property
    def url(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "nx-data"

    def install(self) -> None:
        if importlib.util.find_spec("nx_27017") is None:
            raise ServerError(
                "nx-27017 is not installed in this interpreter "
                f"({sys.executable}); planboard-devstack depends on it (`make run` installs both)"
            )

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "nx-27017.pid"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A pid file left by a killed run makes nx-27017 refuse to start if its
        # pid has been reused; this run dir belongs to this server alone.
        self.pid_file.unlink(missing_ok=True)

    def _argv(self) -> list[str]:
        return [
            sys.executable,
            "-c",
            _NX_BOOTSTRAP,
            "--host",
            self.host,
            "--port",
            str(self.port),
            # --data-dir: one SQLite file per database, so dropDatabase drops only
            # that database (the single-file mode drops every database).
            "--data-dir",
            str(self.data_dir),
            "--pid-file",
            str(self.pid_file),
            # Output already goes to the process log; don't write it twice.
            "--log-file",
            os.devnull,
        ]

    def _ready(self) -> bool:
        return _mongo_ready(self.host, self.port, self.url)


def mongo_server(kind: str | None, run_dir: Path, port: int, host: str = "127.0.0.1") -> Server:
    """The MongoDB dev server named ``kind`` ("ferretdb" or "nx") on ``host:port``.

    With no ``kind``, ``$PLANBOARD_MONGO_SERVER`` decides, else :data:`DEFAULT_KIND`.
    """
    chosen = (kind or os.environ.get(ENV_KIND) or DEFAULT_KIND).strip().lower()
    if chosen == "ferretdb":
        return FerretDBServer(run_dir, port, host)
    if chosen in ("nx", "nx-27017"):
        return NxServer(run_dir, port, host)
    raise ServerError(f"unknown MongoDB dev server {chosen!r}; choose one of {', '.join(KINDS)}")
