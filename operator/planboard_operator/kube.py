"""A small synchronous Kubernetes client over kubernetes' DynamicClient, in plain dicts.

Writes use server-side apply with the operator's field manager and ``force``: what
the operator applies is what the object holds (hand edits of those fields are
undone), while fields it does not set (an HPA's replica count) stay with their owner.
Call it from async code through ``asyncio.to_thread``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config, dynamic
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from planboard_operator.constants import FIELD_MANAGER

Obj = dict[str, Any]


class AlreadyExists(Exception):
    """A create found an object of that name."""


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except config.ConfigException:
            pass
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig
    )
    return api


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.dynamic = dynamic.DynamicClient(api_client)  # type: ignore[no-untyped-call]
        self._resources: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        with self._lock:
            if key not in self._resources:
                self._resources[key] = self.dynamic.resources.get(
                    api_version=api_version, kind=kind
                )
            return self._resources[key]

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            found = self.dynamic.get(  # type: ignore[no-untyped-call]
                self._resource(api_version, kind), name=name, namespace=namespace
            )
        except NotFoundError:
            return None
        return dict(found.to_dict())

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        label_selector: str | None = None,
    ) -> list[Obj]:
        """Objects of one namespace, or of all (``namespace`` None)."""
        found = self.dynamic.get(  # type: ignore[no-untyped-call]
            self._resource(api_version, kind), namespace=namespace, label_selector=label_selector
        )
        return [dict(item) for item in found.to_dict().get("items", [])]

    def apply(self, body: Mapping[str, Any]) -> Obj:
        """Server-side apply (force) of a complete object; the result."""
        resource = self._resource(body["apiVersion"], body["kind"])
        applied = self.dynamic.server_side_apply(  # type: ignore[no-untyped-call]
            resource,
            body=dict(body),
            namespace=body["metadata"].get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        return dict(applied.to_dict())

    def create(self, body: Mapping[str, Any]) -> Obj:
        resource = self._resource(body["apiVersion"], body["kind"])
        try:
            created = self.dynamic.create(  # type: ignore[no-untyped-call]
                resource,
                body=dict(body),
                namespace=body["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
            )
        except ConflictError as exc:
            raise AlreadyExists(body["metadata"]["name"]) from exc
        return dict(created.to_dict())

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete (children in the background); False if it was already gone."""
        try:
            self.dynamic.delete(  # type: ignore[no-untyped-call]
                self._resource(api_version, kind),
                name=name,
                namespace=namespace,
                body={"propagationPolicy": "Background"},
            )
        except NotFoundError:
            return False
        return True

    def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Obj | None:
        """Merge-patch the status subresource; None if the object is gone."""
        resource = self._resource(api_version, kind)
        try:
            patched = self.dynamic.patch(  # type: ignore[no-untyped-call]
                resource.status,
                body={"status": dict(status)},
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
                field_manager=FIELD_MANAGER,
            )
        except NotFoundError:
            return None
        return dict(patched.to_dict())
