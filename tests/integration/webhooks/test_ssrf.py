"""The SSRF guard: address policy, URL syntax, and the resolver the worker connects through."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import aiohttp
import pytest

from planboard.services import ssrf
from planboard.workers.webhooks import GuardedResolver

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.1",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "198.18.0.1",
        "192.0.2.10",
        "::1",
        "fc00::1",
        "fd00:ec2::254",
        "fe80::1",
        "fec0::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2001:db8::1",
    ],
)
def test_internal_addresses_are_refused_unless_allowed(address: str) -> None:
    parsed = ipaddress.ip_address(address)
    assert ssrf.refusal(parsed, allow_private=False)
    assert ssrf.refusal(parsed, allow_private=True) is None


@pytest.mark.parametrize(
    "address", ["0.0.0.0", "0.1.2.3", "::", "224.0.0.1", "239.1.1.1", "ff02::1", "255.255.255.255"]
)
def test_unspecified_multicast_broadcast_are_always_refused(address: str) -> None:
    parsed = ipaddress.ip_address(address)
    assert ssrf.refusal(parsed, allow_private=True)
    assert ssrf.refusal(parsed, allow_private=False)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert ssrf.refusal(ipaddress.ip_address(address), allow_private=False) is None


def test_parse_normalizes_and_rejects() -> None:
    target = ssrf.parse_target("HTTPS://Hooks.Example.COM:8443/a/b?x=1")
    assert target.url == "https://hooks.example.com:8443/a/b?x=1"
    assert (target.host, target.port, target.address) == ("hooks.example.com", 8443, None)
    assert ssrf.parse_target("http://[::1]/").address == ipaddress.ip_address("::1")
    assert ssrf.parse_target("http://bücher.example/").host == "xn--bcher-kva.example"
    assert ssrf.parse_target("http://1bad.cafe/").host == "1bad.cafe"
    for bad in (
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://u:p@example.com/",
        "http://u@example.com/",
        "http://example.com:99999/",
        "http://example.com/#x",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://example.com\\@evil/",
        "http://exa mple.com/",
        "http://" + "a" * 64 + ".com/",
        "https://example.com/" + "x" * 3000,
    ):
        with pytest.raises(ValueError, match=r"."):
            ssrf.parse_target(bad)


async def test_resolution_refuses_any_internal_answer(monkeypatch) -> None:
    loop = asyncio.get_running_loop()

    async def fake(host, port, *, family=0, type=0, proto=0, flags=0):
        if host == "mixed.example.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.8", port)),
            ]
        if host == "public.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(loop, "getaddrinfo", fake)
    with pytest.raises(ssrf.TargetRefused, match=r"10\.0\.0\.8"):
        await ssrf.resolve_checked("mixed.example.test", 443, allow_private=False)
    found = await ssrf.resolve_checked("public.example.test", 443, allow_private=False)
    assert [str(a) for _, a in found] == ["93.184.215.14"]
    # create time: an internal answer is refused, an unknown name is accepted
    with pytest.raises(ssrf.TargetRefused):
        await ssrf.validate_target(
            "https://mixed.example.test/", allow_private=False, resolve_timeout_s=2
        )
    ok = await ssrf.validate_target(
        "https://nowhere.example.test/h", allow_private=False, resolve_timeout_s=2
    )
    assert ok.host == "nowhere.example.test"


async def test_the_client_connects_to_the_address_it_checked(receiver, monkeypatch) -> None:
    """One lookup per connection, checked, then used as is: no rebinding window."""
    loop = asyncio.get_running_loop()
    lookups: list[str] = []
    answers = iter(["127.0.0.1", "93.184.215.14"])  # a rebinding DNS server's answers

    async def rebinding(host, port, *, family=0, type=0, proto=0, flags=0):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    url = f"http://hooks.rebind.test:{receiver.port}/hook"

    guarded = aiohttp.TCPConnector(
        resolver=GuardedResolver(allow_private=False), use_dns_cache=False
    )
    async with aiohttp.ClientSession(connector=guarded) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.post(url, data=b"{}")
        assert isinstance(caught.value.os_error, ssrf.TargetRefused)
    assert receiver.requests == []

    answers = iter(["127.0.0.1", "93.184.215.14"])
    lookups.clear()
    allowed = aiohttp.TCPConnector(
        resolver=GuardedResolver(allow_private=True), use_dns_cache=False
    )
    async with (
        aiohttp.ClientSession(connector=allowed) as session,
        session.post(url, data=b"{}") as response,
    ):
        assert response.status == 200
    # the request reached the address the single lookup returned and checked
    assert lookups == ["hooks.rebind.test"] and len(receiver.requests) == 1
    assert receiver.requests[0].headers["Host"] == f"hooks.rebind.test:{receiver.port}"
