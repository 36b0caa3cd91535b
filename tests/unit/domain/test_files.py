"""The content sniffer, the extension rule, image header checks and filename safety."""

from __future__ import annotations

import io
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from planboard.domain import files
from planboard.domain.errors import UnsupportedContent, ValidationFailed
from tests.utils.files import ELF, HTML, PDF, PE, SVG, image_bytes, png_bomb


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (image_bytes("PNG"), files.PNG),
        (image_bytes("JPEG"), files.JPEG),
        (image_bytes("GIF", mode="P"), files.GIF),
        (image_bytes("WEBP"), files.WEBP),
        (PDF, files.PDF),
        (b"# Title\n\nSome *markdown* with <b>inline</b> tags.\n", files.TEXT),
        ("naïve,café\n".encode(), files.TEXT),
        (b"\xef\xbb\xbfwith a byte order mark\n", files.TEXT),
        (b"MZ is the start of this sentence.\n", files.TEXT),
    ],
)
def test_accepted_content(content: bytes, expected: files.FileType) -> None:
    assert files.sniff(content, complete=True) is expected


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (ELF, "executable"),
        (PE, "executable"),
        (b"\xcf\xfa\xed\xfe" + b"\x00" * 20, "executable"),
        (b"PK\x03\x04rest", "archive"),
        (b"\x1f\x8b\x08\x00", "archive"),
        (SVG, "markup"),
        (HTML, "markup"),
        (b"  \n<svg onload=alert(1)>", "markup"),
        (b"\x00\x00\x00\x18ftypmp42", "binary"),
        (b"latin-1 caf\xe9", "binary"),
    ],
)
def test_refused_content(content: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedContent) as caught:
        files.sniff(content, complete=True)
    assert files.rejection_reason(caught.value) == reason


def test_empty_is_a_validation_problem() -> None:
    with pytest.raises(ValidationFailed) as caught:
        files.sniff(b"", complete=True)
    assert caught.value.errors == [("file", "the file is empty")]


def test_a_utf8_character_split_at_the_end_of_the_head_is_fine() -> None:
    head = ("x" * 10 + "é").encode()[:-1]
    assert files.sniff(head, complete=False) is files.TEXT
    with pytest.raises(UnsupportedContent):
        files.sniff(head, complete=True)


def test_text_is_checked_to_the_end() -> None:
    check = files.TextCheck()
    check.feed("première ".encode()[:-2])
    check.feed("première ".encode()[-2:])
    with pytest.raises(UnsupportedContent):
        check.feed(b"ok \x00 nul")
    with pytest.raises(UnsupportedContent):
        files.TextCheck().feed(b"\xc3", final=True)


@pytest.mark.parametrize(
    ("name", "file_type", "ok"),
    [
        ("a.PNG", files.PNG, True),
        ("photo.jpeg", files.JPEG, True),
        ("photo.jpg", files.PNG, False),
        ("notes.md", files.TEXT, True),
        ("notes", files.TEXT, False),
        (".png", files.PNG, False),
        ("report.pdf.png", files.PDF, False),
    ],
)
def test_extension_must_match(name: str, file_type: files.FileType, ok: bool) -> None:
    if ok:
        files.check_extension(name, file_type)
    else:
        with pytest.raises(ValidationFailed):
            files.check_extension(name, file_type)


def test_image_headers_are_read_without_decoding() -> None:
    assert files.inspect_image(image_bytes("PNG", (123, 45)), files.PNG, 10_000) == (123, 45)
    with pytest.raises(ValidationFailed, match="too large"):
        files.inspect_image(image_bytes("PNG", (200, 100)), files.PNG, 10_000)
    with pytest.raises(ValidationFailed):  # Pillow's own bomb check, beyond ours
        files.inspect_image(png_bomb(), files.PNG, 10**12)
    with pytest.raises(UnsupportedContent):
        files.inspect_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, files.PNG, 10**6)


def test_thumbnails_fit_the_bound() -> None:
    data, width, height = files.make_thumbnail(
        io.BytesIO(image_bytes("JPEG", (1000, 500))), files.JPEG, 128, 10**7
    )
    with Image.open(io.BytesIO(data)) as thumb:
        assert (thumb.format, thumb.size) == ("WEBP", (128, 64)) == ("WEBP", (width, height))


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\plan.md", "plan.md"),
        ("  spaced   out .txt ", "spaced out.txt"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("...hidden.txt", "hidden.txt"),
        ("x" * 300 + ".jpeg", "x" * 195 + ".jpeg"),
    ],
)
def test_filenames_are_sanitized(raw: str, clean: str) -> None:
    assert files.sanitize_filename(raw) == clean


@pytest.mark.parametrize("raw", [None, "", "   ", "/", "../..", "\u202e\u200b"])
def test_unusable_filenames(raw: str | None) -> None:
    with pytest.raises(ValidationFailed):
        files.sanitize_filename(raw)


@given(st.text(max_size=400))
def test_any_sanitized_name_is_safe(raw: str) -> None:
    try:
        name = files.sanitize_filename(raw)
    except ValidationFailed:
        return
    assert name and "/" not in name and "\\" not in name
    assert not any(unicodedata.category(c).startswith("C") for c in name)
    assert len(name) <= files.MAX_FILENAME_CHARS
    assert len(name.encode()) <= files.MAX_FILENAME_BYTES
    assert name == name.strip(" .")  # no hidden files, no trailing dots or spaces
    # the header value is plain ASCII and cannot break out of its quotes or the header
    header = files.content_disposition(name)
    assert header.isascii() and "\r" not in header and "\n" not in header
    fallback = header.split('filename="', 1)[1].split('";', 1)[0]
    assert '"' not in fallback and "\\" not in fallback
