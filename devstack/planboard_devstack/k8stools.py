"""Build (once, cached) every Kubernetes-side tool the k8s tests use, before pytest runs.

``make test`` and ``make test-k8s`` call ``python -m planboard_devstack.k8stools`` so a
cold machine compiles kube-apiserver/etcd/kubectl, Helm, kubeconform and promtool
here (about 10 minutes on 2 cores, once) rather than inside a test fixture, where
pytest's per-test timeout would cut the build short. On a warm cache it returns at once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from planboard_devstack.helm import ensure_helm, ensure_kubeconform, ensure_promtool
from planboard_devstack.kube import install_kube
from planboard_devstack.process import ServerError

TOOLS: tuple[tuple[str, Callable[[], Path]], ...] = (
    ("kube-apiserver, kube-controller-manager, etcd, kubectl", install_kube),
    ("helm", ensure_helm),
    ("kubeconform", ensure_kubeconform),
    ("promtool", ensure_promtool),
)


def main() -> int:
    for label, install in TOOLS:
        started = time.monotonic()
        try:
            path = install()
        except ServerError as exc:
            print(f"k8s tools: {label}: {exc}", file=sys.stderr)
            return 1
        print(f"k8s tools: {label}: {path} ({time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
