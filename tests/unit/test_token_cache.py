"""The verified-token cache answers exactly what the full JWT verification answers."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

import jwt
import jwt.api_jwt
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from planboard.auth import tokens
from planboard.auth.tokens import (
    LEEWAY_S,
    AccessClaims,
    InvalidToken,
    VerifiedTokens,
    decode_access_token,
    issue_access_token,
    key_id,
)

NOW = 1_800_000_000
SECRET = "current-secret-" * 5
PREVIOUS = "previous-secret" * 5
STRANGER = "stranger-secret" * 5
KEYS = (SECRET, PREVIOUS)
ISSUER, AUDIENCE = "planboard", "planboard-api"
MAX_TTL_S = 900
CONTEXT: dict[str, Any] = {
    "secrets_": KEYS,
    "issuer": ISSUER,
    "audience": AUDIENCE,
    "max_ttl_s": MAX_TTL_S,
}


class Clock:
    """The one clock both PyJWT and the cache read (``time.time`` and ``datetime.now``)."""

    def __init__(self) -> None:
        self.now: float = NOW

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock()

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> FrozenDatetime:
            moment = datetime.fromtimestamp(frozen.now, tz)
            return cls.fromtimestamp(moment.timestamp(), tz)

    monkeypatch.setattr(tokens, "time", frozen)
    monkeypatch.setattr(jwt.api_jwt, "datetime", FrozenDatetime)
    return frozen


def outcome(verify: Callable[[], AccessClaims]) -> tuple[str, object]:
    try:
        return ("ok", verify())
    except InvalidToken as exc:
        return ("invalid", str(exc))
    except Exception as exc:  # whatever the full verification raises, the cache must too
        return ("error", type(exc).__name__)


def full(token: str, **context: Any) -> tuple[str, object]:
    return outcome(lambda: decode_access_token(token, **(context or CONTEXT)))


def cached(cache: VerifiedTokens, token: str, **context: Any) -> tuple[str, object]:
    return outcome(lambda: cache.verify(token, **(context or CONTEXT)))


def token_at(issued: float, ttl_s: int = 900, secret: str = SECRET, sid: str = "s1") -> str:
    token, _ = issue_access_token(
        secret=secret,
        issuer=ISSUER,
        audience=AUDIENCE,
        user_id="u1",
        session_id=sid,
        ttl_s=ttl_s,
        now=issued,
    )
    return token


# Tokens of every shape: mostly good ones around NOW (so that the time rules decide), and
# ones with a claim missing or wrong, an nbf, float times, another key, kid or algorithm,
# or one character changed, dropped or added.
DEFECTS = {
    "no-claim": None,
    "iss": "someone-else",
    "aud": "other-api",
    "sid": 7,
    "typ": "refresh",
    "iat-float": None,
    "nbf": None,
    "secret": None,
    "kid": None,
    "alg": None,
    "long": None,
    "change": None,
    "drop": None,
    "add": None,
}


@st.composite
def any_token(draw: st.DrawFn) -> str:
    iat = draw(st.integers(NOW - 300, NOW + 300))
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u1",
        "sid": "s1",
        "jti": "j1",
        "typ": "access",
        "iat": iat,
        "exp": iat + draw(st.integers(-50, 900)),
    }
    defects = draw(st.one_of(st.just([]), st.lists(st.sampled_from(sorted(DEFECTS)), max_size=2)))
    secret, kid, algorithm = draw(st.sampled_from(KEYS)), "", "HS256"
    for defect in defects:
        if defect == "no-claim":
            del payload[draw(st.sampled_from(sorted(payload)))]
        elif defect == "iat-float":
            payload["iat"] = iat + draw(st.floats(-20, 20))
        elif defect == "nbf":
            payload["nbf"] = draw(st.integers(NOW - 300, NOW + 300))
        elif defect == "secret":
            secret = STRANGER
        elif defect == "kid":
            kid = draw(st.sampled_from(["none", key_id(STRANGER), key_id(PREVIOUS)]))
        elif defect == "alg":
            algorithm = "HS512"
        elif defect == "long":  # signed with a good key, valid for longer than allowed
            payload["exp"] = iat + draw(st.integers(MAX_TTL_S + 1, 400 * 86400))
        elif DEFECTS[defect] is not None:
            payload[defect] = DEFECTS[defect]
    headers = {} if kid == "none" else {"kid": kid or key_id(secret)}
    token = jwt.encode(payload, secret, algorithm=algorithm, headers=headers)
    for defect in ("change", "drop", "add"):
        if defect in defects:
            at = draw(st.integers(0, len(token) - 1))
            char = draw(st.sampled_from("AaQw0_-.="))
            if defect == "change":
                token = token[:at] + char + token[at + 1 :]
            elif defect == "drop":
                token = token[:at] + token[at + 1 :]
            else:
                token = token[:at] + char + token[at:]
    return token


offsets = st.one_of(st.integers(-400, 1300), st.floats(-400, 1300))


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=any_token(), times=st.lists(offsets, min_size=1, max_size=4))
def test_the_cache_answers_what_full_verification_answers(
    clock: Clock, token: str, times: list[float]
) -> None:
    cache = VerifiedTokens()
    passed = False
    for offset in times:  # the first call may fill the cache, the later ones may hit
        clock.now = NOW + offset
        expected = full(token)
        hit = len(cache) == 1
        assert cached(cache, token) == expected
        passed = passed or expected[0] == "ok"
        event(f"{'hit' if hit else 'miss'}: {expected[0]}")
    if not passed:
        assert len(cache) == 0  # a failure is never cached


def test_a_hit_still_refuses_an_expired_token(clock: Clock) -> None:
    cache = VerifiedTokens()
    token = token_at(NOW, ttl_s=60)
    claims = cache.verify(token, **CONTEXT)
    assert len(cache) == 1
    clock.now = NOW + 60 + LEEWAY_S - 1  # within the leeway: still accepted, from the cache
    assert cache.verify(token, **CONTEXT) == claims
    clock.now = NOW + 60 + LEEWAY_S
    with pytest.raises(InvalidToken, match="token expired"):
        cache.verify(token, **CONTEXT)
    assert full(token) == ("invalid", "token expired")
    with pytest.raises(InvalidToken, match="token expired"):  # and again (it was dropped)
        cache.verify(token, **CONTEXT)


def test_a_hit_refuses_a_token_issued_in_the_future_when_the_clock_goes_back(
    clock: Clock,
) -> None:
    cache = VerifiedTokens()
    token = token_at(NOW)
    cache.verify(token, **CONTEXT)
    clock.now = NOW - LEEWAY_S - 1
    assert cached(cache, token) == full(token) == ("invalid", "invalid token")
    clock.now = NOW
    assert cached(cache, token)[0] == "ok"


def test_a_hit_applies_the_raw_iat_check_too(clock: Clock) -> None:
    """PyJWT compares int(iat); decode_access_token then the signed value itself."""
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u1",
        "sid": "s1",
        "jti": "j1",
        "typ": "access",
        "iat": NOW + 0.75,
        "exp": NOW + 900,
    }
    token = jwt.encode(payload, SECRET, algorithm="HS256", headers={"kid": key_id(SECRET)})
    cache = VerifiedTokens()
    assert cached(cache, token)[0] == "ok"
    clock.now = NOW - LEEWAY_S + 0.5  # int(iat) is not in the future, iat itself is
    assert cached(cache, token) == full(token) == ("invalid", "token issued in the future")


def test_a_failure_is_never_cached(clock: Clock) -> None:
    cache = VerifiedTokens()
    early = token_at(NOW + 100)  # issued in the future: refused now, fine later
    assert cached(cache, early) == ("invalid", "invalid token")
    assert len(cache) == 0
    clock.now = NOW + 100
    assert cached(cache, early)[0] == "ok"
    assert len(cache) == 1


def _swap_payload(token: str, **changes: Any) -> str:
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    body = base64.urlsafe_b64encode(jwt.api_jwt.json.dumps(claims).encode()).rstrip(b"=")
    return f"{header}.{body.decode()}.{signature}"


def test_forged_and_altered_tokens_are_never_served_from_the_cache(clock: Clock) -> None:
    cache = VerifiedTokens()
    token = token_at(NOW)
    cache.verify(token, **CONTEXT)
    altered = _swap_payload(token, sub="admin")  # the genuine token's signature kept
    stranger = token_at(NOW, secret=STRANGER)
    header, payload, _ = stranger.split(".")
    borrowed = f"{header}.{payload}.{token.split('.')[2]}"
    unsigned = jwt.encode({**jwt.decode(token, options={"verify_signature": False})}, None, "none")
    for bad in (altered, stranger, borrowed, unsigned, token + "x", token[:-1]):
        assert cached(cache, bad) == full(bad)
        assert cached(cache, bad)[0] == "invalid"
    assert len(cache) == 1


def test_the_verification_context_is_part_of_the_key(clock: Clock) -> None:
    cache = VerifiedTokens()
    token = token_at(NOW, secret=PREVIOUS)
    assert cached(cache, token)[0] == "ok"  # the previous key still verifies
    rotated_out = {**CONTEXT, "secrets_": (SECRET,)}
    assert cached(cache, token, **rotated_out) == ("invalid", "unknown signing key")
    other_audience = {**CONTEXT, "audience": "other-api"}
    assert cached(cache, token, **other_audience) == ("invalid", "invalid token")
    assert cached(cache, token)[0] == "ok"


def test_the_cache_is_bounded_oldest_first(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = VerifiedTokens(max_entries=3)
    issued = [token_at(NOW, sid=f"s{i}") for i in range(5)]
    for token in issued:
        cache.verify(token, **CONTEXT)
    assert len(cache) == 3
    verified: list[str] = []
    real = tokens._verify

    def counting(token: str, *args: Any) -> Any:
        verified.append(token)
        return real(token, *args)

    monkeypatch.setattr(tokens, "_verify", counting)
    for token in issued[2:]:  # the newest three: hits
        cache.verify(token, **CONTEXT)
    assert verified == []
    cache.verify(issued[0], **CONTEXT)  # evicted: verified again, evicts issued[2]
    assert verified == [issued[0]]
    cache.verify(issued[2], **CONTEXT)
    assert verified == [issued[0], issued[2]]
    assert len(cache) == 3


def test_long_tokens_are_verified_but_not_cached(clock: Clock) -> None:
    cache = VerifiedTokens(max_token_chars=100)
    token = token_at(NOW)
    assert len(token) > 100
    assert cached(cache, token) == full(token)
    assert cached(cache, token)[0] == "ok"
    assert len(cache) == 0


def test_a_token_living_longer_than_allowed_is_refused_whoever_signed_it(clock: Clock) -> None:
    """A leaked key or a misconfigured issuer cannot mint long-lived tokens: the lifetime
    (exp - iat) is checked against the configured one at verification."""
    cache = VerifiedTokens()
    exact = token_at(NOW, ttl_s=MAX_TTL_S)
    assert cached(cache, exact)[0] == "ok"
    month = token_at(NOW, ttl_s=30 * 86400)
    assert full(month) == ("invalid", "token lifetime longer than allowed")
    assert cached(cache, month) == full(month)
    assert len(cache) == 1  # never cached
    # the limit is part of the key: a token cached under a longer one is refused under ours
    hour = token_at(NOW, ttl_s=3600)
    assert cached(cache, hour, **{**CONTEXT, "max_ttl_s": 3600})[0] == "ok"
    assert cached(cache, hour) == ("invalid", "token lifetime longer than allowed")
