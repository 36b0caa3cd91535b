"""kopf handlers: thin adapters from kopf's events and timers to the reconcilers.

``build_registry`` registers them into a fresh registry, so the resync interval
comes from the configuration and tests can run an operator with their own.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from planboard_operator import constants as c
from planboard_operator.jobs import is_active, load_backup_times, reconcile_job_object
from planboard_operator.planboards import reconcile_planboard
from planboard_operator.runtime import Runtime

Logger = logging.Logger | logging.LoggerAdapter[Any]


def runtime_of(memo: kopf.Memo) -> Runtime:
    rt = memo.get("runtime")
    if not isinstance(rt, Runtime):
        raise RuntimeError("the operator was started without a Runtime in its memo")
    return rt


def connection_info(rt: Runtime) -> kopf.ConnectionInfo:
    """kopf's credentials, from the same configuration as our own client."""
    cfg = rt.kube.api_client.configuration
    token: str | None = None
    scheme: str | None = None
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    if cfg.refresh_api_key_hook is not None:
        cfg.refresh_api_key_hook(cfg)  # in-cluster: re-read the rotated token file
        auth = (cfg.api_key or {}).get("authorization") or auth
    if auth:
        scheme, _, token = str(auth).partition(" ")
        if not token:
            scheme, token = "Bearer", scheme
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        username=cfg.username or None,
        password=cfg.password or None,
    )


def _active(status: kopf.Status, **_: Any) -> bool:
    return is_active(status)


def _deleted(type: str | None, **_: Any) -> bool:
    return type == "DELETED"


def _going(type: str | None, body: kopf.Body, **_: Any) -> bool:
    """Gone, or being deleted (kopf's finalizer can hold a deleted object for a while)."""
    return type == "DELETED" or bool(body.metadata.get("deletionTimestamp"))


def _job_settled(type: str | None, status: kopf.Status, **_: Any) -> bool:
    finished = any(
        cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True"
        for cond in status.get("conditions") or []
    )
    return type == "DELETED" or finished


def build_registry(resync_seconds: float) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(id="metrics", registry=registry)
    async def start_metrics(memo: kopf.Memo, logger: Logger, **_: Any) -> None:
        rt = runtime_of(memo)
        port = rt.config.endpoints.metrics_port
        if port is not None:
            rt.metrics_port = rt.metrics.serve(port, rt.config.endpoints.metrics_host)
            logger.info("metrics on :%s/metrics", rt.metrics_port)

    @kopf.on.startup(id="backup-times", registry=registry)
    async def backup_times(memo: kopf.Memo, logger: Logger, **_: Any) -> None:
        try:
            count = await load_backup_times(runtime_of(memo))
        except Exception:  # a metric never keeps the operator from starting
            logger.exception("could not read PlanboardBackups for the last-backup gauge")
            return
        logger.info("last successful backup known for %d Planboard(s)", count)

    @kopf.on.cleanup(id="metrics-stop", registry=registry)
    async def stop_metrics(memo: kopf.Memo, **_: Any) -> None:
        runtime_of(memo).metrics.shutdown()

    @kopf.on.login(id="login", registry=registry)
    def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
        return connection_info(runtime_of(memo))

    @kopf.on.probe(id="reconciliations", registry=registry)
    def reconciliations(memo: kopf.Memo, **_: Any) -> int:
        return runtime_of(memo).reconciled

    # -- Planboard ------------------------------------------------------------------

    @kopf.on.resume(c.GROUP, c.VERSION, c.PLURALS[c.PLANBOARD], id="reconcile", registry=registry)
    @kopf.on.create(c.GROUP, c.VERSION, c.PLURALS[c.PLANBOARD], id="reconcile", registry=registry)
    @kopf.on.update(c.GROUP, c.VERSION, c.PLURALS[c.PLANBOARD], id="reconcile", registry=registry)
    async def planboard_changed(
        name: str | None, namespace: str | None, memo: kopf.Memo, logger: Logger, **_: Any
    ) -> None:
        if name and namespace:
            await reconcile_planboard(runtime_of(memo), namespace, name, logger)

    @kopf.timer(
        c.GROUP,
        c.VERSION,
        c.PLURALS[c.PLANBOARD],
        id="resync",
        interval=resync_seconds,
        registry=registry,
    )
    async def planboard_resync(
        name: str | None, namespace: str | None, memo: kopf.Memo, logger: Logger, **_: Any
    ) -> None:
        if name and namespace:
            await reconcile_planboard(runtime_of(memo), namespace, name, logger)

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        id="child-deleted",
        labels={c.MANAGED_BY_LABEL: c.MANAGED_BY},
        when=_deleted,
        registry=registry,
    )
    async def child_deleted(
        type: str | None, body: kopf.Body, memo: kopf.Memo, logger: Logger, **_: Any
    ) -> None:
        # A deleted Deployment is recreated at once rather than at the next resync.
        for ref in body.metadata.get("ownerReferences") or []:
            if ref.get("kind") == c.PLANBOARD and body.metadata.namespace:
                await reconcile_planboard(
                    runtime_of(memo), body.metadata.namespace, ref["name"], logger
                )

    @kopf.on.event(
        c.GROUP,
        c.VERSION,
        c.PLURALS[c.PLANBOARD],
        id="planboard-deleted",
        when=_going,
        registry=registry,
    )
    async def planboard_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        if body.metadata.namespace and body.metadata.name:
            runtime_of(memo).metrics.forget_planboard(body.metadata.namespace, body.metadata.name)

    # -- PlanboardBackup / PlanboardRestore -----------------------------------------

    for kind in (c.BACKUP, c.RESTORE):
        plural = c.PLURALS[kind]
        common: dict[str, Any] = {"param": kind, "when": _active, "registry": registry}

        @kopf.on.resume(c.GROUP, c.VERSION, plural, id=f"{plural}-resume", **common)
        @kopf.on.create(c.GROUP, c.VERSION, plural, id=f"{plural}-create", **common)
        @kopf.timer(
            c.GROUP, c.VERSION, plural, id=f"{plural}-resync", interval=resync_seconds, **common
        )
        async def job_object(
            name: str,
            namespace: str | None,
            memo: kopf.Memo,
            logger: Logger,
            param: Any = None,
            **_: Any,
        ) -> None:
            if namespace:
                await reconcile_job_object(runtime_of(memo), str(param), namespace, name, logger)

    @kopf.on.event(
        "batch",
        "v1",
        "jobs",
        id="job-changed",
        labels={c.MANAGED_BY_LABEL: c.MANAGED_BY},
        when=_job_settled,
        registry=registry,
    )
    async def job_changed(
        type: str | None, body: kopf.Body, memo: kopf.Memo, logger: Logger, **_: Any
    ) -> None:
        # A finished or deleted Job settles its backup/restore at once.
        for ref in body.metadata.get("ownerReferences") or []:
            if ref.get("kind") in (c.BACKUP, c.RESTORE) and body.metadata.namespace:
                await reconcile_job_object(
                    runtime_of(memo), ref["kind"], body.metadata.namespace, ref["name"], logger
                )

    return registry
