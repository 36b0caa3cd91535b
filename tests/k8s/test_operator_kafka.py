"""Worker scaling on real consumer lag, read from a real Kafka broker (the dev KafkaServer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from kubernetes import client

from planboard_devstack.kafka import KafkaServer
from planboard_devstack.paths import free_port
from planboard_operator.lag import KafkaLagSource, LagUnavailable

from .conftest import PB_GROUP, PB_VERSION, RunningOperator, eventually, planboard_body

pytestmark = pytest.mark.k8s

PREFIX = "lagtest."
GROUP_ID = f"{PREFIX}notifications"
TOPIC = f"{PREFIX}task"


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = KafkaServer(Path(tmp_path_factory.mktemp("kafka")), free_port("127.0.0.1"))
    server.install()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def lagging_group(kafka: str) -> AsyncIterator[str]:
    """120 messages on a 2-partition topic; the group committed 10 on each: lag 100."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    for i in range(120):
        await producer.send_and_wait(TOPIC, f"event {i}".encode(), partition=i % 2)
    await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, group_id=GROUP_ID, enable_auto_commit=False
    )
    await consumer.start()
    partitions = [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)]
    consumer.assign(partitions)
    await consumer.commit(dict.fromkeys(partitions, 10))
    await consumer.stop()
    yield kafka


async def test_kafka_lag_source_reads_real_lag(lagging_group: str) -> None:
    source = KafkaLagSource(timeout_s=10)
    lags = await source.lags(lagging_group, [GROUP_ID, f"{PREFIX}never-committed"])
    assert lags == {GROUP_ID: 100, f"{PREFIX}never-committed": 0}


async def test_kafka_lag_source_reports_an_unreachable_broker() -> None:
    source = KafkaLagSource(timeout_s=2)
    with pytest.raises(LagUnavailable):
        await source.lags(f"127.0.0.1:{free_port('127.0.0.1')}", [GROUP_ID])


def test_workers_scale_on_lag_from_kafka(
    lagging_group: str,
    kube_api: client.ApiClient,
    namespace: str,
    planboard_operator: RunningOperator,
) -> None:
    planboard_operator.lag.real[lagging_group] = KafkaLagSource(timeout_s=5)
    body = planboard_body("demo")
    body["spec"]["kafka"] = {"bootstrapServers": lagging_group, "topicPrefix": PREFIX}
    body["spec"]["workers"] = {
        "groups": [
            {"name": "notifications", "minReplicas": 1, "maxReplicas": 5, "lagPerReplica": 30}
        ]
    }
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(PB_GROUP, PB_VERSION, namespace, "planboards", body)
    apps = client.AppsV1Api(kube_api)

    def replicas() -> int | None:
        dep = apps.read_namespaced_deployment("demo-worker-notifications", namespace)
        return int(dep.spec.replicas)

    # lag 100 at 30 per replica: 4 replicas.
    eventually(lambda: replicas() == 4, timeout=40, what="4 worker replicas")

    def reported_lag() -> object:
        pb = custom.get_namespaced_custom_object(
            PB_GROUP, PB_VERSION, namespace, "planboards", "demo"
        )
        return ((pb.get("status") or {}).get("workers") or {}).get("notifications", {}).get("lag")

    # the status is written after the children are applied: it may trail the Deployment
    eventually(lambda: reported_lag() == 100, timeout=20, what="lag 100 in the status")
