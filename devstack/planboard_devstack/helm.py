"""The real Helm 3 CLI, kubeconform and promtool, built once with ``go install`` into the cache.

No registry ships a Linux ``helm`` binary, so it is compiled from its Go module
(``helm.sh/helm/v3``) with the machine's Go, like kubeconform and promtool. Each tool lands in
``cache_dir()/<tool>/v<version>/bin``; a marker makes later calls instant, a file
lock serialises concurrent builds and the Go caches are deleted afterwards.

kubeconform downloads its schemas from GitHub by default, which is not reachable
here: ``write_kubeconform_schemas`` converts the OpenAPI v2 document that a
kube-apiserver serves (``/openapi/v2``, built-in kinds *and* installed CRDs) into
a local strict schema directory for ``-schema-location``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from planboard_devstack.paths import cache_dir
from planboard_devstack.process import ServerError

#: Helm 3 release built by default (its go.mod needs Go >= 1.26).
HELM_VERSION = "3.22.0"
#: Minor version of the k8s.io/client-go that Helm HELM_VERSION is built with; Helm's
#: release builds stamp it as the default ``.Capabilities.KubeVersion`` (``helm template``).
HELM_K8S_MINOR = "37"
KUBECONFORM_VERSION = "0.8.0"
#: github.com/prometheus/prometheus module version (Prometheus 3.x) that promtool is built from.
PROMTOOL_VERSION = "0.316.0"

#: kubeconform's ``-schema-location`` template for a directory made by write_kubeconform_schemas.
KUBECONFORM_SCHEMA_TEMPLATE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"


def go_command() -> str:
    """The ``go`` command (Go >= 1.26 is on the project's machines)."""
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None
    )
    if not found:
        raise ServerError(
            "no Go toolchain found (looked for 'go' on PATH and /usr/local/go/bin/go); "
            "Go >= 1.26 is needed to build helm, kubeconform and promtool"
        )
    return found


def _remove_tree(path: Path) -> None:
    if path.exists():
        for sub in path.rglob("*"):  # the Go module cache is read-only by default
            if sub.is_dir() and not sub.is_symlink():
                sub.chmod(0o755)
        shutil.rmtree(path, ignore_errors=True)


def go_install_tool(
    name: str,
    package: str,
    version: str,
    ldflags: str = "-s -w",
) -> Path:
    """``go install package@v<version>`` once into ``cache_dir()/name/v<version>/bin``.

    Returns the path of the installed binary (named after the package's last element).
    """
    root = cache_dir() / name / f"v{version}"
    binary = root / "bin" / package.rstrip("/").rsplit("/", 1)[-1]
    marker = root / ".complete"
    if marker.is_file() and binary.is_file():
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"v{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and binary.is_file():
            return binary
        build = root / "build"
        _remove_tree(build)
        build.mkdir(parents=True)
        env = dict(os.environ)
        for key in ("GOOS", "GOARCH", "GOWORK", "GOFLAGS"):
            env.pop(key, None)
        env.update(
            GOPATH=str(build / "gopath"),
            GOMODCACHE=str(build / "gomodcache"),
            GOCACHE=str(build / "gocache"),
            GOBIN=str(root / "bin"),
            GOFLAGS="-modcacherw",
            CGO_ENABLED="0",
        )
        log_path = root / "build.log"
        started = time.monotonic()
        with open(log_path, "wb") as log:
            result = subprocess.run(
                [
                    go_command(),
                    "install",
                    "-trimpath",
                    f"-ldflags={ldflags}",
                    f"{package}@v{version}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=build,
                check=False,
            )
        if result.returncode != 0 or not binary.is_file():
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
            raise ServerError(f"go install {package}@v{version} failed; log {log_path}:\n{tail}")
        _remove_tree(build)
        marker.write_text(f"{package}@v{version} built in {time.monotonic() - started:.0f}s\n")
        return binary


def ensure_helm(version: str = HELM_VERSION) -> Path:
    """The Helm 3 CLI, built once (about 2 minutes cold on 2 cores)."""
    stamps = {
        "helm.sh/helm/v3/internal/version.version": f"v{version}",
        "helm.sh/helm/v3/internal/version.gitTreeState": "clean",
        "helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor": "1",
        "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor": HELM_K8S_MINOR,
        "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor": "1",
        "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor": HELM_K8S_MINOR,
    }
    ldflags = " ".join(["-s -w", *(f"-X {key}={value}" for key, value in stamps.items())])
    return go_install_tool("helm", "helm.sh/helm/v3/cmd/helm", version, ldflags)


def ensure_kubeconform(version: str = KUBECONFORM_VERSION) -> Path:
    """kubeconform, built once. Offline it needs ``-schema-location`` (see below)."""
    return go_install_tool(
        "kubeconform",
        "github.com/yannh/kubeconform/cmd/kubeconform",
        version,
        f"-s -w -X main.version=v{version}",
    )


def ensure_promtool(version: str = PROMTOOL_VERSION) -> Path:
    """promtool (checks and unit-tests the chart's alert rules), built once (~4 min cold)."""
    return go_install_tool("promtool", "github.com/prometheus/prometheus/cmd/promtool", version)


# -- offline schemas for kubeconform ---------------------------------------------

_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


def _strict(node: Any) -> Any:
    """kubectl-like strictness: objects with known properties reject unknown ones."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if out.get("format") == "int-or-string":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _kind_suffix(group: str, version: str) -> str:
    # kubeconform's KindSuffix: "-v1" for the core group, "-apps-v1" for apps/v1,
    # "-networking-v1" for networking.k8s.io/v1 (the group's first label).
    return f"-{group.split('.')[0]}-{version}" if group else f"-{version}"


def write_kubeconform_schemas(openapi_v2: Mapping[str, Any], dest: Path) -> Path:
    """Turn a ``/openapi/v2`` document into a kubeconform schema directory.

    ``dest/_definitions.json`` holds every definition (made strict); one small file
    per kind (``deployment-apps-v1.json``, ``planboard-planboard-v1alpha1.json``)
    refers into it. Use it with
    ``kubeconform -strict -schema-location "DEST/{{ .ResourceKind }}{{ .KindSuffix }}.json"``.
    """
    definitions: dict[str, Any] = {
        name: _strict(schema) for name, schema in openapi_v2.get("definitions", {}).items()
    }
    if _QUANTITY in definitions:
        definitions[_QUANTITY] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    if _INT_OR_STRING in definitions:
        definitions[_INT_OR_STRING] = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "_definitions.json").write_text(json.dumps({"definitions": definitions}))
    written = 0
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            kind, group, version = gvk.get("kind", ""), gvk.get("group", ""), gvk.get("version", "")
            if not kind or not version:
                continue
            file_name = f"{kind.lower()}{_kind_suffix(group, version)}.json"
            ref = {"$ref": f"_definitions.json#/definitions/{name}"}
            (dest / file_name).write_text(json.dumps(ref))
            written += 1
    if not written:
        raise ServerError("the OpenAPI document names no kinds (x-kubernetes-group-version-kind)")
    return dest
