"""Signed download URLs: bound to id, variant and expiry; keys rotate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from planboard.auth.signing import DownloadSigner

NOW = 1_800_000_000
ids = st.text(alphabet="0123456789abcdef", min_size=24, max_size=24)
variants = st.sampled_from(["original", "thumbnail"])


def test_a_signature_verifies_until_it_expires() -> None:
    signer = DownloadSigner("k" * 40)
    sig = signer.sign("a" * 24, "original", NOW + 60)
    assert signer.verify("a" * 24, "original", NOW + 60, sig, NOW)
    assert not signer.verify("a" * 24, "original", NOW + 60, sig, NOW + 60)
    assert not signer.verify("a" * 24, "original", NOW + 60, sig, NOW + 61)


def test_previous_keys_still_verify_and_others_do_not() -> None:
    old = DownloadSigner("old-secret-" * 4)
    rotated = DownloadSigner("new-secret-" * 4, previous=["old-secret-" * 4])
    stranger = DownloadSigner("other-secret" * 4)
    sig = old.sign("b" * 24, "thumbnail", NOW + 10)
    assert rotated.verify("b" * 24, "thumbnail", NOW + 10, sig, NOW)
    assert not stranger.verify("b" * 24, "thumbnail", NOW + 10, sig, NOW)


def test_the_key_has_its_own_purpose() -> None:
    """A MAC of the same message under the raw secret (or another purpose) is refused."""
    import base64
    import hashlib
    import hmac

    secret = "s" * 40
    message = f"{'c' * 24}\x00original\x00{NOW + 5}".encode()
    raw = base64.urlsafe_b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())
    assert not DownloadSigner(secret).verify(
        "c" * 24, "original", NOW + 5, raw.rstrip(b"=").decode(), NOW
    )


@given(ids, variants, st.integers(1, 10**6), ids, variants, st.integers(1, 10**6))
def test_changing_anything_breaks_the_signature(
    id1: str, v1: str, ttl1: int, id2: str, v2: str, ttl2: int
) -> None:
    signer = DownloadSigner("k" * 40)
    sig = signer.sign(id1, v1, NOW + ttl1)
    same = (id1, v1, ttl1) == (id2, v2, ttl2)
    assert signer.verify(id2, v2, NOW + ttl2, sig, NOW) is same


@given(st.text(max_size=120))
def test_garbage_signatures_are_refused_without_errors(garbage: str) -> None:
    assert not DownloadSigner("k" * 40).verify("d" * 24, "original", NOW + 5, garbage, NOW)


def test_unknown_variants_are_refused() -> None:
    signer = DownloadSigner("k" * 40)
    sig = signer.sign("e" * 24, "preview", NOW + 5)
    assert not signer.verify("e" * 24, "preview", NOW + 5, sig, NOW)


@given(st.text(max_size=60), st.text(max_size=20))
def test_any_id_and_variant_are_answered_without_errors(attachment_id: str, variant: str) -> None:
    signer = DownloadSigner("k" * 40)
    assert not signer.verify(attachment_id, variant, NOW + 5, "x" * 43, NOW)
    assert not signer.verify("\udc80" + attachment_id, "original", NOW + 5, "x" * 43, NOW)
