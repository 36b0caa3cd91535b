"""Kafka connection helpers shared by the API, the relay and the workers."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


class KafkaProbe:
    """Answers "is the Kafka cluster reachable?" cheaply, reconnecting as needed.

    The API never publishes to Kafka itself (writes go to the outbox), so it keeps
    only this metadata client for readiness.
    """

    def __init__(self, bootstrap: str, timeout_s: float) -> None:
        self._bootstrap = bootstrap
        self._timeout = timeout_s
        self._client: AIOKafkaClient | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> None:
        """Raise if no broker answers a metadata request within the timeout."""
        async with self._lock:
            if self._client is None:
                client = AIOKafkaClient(
                    bootstrap_servers=self._bootstrap,
                    request_timeout_ms=int(self._timeout * 1000),
                    client_id="planboard-readiness",
                )
                try:
                    await asyncio.wait_for(client.bootstrap(), self._timeout)
                except BaseException:
                    await client.close()
                    raise
                self._client = client
                return
            client = self._client
        try:
            await asyncio.wait_for(client.fetch_all_metadata(), self._timeout)
        except (KafkaError, OSError, TimeoutError):
            async with self._lock:
                if self._client is client:
                    self._client = None
            await client.close()
            raise

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
