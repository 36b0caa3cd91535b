"""What the one-node cluster changes on the host, each with its undo.

- a network namespace (``ip netns``) holding every address the cluster uses: the node's
  address on a veth pair whose *both* ends stay inside it, the Pods' bridge, Services'
  iptables rules. Nothing is routed to or from the host's own network; the calling thread
  joins the namespace (``setns``) to reach the cluster;
- a cgroup (v1) subtree in every hierarchy: the kubelet's ``cgroupRoot`` for the Pods, and
  ``daemons`` beneath it for every process the cluster starts, so teardown finds and kills
  every one of them (containerd's shims and the Pods included) by pid from
  ``cgroup.procs``, and the memory controller measures the whole cluster's peak;
- the kernel settings the kubelet changes at start (``vm.overcommit_memory``,
  ``kernel.panic``, ...): read before, written back after;
- fixed host paths that containerd and the kubelet use whatever their configuration says
  (``/run/containerd/s`` shim sockets, ``/var/log/containers`` links, ``/var/lib/cni``
  result cache): the cluster's own entries are removed, and a directory that did not exist
  before is removed with them;
- mounts (Pod volumes, container root filesystems, sandbox network namespaces) under the
  run directory: unmounted, deepest first.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from planboard_devstack.process import ServerError

CGROUP_FS = Path("/sys/fs/cgroup")
_CLONE_NEWNET = 0x40000000
_MNT_DETACH = 2


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServerError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


# -- the network namespace ----------------------------------------------------------------


class NetworkNamespace:
    """``ip netns`` ``name`` with ``node_ip`` on the veth ``node0`` (its peer stays inside)."""

    device = "node0"

    def __init__(self, name: str, node_ip: str, prefix_length: int = 24) -> None:
        self.name = name
        self.node_ip = node_ip
        self.prefix_length = prefix_length
        self._home_fd: int | None = None

    @property
    def path(self) -> Path:
        return Path("/run/netns") / self.name

    def exists(self) -> bool:
        return self.path.exists()

    def create(self) -> None:
        """Create it (a leftover of the same name, from a run that lost its state, goes)."""
        ip = shutil.which("ip") or "/usr/sbin/ip"
        self.delete()
        _run(ip, "netns", "add", self.name)
        for argv in (
            ("link", "set", "lo", "up"),
            ("link", "add", self.device, "type", "veth", "peer", "name", f"{self.device}-peer"),
            ("addr", "add", f"{self.node_ip}/{self.prefix_length}", "dev", self.device),
            ("link", "set", f"{self.device}-peer", "up"),
            ("link", "set", self.device, "up"),
            # A default route, so components that look for "the host's interface" find one.
            ("route", "add", "default", "dev", self.device),
        ):
            _run(ip, "-n", self.name, *argv)

    def enter(self) -> None:
        """Move the calling thread into the namespace (its children are born there)."""
        if self._home_fd is not None:
            return
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
        except BaseException:
            os.close(home)
            raise
        finally:
            os.close(target)
        self._home_fd = home

    def leave(self) -> None:
        """Move the calling thread back to the network namespace it came from."""
        if self._home_fd is None:
            return
        try:
            _setns(self._home_fd)
        finally:
            os.close(self._home_fd)
            self._home_fd = None

    @property
    def entered(self) -> bool:
        return self._home_fd is not None

    def delete(self) -> None:
        if self.exists():
            ip = shutil.which("ip") or "/usr/sbin/ip"
            _run(ip, "netns", "delete", self.name)


def _setns(fd: int) -> None:
    if _libc().setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


# -- the cgroup subtree -------------------------------------------------------------------


def cgroup_hierarchies() -> list[Path]:
    """The mounted cgroup v1 hierarchies (``/sys/fs/cgroup/<controller>``)."""
    if (CGROUP_FS / "cgroup.controllers").exists():
        raise ServerError(
            "this machine uses the unified cgroup v2 hierarchy only; the cluster harness "
            "drives the kubelet with cgroup v1 (cgroupfs driver) as on the project's machines"
        )
    found = []
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            mount_point = Path(fields[4])
            if fstype == "cgroup" and mount_point.parent == CGROUP_FS:
                found.append(mount_point)
    if not found:
        raise ServerError("no cgroup v1 hierarchies are mounted under /sys/fs/cgroup")
    return sorted(set(found))


class CgroupTree:
    """The same cgroup path in every v1 hierarchy (e.g. ``/planboard-cluster``)."""

    def __init__(self, path: str) -> None:
        if not path.startswith("/") or path == "/" or ".." in path:
            raise ValueError(f"a cgroup path below the root, got {path!r}")
        self.path = path

    def dirs(self, sub: str = "") -> list[Path]:
        rel = (self.path + ("/" + sub if sub else "")).lstrip("/")
        return [hierarchy / rel for hierarchy in cgroup_hierarchies()]

    def create(self, sub: str = "") -> None:
        """Create the path (and ``sub`` below it) in every hierarchy."""
        parts = [p for p in (self.path.strip("/") + "/" + sub).split("/") if p]
        for hierarchy in cgroup_hierarchies():
            current = hierarchy
            for part in parts:
                child = current / part
                child.mkdir(exist_ok=True)
                if "cpuset" in hierarchy.name.split(","):
                    # A new cpuset has no CPUs or memory nodes: it inherits its parent's.
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        if not (child / name).read_text().strip():
                            (child / name).write_text((current / name).read_text())
                current = child

    def adopt(self, pid: int, sub: str = "") -> None:
        """Move process ``pid`` (all its threads) into the path (``sub``) everywhere."""
        for directory in self.dirs(sub):
            try:
                (directory / "cgroup.procs").write_text(str(pid))
            except ProcessLookupError:
                return  # it has already exited
            except OSError as exc:
                if exc.errno == errno.ESRCH:
                    return
                raise

    def pids(self) -> set[int]:
        """Every process in the subtree, in any hierarchy."""
        found: set[int] = set()
        for top in self.dirs():
            # os.walk skips what vanishes under it: the kubelet and runc remove cgroups
            # while the processes in them die.
            for directory, _, _ in os.walk(top):
                with contextlib.suppress(OSError, ValueError):
                    procs = Path(directory, "cgroup.procs").read_text()
                    found.update(int(p) for p in procs.split())
        return found

    def kill_all(self, grace: float = 5.0) -> int:
        """SIGTERM every process of the subtree, SIGKILL what is left after ``grace``
        seconds, until none is left; the number of processes signalled."""
        me = os.getpid()
        signalled: set[int] = set()
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 20.0)):
            deadline = time.monotonic() + wait
            pids = self.pids() - {me}
            while pids and time.monotonic() < deadline:
                for pid in pids - signalled if sig == signal.SIGTERM else pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                signalled |= pids
                time.sleep(0.2)
                pids = self.pids() - {me}
        left = self.pids() - {me}
        if left:
            raise ServerError(f"processes of cgroup {self.path} survived SIGKILL: {sorted(left)}")
        return len(signalled)

    def remove(self) -> None:
        """rmdir the subtree (deepest first) in every hierarchy; it must be empty."""
        for top in self.dirs():
            # Deepest first; os.walk(topdown=False) lists children before their parent.
            for directory, _, _ in os.walk(top, topdown=False):
                _rmdir_cgroup(Path(directory))

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs())

    def memory_peak_bytes(self) -> int:
        """The memory controller's high-water mark of the whole subtree (0 if unknown)."""
        for hierarchy in cgroup_hierarchies():
            if "memory" in hierarchy.name.split(","):
                usage = hierarchy / self.path.lstrip("/") / "memory.max_usage_in_bytes"
                with contextlib.suppress(OSError, ValueError):
                    return int(usage.read_text())
        return 0


def _rmdir_cgroup(directory: Path) -> None:
    for _ in range(50):  # a cgroup whose last task just exited can be busy for a moment
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.1)
    directory.rmdir()


# -- kernel settings ----------------------------------------------------------------------

#: What the kubelet writes at start unless protectKernelDefaults (setupKernelTunables).
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)


def read_sysctls(names: Iterable[str] = KUBELET_SYSCTLS) -> dict[str, str]:
    out = {}
    for name in names:
        with contextlib.suppress(OSError):
            out[name] = (Path("/proc/sys") / name).read_text().strip()
    return out


def restore_sysctls(saved: dict[str, str]) -> list[str]:
    """Write back the saved values; the names that differed."""
    changed = []
    for name, value in saved.items():
        path = Path("/proc/sys") / name
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value)
                changed.append(name)
    return changed


# -- mounts -------------------------------------------------------------------------------


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below ``root`` (from /proc/self/mountinfo), deepest first."""
    prefix = str(root.resolve()).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            point = line.split()[4].encode().decode("unicode_escape")
            if (point + "/").startswith(prefix):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_all(root: Path) -> list[Path]:
    """Unmount everything under ``root`` (lazily if busy); the mount points."""
    libc = _libc()
    done = []
    for _ in range(5):  # mounts stacked on one point need several rounds
        points = mounts_under(root)
        if not points:
            break
        for point in points:
            path = os.fsencode(point)
            if libc.umount2(path, 0) != 0 and libc.umount2(path, _MNT_DETACH) != 0:
                code = ctypes.get_errno()
                if code not in (errno.EINVAL, errno.ENOENT):
                    raise OSError(code, f"umount {point}: {os.strerror(code)}")
            done.append(point)
    left = mounts_under(root)
    if left:
        raise ServerError(f"mounts under {root} could not be removed: {left}")
    return done


# -- fixed host paths ---------------------------------------------------------------------

#: Host paths containerd, the CNI plugins or the kubelet may write whatever they are told.
WATCHED_PATHS = (
    "/run/containerd",
    "/var/lib/cni",
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/opt/containerd",
    "/etc/cni",
    "/etc/kubernetes",
    "/usr/libexec/kubernetes",
    "/run/xtables.lock",
    # `ip netns add` makes this a shared bind mount of itself the first time.
    "/run/netns",
)


def existing_paths(paths: Iterable[str] = WATCHED_PATHS) -> list[str]:
    return [p for p in paths if os.path.lexists(p)]


def listing(path: str) -> list[str]:
    with contextlib.suppress(OSError):
        return sorted(os.listdir(path))
    return []


def clean_host_paths(
    *,
    existed_before: Iterable[str],
    shim_sockets_before: Iterable[str],
    run_dir: Path,
    cni_network: str,
) -> list[str]:
    """Remove what the cluster left on fixed host paths; the paths removed.

    Only the cluster's own entries go: shim sockets that appeared during the run, links
    into its run directory, CNI results of its network; then a watched path that did not
    exist before the run, once nothing but empty directories is left in it.
    """
    removed: list[str] = []
    before = set(existed_before)
    sockets = Path("/run/containerd/s")
    for name in sorted(set(listing(str(sockets))) - set(shim_sockets_before)):
        with contextlib.suppress(FileNotFoundError):
            (sockets / name).unlink()
            removed.append(str(sockets / name))
    run_prefix = str(run_dir.resolve()) + "/"
    for link in (
        Path("/var/log/containers").glob("*") if Path("/var/log/containers").is_dir() else ()
    ):
        with contextlib.suppress(OSError):
            if link.is_symlink() and os.readlink(link).startswith(run_prefix):
                link.unlink()
                removed.append(str(link))
    # libcni caches each attachment's result as <network>-<sandbox id>-<interface>; the
    # loopback attachment of the same sandboxes is containerd's "cni-loopback" network.
    results = Path("/var/lib/cni/results")
    ours = list(results.glob(f"{cni_network}-*"))
    sandboxes = {r.name[len(cni_network) + 1 :].rsplit("-", 1)[0] for r in ours}
    ours += [
        r for r in results.glob("cni-loopback-*") if r.name[13:].rsplit("-", 1)[0] in sandboxes
    ]
    for result in ours:
        with contextlib.suppress(FileNotFoundError):
            result.unlink()
            removed.append(str(result))
    # The kubelet's device-plugin socket is at a fixed path whatever its --root-dir.
    if "/var/lib/kubelet" not in before:
        socket = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
        with contextlib.suppress(FileNotFoundError):
            socket.unlink()
            removed.append(str(socket))
    for path in WATCHED_PATHS:
        if path in before or not os.path.lexists(path):
            continue
        target = Path(path)
        if target.is_dir() and not target.is_symlink():
            if _remove_empty_tree(target):
                removed.append(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
                removed.append(path)
    return removed


def _remove_empty_tree(root: Path) -> bool:
    """Remove ``root`` if nothing but empty directories is left in it (a directory bind
    mounted onto itself, as ``ip netns`` does with /run/netns, is unmounted first); else
    keep it: what is left is not the cluster's to delete."""
    for directory in sorted(
        (d for d in root.rglob("*") if d.is_dir() and not d.is_symlink()),
        key=lambda d: len(d.parts),
        reverse=True,
    ):
        with contextlib.suppress(OSError):
            directory.rmdir()
    if any(root.iterdir()) or any(m != root for m in mounts_under(root)):
        return False
    unmount_all(root)
    root.rmdir()
    return True


def leftovers(existed_before: Iterable[str]) -> list[str]:
    """Watched host paths that exist now but did not before the run."""
    before = set(existed_before)
    return [p for p in WATCHED_PATHS if p not in before and os.path.lexists(p)]


@contextlib.contextmanager
def entered(namespace: NetworkNamespace) -> Iterator[None]:
    """The calling thread inside ``namespace`` for the block."""
    was_inside = namespace.entered
    namespace.enter()
    try:
        yield
    finally:
        if not was_inside:
            namespace.leave()
