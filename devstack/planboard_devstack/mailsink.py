"""The dev mail sink: a real SMTP server (aiosmtpd) storing mail in a Maildir,
with a small JSON API to read it (``GET /messages?to=``) for people and tests.

Run as ``python -m planboard_devstack.mailsink --smtp-port N --http-port M --maildir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import mailbox
import signal
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiohttp import web

from planboard_devstack.paths import free_port, port_open
from planboard_devstack.process import Server


class MaildirHandler:
    """aiosmtpd handler: every accepted message is written to the Maildir."""

    def __init__(self, maildir: mailbox.Maildir) -> None:
        self.maildir = maildir

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        message["X-Envelope-From"] = envelope.mail_from or ""
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.maildir.add(message.as_bytes())
        return "250 Message accepted for delivery"


def _text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain", "html"))
    return body.get_content() if body is not None else ""


def summarize(key: str, message: EmailMessage) -> dict[str, object]:
    return {
        "id": key,
        "from": str(message.get("From", "")),
        "to": [a.strip() for a in str(message.get("X-Envelope-To", "")).split(",") if a.strip()],
        "subject": str(message.get("Subject", "")),
        "date": str(message.get("Date", "")),
        "text": _text_of(message),
    }


def messages(maildir: mailbox.Maildir) -> list[dict[str, object]]:
    """Every stored message, oldest first (Maildir keys start with the delivery time)."""
    found = []
    for key in sorted(maildir.iterkeys()):
        parsed = email.message_from_bytes(maildir.get_bytes(key), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        found.append(summarize(key, parsed))
    return found


def http_app(maildir: mailbox.Maildir) -> web.Application:
    async def list_messages(request: web.Request) -> web.Response:
        recipient = request.query.get("to")
        items = messages(maildir)
        if recipient:
            wanted = recipient.lower()
            items = [m for m in items if wanted in [str(t).lower() for t in m["to"]]]  # type: ignore[attr-defined]
        return web.json_response({"items": items})

    async def clear(request: web.Request) -> web.Response:
        maildir.clear()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/messages", list_messages)
    app.router.add_delete("/messages", clear)
    return app


async def run(host: str, smtp_port: int, http_port: int, maildir_path: Path) -> None:
    from aiosmtpd.controller import Controller

    maildir = mailbox.Maildir(maildir_path, create=True)
    controller = Controller(MaildirHandler(maildir), hostname=host, port=smtp_port)
    controller.start()
    runner = web.AppRunner(http_app(maildir), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, http_port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"mail sink: smtp://{host}:{smtp_port} http://{host}:{http_port}/messages", flush=True)
    await stop.wait()
    await runner.cleanup()
    controller.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="planboard-mailsink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(run(args.host, args.smtp_port, args.http_port, args.maildir))


class MailSinkServer(Server):
    """SMTP on ``port``, the JSON reader on ``http_port``."""

    name = "mailsink"
    start_timeout = 20.0

    def __init__(
        self, run_dir: Path, port: int, host: str = "127.0.0.1", http_port: int | None = None
    ) -> None:
        super().__init__(run_dir, port, host)
        self.http_port = http_port or free_port(host)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def maildir(self) -> Path:
        return self.run_dir / "maildir"

    def _argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "planboard_devstack.mailsink",
            "--host",
            self.host,
            "--smtp-port",
            str(self.port),
            "--http-port",
            str(self.http_port),
            "--maildir",
            str(self.maildir),
        ]

    def _ready(self) -> bool:
        return port_open(self.host, self.port) and port_open(self.host, self.http_port)


if __name__ == "__main__":
    main()
