"""Everything the one-node cluster runs, installed or built once (cached), and its images.

- Debian packages: containerd (1.6), runc, the CNI plugins, iptables, conntrack, buildah
  and mmdebstrap, installed by ``ensure_command`` the first time they are missing. They
  are only the cluster's, so ``make test-cluster`` installs them, not ``make setup``.
- kubelet, kube-scheduler, kube-proxy and the static pause program:
  ``scripts/build-kube.sh node`` (same release and technique as the control plane, with a
  marker of its own, so a cached control plane stays valid; ~5 min cold on 2 cores).
- CoreDNS: ``go install github.com/coredns/coredns`` (~3.5 min cold).
- The images: ``cluster/build-images.sh`` (next to this module) builds the Planboard image from the
  repository's unchanged Dockerfile (on a local stand-in for its Python base image, since
  no registry is reachable) and the pause image, as OCI archives for ``ctr import``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from planboard_devstack.helm import ensure_helm, go_install_tool
from planboard_devstack.kube import KUBE_VERSION, install_kube, run_build_script
from planboard_devstack.paths import cache_dir
from planboard_devstack.process import ServerError
from planboard_devstack.system import ensure_command

COREDNS_VERSION = "1.14.7"
NODE_BINARIES = ("kubelet", "kube-scheduler", "kube-proxy", "pause")
CNI_PLUGINS = Path("/usr/lib/cni")

#: (command, Debian package) the node needs on the host.
DEBIAN_COMMANDS = (
    ("containerd", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    (str(CNI_PLUGINS / "bridge"), "containernetworking-plugins"),
    ("iptables", "iptables"),
    ("conntrack", "conntrack"),
    ("nsenter", "util-linux"),
    ("ip", "iproute2"),
    ("buildah", "buildah"),
    ("mmdebstrap", "mmdebstrap"),
    ("cc", "gcc"),
)


def source_root() -> Path:
    """The source checkout this package runs from (the Dockerfile, chart and code the
    cluster's images are built from): devstack/ sits at its top."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "Dockerfile").is_file() or not (root / "charts" / "planboard").is_dir():
        raise ServerError(
            f"{root} is not a Planboard source checkout (no Dockerfile and chart): the "
            "one-node cluster builds its images from one, so install planboard-devstack "
            "editable from the checkout (`make setup` does)"
        )
    return root


def chart_dir() -> Path:
    return source_root() / "charts" / "planboard"


def chart_image() -> str:
    """The image the chart deploys by default: ``image.repository:appVersion``."""
    chart = yaml.safe_load((chart_dir() / "Chart.yaml").read_text())
    values = yaml.safe_load((chart_dir() / "values.yaml").read_text())
    tag = values["image"].get("tag") or chart["appVersion"]
    return f"{values['image']['repository']}:{tag}"


def pause_image() -> str:
    return f"localhost/planboard-pause:v{KUBE_VERSION}"


def install_node(version: str | None = None) -> Path:
    """``scripts/build-kube.sh node``: the directory of kubelet, kube-scheduler,
    kube-proxy and pause."""
    ensure_command("cc", "gcc")
    return run_build_script(("node",), NODE_BINARIES, version)


def ensure_coredns(version: str = COREDNS_VERSION) -> Path:
    """CoreDNS, built once with ``go install`` (the cluster's DNS, run as a node process)."""
    return go_install_tool("coredns", "github.com/coredns/coredns", version)


def ensure_debian_commands() -> dict[str, str]:
    """Install the node's Debian packages where a command is missing; command -> path."""
    return {command: ensure_command(command, package) for command, package in DEBIAN_COMMANDS}


@dataclass(frozen=True)
class ClusterTools:
    control_plane: Path  # kube-apiserver, kube-controller-manager, kubectl, etcd
    node: Path  # kubelet, kube-scheduler, kube-proxy, pause
    coredns: Path
    helm: Path
    commands: dict[str, str]

    @property
    def kubectl(self) -> Path:
        return self.control_plane / "kubectl"


def ensure_tools(*, verbose: bool = False) -> ClusterTools:
    """Install and build (once, cached) every tool of the cluster."""
    steps: list[tuple[str, float]] = []

    def timed(label: str, started: float) -> None:
        steps.append((label, time.monotonic() - started))
        if verbose:
            print(f"cluster tools: {label} ({steps[-1][1]:.0f}s)", file=sys.stderr)

    started = time.monotonic()
    commands = ensure_debian_commands()
    timed("Debian packages", started)
    started = time.monotonic()
    control_plane = install_kube()
    timed("control plane", started)
    started = time.monotonic()
    node = install_node()
    timed("kubelet, kube-scheduler, kube-proxy, pause", started)
    started = time.monotonic()
    coredns = ensure_coredns()
    timed("coredns", started)
    started = time.monotonic()
    helm = ensure_helm()
    timed("helm", started)
    return ClusterTools(control_plane, node, coredns, helm, commands)


@dataclass(frozen=True)
class Images:
    """OCI archives of the Planboard and pause images, and the names they carry."""

    planboard: Path
    planboard_ref: str
    pause: Path
    pause_ref: str


def build_images(tools: ClusterTools, out_dir: Path) -> Images:
    """Build the images from this source tree (cached layers: seconds when nothing changed;
    the first build, with the stand-in base image, ~3-5 min)."""
    ref, pause_ref = chart_image(), pause_image()
    env = dict(os.environ)
    env["PLANBOARD_CACHE_DIR"] = str(cache_dir())
    # The interpreter the project runs on is the one the stand-in base image gets.
    env.setdefault("PLANBOARD_STANDIN_PYTHON", sys.base_prefix)
    script = Path(__file__).resolve().parent / "build-images.sh"
    result = subprocess.run(
        [
            "bash",
            str(script),
            str(source_root()),
            ref,
            str(tools.node / "pause"),
            pause_ref,
            str(out_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=None,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise ServerError(f"{script} failed (exit {result.returncode}); see its output above")
    images = Images(out_dir / "planboard.tar", ref, out_dir / "pause.tar", pause_ref)
    for archive in (images.planboard, images.pause):
        if not archive.is_file():
            raise ServerError(f"{script} did not write {archive}")
    return images
