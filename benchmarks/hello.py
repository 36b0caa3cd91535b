"""A bare aiohttp hello-world server: the ceiling for benchmarks/http_bench.py.

Same Python and aiohttp as the API, uvloop, access log off; ``--processes N`` runs N
processes on the port with SO_REUSEPORT, as ``PLANBOARD_API_PROCESSES=N`` does for the API.

    .venv/bin/python benchmarks/hello.py --port 18090 [--processes 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import uvloop
from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--host",
                args.host,
                "--port",
                str(args.port),
                "--reuse-port",
            ]
        )
        for _ in range(args.processes - 1)
    ]
    app = web.Application()
    app.router.add_get("/hello", hello)
    uvloop.install()
    try:
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            access_log=None,
            print=None,
            reuse_port=args.processes > 1 or args.reuse_port or None,
        )
    finally:
        for child in children:
            child.terminate()
            child.wait()


if __name__ == "__main__":
    main()
