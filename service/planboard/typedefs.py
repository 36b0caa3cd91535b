"""Typed keys for application state (no string keys, no module globals)."""

from __future__ import annotations

from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from planboard.config import Settings
from planboard.events.kafka import KafkaProbe
from planboard.metrics import Metrics
from planboard.services.context import ServiceContext
from planboard.services.near_cache import NearCache

settings_key = web.AppKey("settings", Settings)
metrics_key = web.AppKey("metrics", Metrics)
mongo_client_key = web.AppKey("mongo_client", AsyncMongoClient)
db_key = web.AppKey("db", AsyncDatabase)
redis_key = web.AppKey("redis", Redis)
kafka_probe_key = web.AppKey("kafka_probe", KafkaProbe)
near_cache_key = web.AppKey("near_cache", NearCache)
#: The app's service context (services/context.py): client, db, settings, read cache.
services_key = web.AppKey("services", ServiceContext)
