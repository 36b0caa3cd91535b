"""A bare aiohttp hello-world server: the ceiling for benchmarks/http_bench.py.

Same Python and aiohttp as the API, uvloop, access log off.

    .venv/bin/python benchmarks/hello.py --port 18090
"""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/hello", hello)
    uvloop.install()
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
