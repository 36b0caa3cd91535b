"""A one-node Kubernetes cluster that runs real Pods, inside a network namespace.

``NodeCluster(run_dir, tools, images).start()`` brings up, in the network namespace
``planboard-cluster`` (node address 10.200.0.2, nothing routed to or from the host):

- containerd (CRI, runc, bridge CNI on 10.244.0.0/24) with the Planboard and pause images
  imported from OCI archives (no registry);
- the control plane of ``devstack.kube`` (etcd, kube-apiserver advertising the node
  address, kube-controller-manager with every controller), kube-scheduler, the kubelet,
  kube-proxy (iptables, in the namespace only) and CoreDNS (``cluster.local``) as node
  processes;
- the dev stack's own Redis, MongoDB-wire server and Kafka on the node address, the
  backends the chart's stack connects to (no backend image can be pulled here).

The calling thread joins the namespace for the cluster's lifetime: its ``kubectl``,
``helm`` and HTTP calls reach the apiserver, Pods and ClusterIP Services directly.
``stop()`` (and, after a crash, the next ``start()`` or ``python -m
planboard_devstack.cluster down``) removes every trace: processes by pid from the
cluster's cgroups, mounts under the run directory, the namespace, the cgroups, the kernel
settings the kubelet changed, and its entries on fixed host paths (``host.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from planboard_devstack.cluster import host
from planboard_devstack.cluster.tools import CNI_PLUGINS, ClusterTools, Images
from planboard_devstack.kafka import KafkaServer
from planboard_devstack.kube import KubeCluster
from planboard_devstack.mailsink import MailSinkServer
from planboard_devstack.mongo import mongo_server
from planboard_devstack.process import ManagedProcess, Server, ServerError
from planboard_devstack.redis import RedisServer

NETNS = "planboard-cluster"
NODE_IP = "10.200.0.2"
NODE_NAME = "planboard-node"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
#: The kubelet's cgroupRoot; the cluster's daemons live in ``<root>/daemons``.
CGROUP_ROOT = "/planboard-cluster"
CNI_NETWORK = "planboard-cluster"
BACKEND_PORTS = {"mongodb": 27017, "kafka": 9092, "redis": 6379, "mail": 1025, "mail-http": 8025}
#: One cluster per machine: the addresses, namespace and cgroup names are fixed.
LOCK_PATH = Path("/run/lock/planboard-cluster.lock")
STATE_PATH = Path("/run/planboard-cluster/state.json")


@dataclass
class HostState:
    """What a running cluster changed on the host: enough to undo it after a crash."""

    run_dir: str
    owner_pid: int
    netns: str = NETNS
    cgroup: str = CGROUP_ROOT
    cni_network: str = CNI_NETWORK
    sysctls: dict[str, str] = field(default_factory=dict)
    existed_before: list[str] = field(default_factory=list)
    shim_sockets_before: list[str] = field(default_factory=list)

    def save(self) -> None:
        STATE_PATH.parent.mkdir(parents=True, exist_ok=True)
        tmp = STATE_PATH.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(STATE_PATH)

    @classmethod
    def load(cls) -> HostState | None:
        try:
            return cls(**json.loads(STATE_PATH.read_text()))
        except FileNotFoundError:
            return None


def undo(state: HostState, log: Callable[[str], None] = lambda _: None) -> list[str]:
    """Remove everything a cluster recorded in ``state`` left on the host; what was done.

    Order: every process of the cluster's cgroups (Pods, shims, daemons) by pid, mounts
    under its run directory, its network namespace, its cgroups, the kernel settings, the
    fixed host paths. Every step runs even if an earlier one failed; the state file goes
    only when all succeeded (so ``down`` can try again), else ServerError names the
    failures. Safe to repeat.
    """
    done: list[str] = []
    failed: list[str] = []
    cgroup = host.CgroupTree(state.cgroup)
    run_dir = Path(state.run_dir)
    namespace = host.NetworkNamespace(state.netns, NODE_IP)

    def kill() -> str:
        killed = cgroup.kill_all() if cgroup.exists() else 0
        return f"stopped {killed} processes of cgroup {state.cgroup}" if killed else ""

    def unmount() -> str:
        points = host.unmount_all(run_dir)
        return f"unmounted {len(points)} mounts under {run_dir}" if points else ""

    def delete_namespace() -> str:
        if not namespace.exists():
            return ""
        namespace.delete()
        return f"deleted network namespace {state.netns}"

    def remove_cgroup() -> str:
        if not cgroup.exists():
            return ""
        cgroup.remove()
        return f"removed cgroup {state.cgroup}"

    def restore() -> str:
        restored = host.restore_sysctls(state.sysctls)
        return f"restored {', '.join(restored)}" if restored else ""

    def clean_paths() -> str:
        removed = host.clean_host_paths(
            existed_before=state.existed_before,
            shim_sockets_before=state.shim_sockets_before,
            run_dir=run_dir,
            cni_network=state.cni_network,
        )
        left = host.leftovers(state.existed_before)
        if left:
            raise ServerError(f"left on the host, not known to be the cluster's: {left}")
        return f"removed {', '.join(removed)}" if removed else ""

    for step in (kill, unmount, delete_namespace, remove_cgroup, restore, clean_paths):
        try:
            line = step()
        except (OSError, ServerError) as exc:
            failed.append(f"{step.__name__}: {exc}")
            log(f"FAILED {step.__name__}: {exc}")
            continue
        if line:
            done.append(line)
            log(line)
    if failed:
        raise ServerError(
            "the cluster's host changes could not all be undone (state kept in "
            f"{STATE_PATH}; `python -m planboard_devstack.cluster down` tries again): {failed}"
        )
    with contextlib.suppress(FileNotFoundError):
        STATE_PATH.unlink()
    with contextlib.suppress(OSError):
        STATE_PATH.parent.rmdir()
    return done


class ClusterLock:
    """The machine-wide lock of the one cluster (held for the cluster's lifetime)."""

    def __init__(self) -> None:
        self._file: Any = None

    def acquire(self, timeout: float, log: Callable[[str], None]) -> None:
        LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(LOCK_PATH, "a+")  # noqa: SIM115 - held until release()
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._file.close()
                    self._file = None
                    raise ServerError(
                        f"another one-node cluster has held {LOCK_PATH} for {timeout:.0f}s "
                        "(one per machine); try again when it has finished"
                    ) from None
                if not announced:
                    log(f"another one-node cluster is running ({LOCK_PATH}); waiting for it")
                    announced = True
                time.sleep(1)

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock (a cluster is running)."""
        LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
        with open(LOCK_PATH, "a+") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(probe, fcntl.LOCK_UN)
            return False

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=_unverified()) as resp:  # noqa: S310
            return bool(200 <= resp.status < 300)
    except (OSError, ValueError):
        return False


class NodeCluster:
    """The one-node cluster; use ``with NodeCluster(...) as cluster:`` or start()/stop()."""

    start_timeout = 180.0

    def __init__(
        self,
        run_dir: Path,
        tools: ClusterTools,
        images: Images,
        *,
        lock_timeout: float = 1800.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.run_dir = run_dir.resolve()
        self.tools = tools
        self.images = images
        self.lock_timeout = lock_timeout
        self.log = log or (lambda line: None)
        self.namespace = host.NetworkNamespace(NETNS, NODE_IP)
        self.cgroup = host.CgroupTree(CGROUP_ROOT)
        self.control_plane = KubeCluster(
            self.run_dir / "control-plane",
            controllers=("*",),
            service_cidr=SERVICE_CIDR,
            host=NODE_IP,
            reconcile_endpoints=True,
            extra_apiserver_args=("--kubelet-preferred-address-types=InternalIP",),
            on_spawn=self._adopt,
        )
        self.processes: dict[str, ManagedProcess] = {}
        self.backends: dict[str, Server] = {}
        self.state: HostState | None = None
        self._lock = ClusterLock()
        self.start_seconds = 0.0

    # -- public surface ---------------------------------------------------------------

    @property
    def kubeconfig_path(self) -> Path:
        return self.control_plane.kubeconfig_path

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd" / "containerd.sock"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def mongodb_uri(self) -> str:
        return f"mongodb://{NODE_IP}:{BACKEND_PORTS['mongodb']}/?directConnection=true"

    @property
    def redis_url(self) -> str:
        return f"redis://{NODE_IP}:{BACKEND_PORTS['redis']}/0"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{NODE_IP}:{BACKEND_PORTS['kafka']}"

    @property
    def smtp(self) -> tuple[str, int]:
        return NODE_IP, BACKEND_PORTS["mail"]

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the cluster (from the namespace), capturing its output."""
        result = subprocess.run(
            [str(self.tools.kubectl), "--kubeconfig", str(self.kubeconfig_path), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise ServerError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def stop_backend(self, name: str) -> None:
        """Stop one backend (``redis``, ``mongodb``, ``kafka``, ``mail``), as an outage."""
        self.backends[name].stop()

    def start_backend(self, name: str) -> None:
        """Start a stopped backend again, on the same address and data directory."""
        server = self.backends[name]
        server.start()
        self._adopt_server(server)

    def volume_dir(self, name: str) -> Path:
        """A directory for a hostPath PersistentVolume (writable by the image's UID)."""
        path = self.run_dir / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, 10001, 10001)
        path.chmod(0o770)
        return path

    def memory_peak_bytes(self) -> int:
        """Peak memory of everything the cluster ran (daemons, backends and Pods)."""
        return self.cgroup.memory_peak_bytes()

    def start(self) -> None:
        started = time.monotonic()
        self._lock.acquire(self.lock_timeout, self.log)
        try:
            stale = HostState.load()
            if stale is not None:
                self.log(f"cleaning up after an earlier cluster (pid {stale.owner_pid})")
                undo(stale, self.log)
            self._record_host()
            self.namespace.create()
            self.namespace.enter()
            self.cgroup.create("daemons")
            self._start_backends_and_containerd()
            self.control_plane.start()
            self._start_node()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        self.log(f"one-node cluster ready in {self.start_seconds:.0f}s")

    def stop(self) -> None:
        """Stop everything and undo every host change (idempotent)."""
        try:
            for name in ("coredns", "kube-proxy", "kubelet", "kube-scheduler"):
                process = self.processes.pop(name, None)
                if process is not None:
                    process.stop()
            self.control_plane.stop()
            for server in self.backends.values():
                with contextlib.suppress(Exception):
                    server.stop()
            process = self.processes.pop("containerd", None)
            if process is not None:
                process.stop()
        finally:
            self.namespace.leave()
            try:
                if self.state is not None:
                    undo(self.state, self.log)
                    self.state = None
                    self._prune_run_dir()
            finally:
                self._lock.release()

    def _prune_run_dir(self) -> None:
        """Delete the bulky state (unpacked images, kubelet and containerd data), keep the
        logs and configuration for a look after the run."""
        for bulky in ("containerd", "kubelet", "images"):
            shutil.rmtree(self.run_dir / bulky, ignore_errors=True)

    def __enter__(self) -> NodeCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def diagnose(self, namespace: str | None = None) -> str:
        """What to read when something did not come up: nodes, Pods, events, the logs of
        Pods that are not ready, and the tails of the node processes' logs."""
        scope = ["-n", namespace] if namespace else ["-A"]
        sections = []
        for title, args in (
            ("nodes", ["get", "nodes", "-o", "wide"]),
            ("pods", ["get", "pods", *scope, "-o", "wide"]),
            ("events", ["get", "events", *scope, "--sort-by=.lastTimestamp"]),
            ("workloads", ["get", "deploy,rs,jobs,pvc,pv,svc,endpoints", *scope]),
        ):
            result = self.kubectl(*args, check=False, timeout=30)
            sections.append(f"--- {title}\n{result.stdout}{result.stderr}")
        pods = self.kubectl("get", "pods", *scope, "-o", "json", check=False, timeout=30)
        try:
            items = json.loads(pods.stdout).get("items", [])
        except ValueError:
            items = []
        for pod in items:
            statuses = pod.get("status", {}).get("containerStatuses") or []
            if statuses and all(s.get("ready") for s in statuses):
                continue
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            described = self.kubectl("describe", "pod", "-n", ns, name, check=False, timeout=30)
            logs = self.kubectl(
                "logs", "-n", ns, name, "--all-containers", "--tail=40", check=False, timeout=30
            )
            sections.append(
                f"--- pod {ns}/{name}\n{described.stdout[-3000:]}\n{logs.stdout}{logs.stderr}"
            )
        for name in ("kubelet", "containerd", "kube-scheduler"):
            log_path = self.logs_dir / f"{name}.log"
            with contextlib.suppress(OSError):
                tail = log_path.read_text(errors="replace").splitlines()[-25:]
                sections.append(f"--- {log_path} (tail)\n" + "\n".join(tail))
        return "\n".join(sections)

    # -- start-up ---------------------------------------------------------------------

    def _record_host(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state = HostState(
            run_dir=str(self.run_dir),
            owner_pid=os.getpid(),
            sysctls=host.read_sysctls(),
            existed_before=host.existing_paths(),
            shim_sockets_before=host.listing("/run/containerd/s"),
        )
        self.state.save()

    def _adopt(self, process: ManagedProcess) -> None:
        if process.pid is not None:
            self.cgroup.adopt(process.pid, "daemons")

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(
            name=name, argv=argv, log_path=self.logs_dir / f"{name}.log", cwd=self.run_dir
        )
        self.processes[name] = process
        process.start()
        self._adopt(process)
        return process

    def _start_backends_and_containerd(self) -> None:
        backends_dir = self.run_dir / "backends"
        self.backends = {
            "redis": RedisServer(backends_dir / "redis", BACKEND_PORTS["redis"], NODE_IP),
            "mongodb": mongo_server(
                None, backends_dir / "mongodb", BACKEND_PORTS["mongodb"], NODE_IP
            ),
            "kafka": KafkaServer(backends_dir / "kafka", BACKEND_PORTS["kafka"], NODE_IP),
            "mail": MailSinkServer(
                backends_dir / "mail", BACKEND_PORTS["mail"], NODE_IP, BACKEND_PORTS["mail-http"]
            ),
        }
        # Threads started here are born in the namespace too (this thread is in it).
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(server.start) for server in self.backends.values()]
            futures.append(pool.submit(self._start_containerd))
            for future in futures:
                future.result()
        for server in self.backends.values():
            self._adopt_server(server)

    def _adopt_server(self, server: Server) -> None:
        if server.process is not None:
            self._adopt(server.process)

    def _start_containerd(self) -> None:
        base = self.run_dir / "containerd"
        for sub in ("root", "state", "opt", "runc"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        net_d = self.run_dir / "cni" / "net.d"
        net_d.mkdir(parents=True, exist_ok=True)
        (net_d / "10-planboard.conflist").write_text(json.dumps(self._cni_config(), indent=2))
        config = base / "config.toml"
        config.write_text(self._containerd_config())
        process = self._spawn(
            "containerd", [self.tools.commands["containerd"], "--config", str(config)]
        )
        process.wait_until(
            lambda: self.ctr("version", check=False).returncode == 0, 60, "serving (ctr version)"
        )
        for archive, ref in (
            (self.images.pause, self.images.pause_ref),
            (self.images.planboard, self.images.planboard_ref),
        ):
            # --base-name: ctr keeps an archive's full image name only under that prefix.
            base_name = ref.rsplit(":", 1)[0]
            self.ctr("images", "import", "--base-name", base_name, str(archive), timeout=300)
        listed = self.ctr("images", "ls", "-q").stdout.split()
        for ref in (self.images.pause_ref, self.images.planboard_ref):
            if ref not in listed:
                raise ServerError(f"containerd has no image {ref} after the import: {listed}")

    def ctr(
        self, *args: str, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [
                self.tools.commands["ctr"],
                "--address",
                str(self.containerd_socket),
                "-n",
                "k8s.io",
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise ServerError(f"ctr {' '.join(args)} failed:\n{result.stderr}")
        return result

    def _start_node(self) -> None:
        kubeconfig = str(self.kubeconfig_path)
        auth = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
        ]
        node = self.tools.node
        self._spawn(
            "kube-scheduler",
            [
                str(node / "kube-scheduler"),
                *auth,
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=10259",
                "--profiling=false",
            ],
        )
        kubelet_root = self.run_dir / "kubelet"
        kubelet_root.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "resolv.conf").write_text("# the node's resolv.conf: no upstream DNS\n")
        (self.run_dir / "pod-logs").mkdir(exist_ok=True)
        kubelet_config = self.run_dir / "kubelet-config.yaml"
        kubelet_config.write_text(json.dumps(self._kubelet_config(), indent=2))
        self._spawn(
            "kubelet",
            [
                str(node / "kubelet"),
                f"--config={kubelet_config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={kubelet_root}",
                f"--cert-dir={kubelet_root / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "-v=1",
            ],
        )
        proxy_config = self.run_dir / "kube-proxy-config.yaml"
        proxy_config.write_text(json.dumps(self._kube_proxy_config(), indent=2))
        self._spawn("kube-proxy", [str(node / "kube-proxy"), f"--config={proxy_config}"])
        corefile = self.run_dir / "Corefile"
        corefile.write_text(self._corefile())
        self._spawn("coredns", [str(self.tools.coredns), "-conf", str(corefile)])

    def _wait_ready(self) -> None:
        checks: list[tuple[str, Callable[[], bool]]] = [
            ("kube-scheduler", lambda: _http_ok("https://127.0.0.1:10259/healthz")),
            ("kube-proxy", lambda: _http_ok("http://127.0.0.1:10256/healthz")),
            ("coredns", lambda: _http_ok("http://127.0.0.1:8181/ready")),
            ("kubelet", self._node_ready),
        ]
        for name, check in checks:
            try:
                self.processes[name].wait_until(check, self.start_timeout, "ready")
            except ServerError as exc:
                raise ServerError(f"{exc}\n{self.diagnose()}") from None

    def _node_ready(self) -> bool:
        result = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False, timeout=10)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # -- configuration ----------------------------------------------------------------

    def _cni_config(self) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.run_dir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def _containerd_config(self) -> str:
        base = self.run_dir / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""# containerd of the one-node cluster: every path under the run directory.
version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{self.containerd_socket}"

[ttrpc]
  address = "{base / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"

# The legacy runtime (the tasks service needs it loaded; the CRI uses runc v2 below).
[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "{base / "runc-v1"}"

[{cri}]
  sandbox_image = "{self.images.pause_ref}"
  enable_selinux = false
  disable_apparmor = true
  # The sandbox lacks CAP_SYS_RESOURCE: without this runc fails to lower oom_score_adj.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{self.tools.commands["runc"]}"
        Root = "{base / "runc"}"
  [{cri}.cni]
    bin_dir = "{CNI_PLUGINS}"
    conf_dir = "{self.run_dir / "cni" / "net.d"}"
    max_conf_num = 1
"""

    def _kubelet_config(self) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # The machine has the hybrid cgroup v1 hierarchy (kubelet 1.35+ refuses it by
            # default) and no systemd.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": CGROUP_ROOT,
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "failSwapOn": False,
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "clusterDomain": CLUSTER_DOMAIN,
            "clusterDNS": [NODE_IP],
            "resolvConf": str(self.run_dir / "resolv.conf"),
            "podLogsDir": str(self.run_dir / "pod-logs"),
            "volumePluginDir": str(self.run_dir / "kubelet" / "volume-plugins"),
            "protectKernelDefaults": False,
            "serializeImagePulls": False,
            "rotateCertificates": False,
            "evictionHard": {
                "memory.available": "200Mi",
                "nodefs.available": "2%",
                "imagefs.available": "2%",
            },
            "imageGCHighThresholdPercent": 99,
            "imageGCLowThresholdPercent": 98,
            "maxPods": 40,
            "oomScoreAdj": 0,
            "shutdownGracePeriod": "0s",
        }

    def _kube_proxy_config(self) -> dict[str, Any]:
        return {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfig_path)},
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # 0: leave the (host-wide) nf_conntrack_max and timeouts as they are.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
        }

    def _corefile(self) -> str:
        return f""".:53 {{
    bind {NODE_IP}
    errors
    ready 127.0.0.1:8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {self.kubeconfig_path} planboard-dev
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""
