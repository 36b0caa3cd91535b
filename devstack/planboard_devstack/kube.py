"""A real local Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

The binaries are built once from the Go module proxy by ``scripts/build-kube.sh``
into ``cache_dir()/kube/v<version>/bin``. There is no scheduler and no kubelet:
Pods stay Pending, so tests that need a workload "ready" patch its status.
(``devstack.cluster`` adds a node to the same control plane, in a network namespace.)

The apiserver runs with RBAC authorization, a static admin token (group
``system:masters``) and a service-account signing key, so ServiceAccount
tokens (TokenRequest) and the chart's RBAC can be tested for real.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from planboard_devstack.paths import cache_dir, free_port
from planboard_devstack.process import ManagedProcess, ServerError
from planboard_devstack.system import ensure_command

#: Kubernetes version built by default (``PLANBOARD_KUBE_VERSION`` overrides it).
KUBE_VERSION = "1.36.3"

#: Controllers run by kube-controller-manager: enough for owner-reference
#: garbage collection, namespace deletion, service accounts and Deployments.
DEFAULT_CONTROLLERS: tuple[str, ...] = (
    "garbagecollector",
    "namespace",
    "serviceaccount",
    "serviceaccount-token",
    "deployment",
    "replicaset",
)

_BINARIES = ("kube-apiserver", "kube-controller-manager", "kubectl", "etcd")


def build_script() -> Path:
    """``scripts/build-kube.sh`` of this package (package data: it works installed too)."""
    script = Path(__file__).resolve().parent / "scripts" / "build-kube.sh"
    if not script.is_file():
        raise ServerError(f"{script} not found: the planboard-devstack package is incomplete")
    return script


def install_kube(version: str | None = None) -> Path:
    """Build (once, cached) the control-plane binaries; return their ``bin`` directory.

    A cold build downloads ~600 MB of Go modules and compiles for about 5 minutes on
    2 cores; afterwards this returns at once. Progress goes to stderr.
    """
    return run_build_script((), _BINARIES, version)


def run_build_script(
    args: Sequence[str], binaries: Sequence[str], version: str | None = None
) -> Path:
    """``scripts/build-kube.sh [args]`` (cached builds under a lock): the ``bin``
    directory it prints last, checked to hold ``binaries``."""
    env = dict(os.environ)
    env["PLANBOARD_KUBE_VERSION"] = version or os.environ.get(
        "PLANBOARD_KUBE_VERSION", KUBE_VERSION
    )
    env["PLANBOARD_CACHE_DIR"] = str(cache_dir())
    ensure_command("flock", "util-linux")
    what = " ".join(["scripts/build-kube.sh", *args])
    result = subprocess.run(
        ["bash", str(build_script()), *args],
        stdout=subprocess.PIPE,
        stderr=None,
        env=env,
        check=False,
    )
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    if result.returncode != 0 or not lines:
        raise ServerError(f"{what} failed (exit {result.returncode}); see its output above")
    bin_dir = Path(lines[-1])
    missing = [name for name in binaries if not (bin_dir / name).is_file()]
    if missing:
        raise ServerError(f"{what} did not produce {missing} in {bin_dir}")
    return bin_dir


def _unverified_tls() -> ssl.SSLContext:
    # The apiserver's serving certificate is self-signed (generated into --cert-dir).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class KubeCluster:
    """etcd + kube-apiserver + kube-controller-manager on free loopback ports.

    Use as ``with KubeCluster(run_dir) as cluster: ...`` or call ``start()`` and
    ``stop()``. ``kubeconfig_path`` names an admin kubeconfig (static token,
    ``insecure-skip-tls-verify``) for kubectl, Helm, kopf and the Python client.
    """

    start_timeout = 90.0

    def __init__(
        self,
        run_dir: Path,
        *,
        version: str | None = None,
        controllers: Sequence[str] = DEFAULT_CONTROLLERS,
        service_cidr: str = "10.96.0.0/16",
        extra_apiserver_args: Sequence[str] = (),
        verify_tls: bool = True,
        host: str = "127.0.0.1",
        reconcile_endpoints: bool = False,
        on_spawn: Callable[[ManagedProcess], None] | None = None,
    ) -> None:
        """``host`` is the address every process binds and the apiserver advertises.
        With ``reconcile_endpoints`` the ``kubernetes`` Service points at it (for Pods that
        call the API; ``host`` must then be reachable from them, not loopback).
        ``on_spawn`` is called with each process as soon as it has started."""
        self.run_dir = run_dir
        self.version = version
        self.controllers = tuple(controllers)
        self.service_cidr = service_cidr
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self.verify_tls = verify_tls
        self.host = host
        self.reconcile_endpoints = reconcile_endpoints
        self.on_spawn = on_spawn
        self.admin_token = secrets.token_urlsafe(32)
        self.bin_dir: Path | None = None
        self.etcd_port = 0
        self.etcd_peer_port = 0
        self.port = 0
        self.controller_manager_port = 0
        self.processes: dict[str, ManagedProcess] = {}
        self.start_seconds = 0.0

    # -- public surface -------------------------------------------------------

    @property
    def server_url(self) -> str:
        """``https://127.0.0.1:<port>`` of the kube-apiserver."""
        if not self.port:
            raise ServerError("the cluster has not been started")
        return f"https://{self.host}:{self.port}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def ca_cert_path(self) -> Path:
        """The self-signed serving certificate (and its CA) the apiserver generated."""
        return self.run_dir / "apiserver-certs" / "apiserver.crt"

    @property
    def etcd_url(self) -> str:
        return f"http://{self.host}:{self.etcd_port}"

    @property
    def kubectl_path(self) -> Path:
        """The kubectl built with the control plane (same version)."""
        return self._bin("kubectl")

    def install(self) -> Path:
        """Build the binaries once (cached); return their directory."""
        if self.bin_dir is None:
            self.bin_dir = install_kube(self.version)
        return self.bin_dir

    def start(self) -> None:
        """Start etcd, the apiserver and the controller-manager; wait until usable.

        Returns when ``/readyz`` answers ok and the controller-manager has created
        the ``default`` ServiceAccount (so Pods can be created at once).
        """
        if self.running():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.install()
        started = time.monotonic()
        self._write_credentials()
        try:
            self._start_etcd()
            self._start_apiserver()
            self._write_kubeconfig()
            self._start_controller_manager()
            self._wait_default_service_account()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop the processes (controller-manager, apiserver, etcd); keep run_dir."""
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            process = self.processes.pop(name, None)
            if process is not None:
                process.stop()

    def running(self) -> bool:
        return bool(self.processes) and all(p.running() for p in self.processes.values())

    def rss(self) -> dict[str, int]:
        """Resident memory in bytes of each running process, by name."""
        return {
            name: rss_bytes(process.pid)
            for name, process in self.processes.items()
            if process.pid is not None
        }

    def api_get(self, path: str, timeout: float = 10.0) -> Any:
        """GET ``path`` from the apiserver as admin; the decoded JSON body."""
        with self._open(path, timeout) as resp:
            return json.loads(resp.read())

    def _open(self, path: str, timeout: float) -> Any:
        """An admin GET of the apiserver (HTTPError for non-2xx answers)."""
        headers = {"Authorization": f"Bearer {self.admin_token}", "Accept": "application/json"}
        url = self.server_url + path  # always https://127.0.0.1:<port>/...
        request = urllib.request.Request(url, headers=headers)  # noqa: S310
        return urllib.request.urlopen(request, timeout=timeout, context=_unverified_tls())  # noqa: S310

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the bundled kubectl against this cluster, capturing its output."""
        result = subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig_path), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise ServerError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def __enter__(self) -> KubeCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------

    def _bin(self, name: str) -> Path:
        if self.bin_dir is None:
            raise ServerError("KubeCluster.install() has not run")
        return self.bin_dir / name

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(
            name=name,
            argv=argv,
            log_path=self.run_dir / f"{name}.log",
            cwd=self.run_dir,
        )
        self.processes[name] = process
        process.start()
        if self.on_spawn is not None:
            self.on_spawn(process)
        return process

    def _write_credentials(self) -> None:
        """Service-account signing key pair and the static token file."""
        key = self.run_dir / "sa.key"
        pub = self.run_dir / "sa.pub"
        if not (key.is_file() and pub.is_file()):
            openssl = ensure_command("openssl", "openssl")
            for argv in (
                [openssl, "genrsa", "-out", str(key), "2048"],
                [openssl, "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
            ):
                result = subprocess.run(argv, capture_output=True, check=False)
                if result.returncode != 0:
                    raise ServerError(f"{' '.join(argv)} failed: {result.stderr.decode()}")
        tokens = self.run_dir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},admin,admin,"system:masters"\n')
        tokens.chmod(0o600)

    def _start_etcd(self) -> None:
        self.etcd_port = free_port(self.host)
        self.etcd_peer_port = free_port(self.host)
        peer = f"http://{self.host}:{self.etcd_peer_port}"
        process = self._spawn(
            "etcd",
            [
                str(self._bin("etcd")),
                "--name=default",
                f"--data-dir={self.run_dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--initial-cluster-state=new",
                # A test cluster: speed over durability.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        process.wait_until(self._etcd_healthy, self.start_timeout, "healthy")

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=1) as resp:  # noqa: S310
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _start_apiserver(self) -> None:
        self.port = free_port(self.host)
        process = self._spawn(
            "kube-apiserver",
            [
                str(self._bin("kube-apiserver")),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={self.host}",
                f"--advertise-address={self.host}",
                f"--secure-port={self.port}",
                f"--cert-dir={self.run_dir / 'apiserver-certs'}",
                f"--token-auth-file={self.run_dir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--anonymous-auth=false",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.run_dir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.run_dir / 'sa.key'}",
                f"--service-cluster-ip-range={self.service_cidr}",
                # The "kubernetes" Service's Endpoints may not point at loopback.
                *(() if self.reconcile_endpoints else ("--endpoint-reconciler-type=none",)),
                "--allow-privileged=true",
                "--profiling=false",
                *self.extra_apiserver_args,
            ],
        )
        process.wait_until(self._apiserver_ready, self.start_timeout, "ready (/readyz)")

    def _apiserver_ready(self) -> bool:
        try:
            with self._open("/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except (OSError, ValueError):
            return False

    def _write_kubeconfig(self) -> None:
        # JSON is YAML: kubectl, Helm, kopf and the Python client all read it.
        cluster: dict[str, Any] = {"server": self.server_url}
        if self.verify_tls and self.ca_cert_path.is_file():
            cluster["certificate-authority-data"] = base64.b64encode(
                self.ca_cert_path.read_bytes()
            ).decode()
        else:
            cluster["insecure-skip-tls-verify"] = True
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "planboard-dev",
                    "cluster": cluster,
                }
            ],
            "users": [{"name": "planboard-admin", "user": {"token": self.admin_token}}],
            "contexts": [
                {
                    "name": "planboard-dev",
                    "context": {
                        "cluster": "planboard-dev",
                        "user": "planboard-admin",
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "planboard-dev",
            "preferences": {},
        }
        path = self.kubeconfig_path
        path.write_text(json.dumps(config, indent=2) + "\n")
        path.chmod(0o600)

    def _start_controller_manager(self) -> None:
        self.controller_manager_port = free_port(self.host)
        self._spawn(
            "kube-controller-manager",
            [
                str(self._bin("kube-controller-manager")),
                f"--kubeconfig={self.kubeconfig_path}",
                f"--authentication-kubeconfig={self.kubeconfig_path}",
                f"--authorization-kubeconfig={self.kubeconfig_path}",
                f"--bind-address={self.host}",
                f"--secure-port={self.controller_manager_port}",
                f"--cert-dir={self.run_dir / 'controller-manager-certs'}",
                f"--controllers={','.join(self.controllers)}",
                f"--service-account-private-key-file={self.run_dir / 'sa.key'}",
                f"--root-ca-file={self.ca_cert_path}",
                f"--service-cluster-ip-range={self.service_cidr}",
                # Its default (/usr/libexec/kubernetes/...) would be created on the host.
                f"--flex-volume-plugin-dir={self.run_dir / 'flexvolume'}",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )

    def _wait_default_service_account(self) -> None:
        def ready() -> bool:
            try:
                self.api_get("/api/v1/namespaces/default/serviceaccounts/default", timeout=2)
            except (OSError, ValueError):
                return False
            return True

        cm = self.processes["kube-controller-manager"]
        if "serviceaccount" in self.controllers or "*" in self.controllers:
            cm.wait_until(ready, self.start_timeout, "creating the default ServiceAccount")
        else:
            cm.wait_until(lambda: True, self.start_timeout, "started")
