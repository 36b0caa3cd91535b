"""Consumer lag of worker groups: read from Kafka, or fed by tests (injectable).

The lag of a group is the sum, over the partitions it has committed offsets for,
of (log end offset - committed offset), read with aiokafka's admin client and a
consumer's ``end_offsets``. A source raises LagUnavailable when it cannot say.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient


class LagUnavailable(Exception):
    """The lag could not be read (Kafka unreachable, timeout, unknown group state)."""


class LagSource(Protocol):
    async def lags(self, bootstrap: str, group_ids: Sequence[str]) -> dict[str, int]:
        """Lag per consumer group id; raise LagUnavailable if Kafka cannot tell."""
        ...


class KafkaLagSource:
    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s

    async def lags(self, bootstrap: str, group_ids: Sequence[str]) -> dict[str, int]:
        if not group_ids:
            return {}
        try:
            return await asyncio.wait_for(self._read(bootstrap, group_ids), self.timeout_s)
        except LagUnavailable:
            raise
        except TimeoutError:
            raise LagUnavailable(
                f"Kafka at {bootstrap} did not answer within {self.timeout_s:g}s"
            ) from None
        except Exception as exc:  # aiokafka raises a family of its own errors
            raise LagUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _read(self, bootstrap: str, group_ids: Sequence[str]) -> dict[str, int]:
        timeout_ms = int(self.timeout_s * 1000)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="planboard-operator",
            request_timeout_ms=timeout_ms,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="planboard-operator",
            enable_auto_commit=False,
            request_timeout_ms=timeout_ms,
        )
        try:
            await admin.start()
            await consumer.start()
            committed = {
                group: await admin.list_consumer_group_offsets(group) for group in group_ids
            }
            partitions = {tp for offsets in committed.values() for tp in offsets}
            ends = await consumer.end_offsets(list(partitions)) if partitions else {}
            out: dict[str, int] = {}
            for group, offsets in committed.items():
                out[group] = sum(
                    max(0, ends[tp] - meta.offset)
                    for tp, meta in offsets.items()
                    if meta is not None and meta.offset >= 0 and tp in ends
                )
            return out
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await admin.close()


class StaticLagSource:
    """Lag values set by the caller (tests, dry runs): ``values[group_id]``.

    A value that is an exception instance is raised as LagUnavailable; ``down``
    makes every read fail, like an unreachable Kafka.
    """

    def __init__(self, values: Mapping[str, int] | None = None) -> None:
        self.values: dict[str, int] = dict(values or {})
        self.down: str | None = None

    async def lags(self, bootstrap: str, group_ids: Sequence[str]) -> dict[str, int]:
        if self.down is not None:
            raise LagUnavailable(self.down)
        return {group: self.values.get(group, 0) for group in group_ids}
