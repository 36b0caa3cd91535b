"""Run the operator: kopf settings from the config, a Runtime in kopf's memo."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any

import kopf
from kubernetes import client

from planboard_operator.config import OperatorConfig
from planboard_operator.handlers import build_registry
from planboard_operator.kube import Kube, load_api_client
from planboard_operator.lag import KafkaLagSource, LagSource
from planboard_operator.runtime import Runtime, utcnow

Flag = asyncio.Event | threading.Event | Future[Any] | None


def build_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.posting.level = logging.getLevelNamesMapping()[config.posting_level.upper()]
    settings.posting.reporting_component = "planboard-operator"
    # kopf's own state goes into annotations: the status schemas are strict.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="planboard.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="planboard.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "planboard.dev/finalizer"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.peering.standalone = config.peering.name is None
    if config.peering.name is not None:
        settings.peering.name = config.peering.name
        settings.peering.priority = config.peering.priority
        settings.peering.clusterwide = config.scope.clusterwide
    return settings


def build_runtime(
    config: OperatorConfig,
    *,
    api_client: client.ApiClient | None = None,
    lag_source: LagSource | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Runtime:
    return Runtime(
        config=config,
        kube=Kube(api_client or load_api_client(config.kubeconfig)),
        lag_source=lag_source or KafkaLagSource(config.timing.lag_timeout_seconds),
        clock=clock or utcnow,
    )


async def run_operator(
    config: OperatorConfig,
    runtime: Runtime | None = None,
    *,
    stop_flag: Flag = None,
    ready_flag: Flag = None,
) -> None:
    """Run until stopped (SIGTERM/SIGINT in the main thread, or ``stop_flag``)."""
    rt = runtime or build_runtime(config)
    await kopf.operator(
        registry=build_registry(config.timing.resync_seconds),
        settings=build_settings(config),
        memo=kopf.Memo(runtime=rt),
        standalone=config.peering.name is None,
        peering_name=config.peering.name,
        priority=config.peering.priority,
        clusterwide=config.scope.clusterwide,
        namespaces=config.scope.namespaces,
        liveness_endpoint=config.endpoints.liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
