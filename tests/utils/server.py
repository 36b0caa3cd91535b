"""The API served as ``planboard serve`` serves it, for tests that need the real runner."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from planboard.api.server import ApiRunner


class ApiTestServer(TestServer):
    """A TestServer on the API's own runner (protocol-level errors as problem+json), with
    handlers left running when their client leaves, as in production (aiohttp's test
    server cancels them instead)."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = False
        return ApiRunner(self.app, **kwargs)
