"""What an uploaded file is, judged by its bytes: pure rules, no I/O.

The client's ``Content-Type`` is never trusted. The first bytes (up to ``HEAD_BYTES``)
decide the type from an allowlist; the filename's extension must agree with it; an
image's header is parsed (lazily, nothing decoded) and refused when it declares more
pixels than allowed, so a decompression bomb is turned away before it is stored.
Text is accepted only as UTF-8 without control characters, and is always served as
``text/plain`` (markup documents such as HTML, SVG or XML are refused outright).
"""

from __future__ import annotations

import codecs
import io
import re
import unicodedata
import warnings
from dataclasses import dataclass
from typing import IO, Literal
from urllib.parse import quote

from PIL import Image, ImageOps, UnidentifiedImageError

from planboard.domain.errors import PayloadTooLarge, UnsupportedContent, ValidationFailed

HEAD_BYTES = 1024 * 1024  # what the sniffer sees; an image header must fit in it
MAX_FILENAME_CHARS = 200
MAX_FILENAME_BYTES = 255
FIELD = "file"

Kind = Literal["image", "pdf", "text"]


@dataclass(frozen=True, slots=True)
class FileType:
    """An accepted type: the media type it is served as and the extensions it may carry."""

    name: str
    media_type: str
    kind: Kind
    extensions: tuple[str, ...]
    pillow_format: str | None = None


PNG = FileType("png", "image/png", "image", ("png",), "PNG")
JPEG = FileType("jpeg", "image/jpeg", "image", ("jpg", "jpeg", "jpe"), "JPEG")
GIF = FileType("gif", "image/gif", "image", ("gif",), "GIF")
WEBP = FileType("webp", "image/webp", "image", ("webp",), "WEBP")
PDF = FileType("pdf", "application/pdf", "pdf", ("pdf",))
TEXT = FileType(
    "text",
    "text/plain; charset=utf-8",
    "text",
    ("txt", "text", "md", "markdown", "csv", "tsv", "log", "json", "yaml", "yml"),
)
ALLOWED: tuple[FileType, ...] = (PNG, JPEG, GIF, WEBP, PDF, TEXT)

# Content that is recognised and refused, with the reason given to the client.
REFUSED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O or Java class file"),
    (b"\x00asm", "a WebAssembly module"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
)
MARKUP_RE = re.compile(rb"<\s*(?:!doctype|html|svg|\?xml|script|body|head|iframe|math)\b", re.I)
# C0 controls other than tab, line feed, form feed and carriage return (and DEL).
CONTROL_RE = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
TEXT_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class RejectedFile(ValidationFailed):
    """A 422 about the ``file`` part; ``reason`` labels the rejection metric."""

    def __init__(self, reason: str, message: str, detail: str) -> None:
        super().__init__([(FIELD, message)], detail)
        self.reason = reason


class RefusedContent(UnsupportedContent):
    """A 415: content outside the allowlist; ``reason`` labels the rejection metric."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class TooLarge(PayloadTooLarge):
    reason = "too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the limit of {limit} bytes")
        self.limit = limit


def rejection_reason(error: Exception) -> str:
    """The metric label of a rejected upload."""
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) else type(error).__name__.lower()


def allowed_summary() -> str:
    return ", ".join(f"{t.name} (.{', .'.join(t.extensions)})" for t in ALLOWED)


def _refused(what: str, reason: str = "type_not_allowed") -> RefusedContent:
    return RefusedContent(
        reason, f"the file is {what}, which is not accepted; allowed: {allowed_summary()}"
    )


def _looks_like_markup(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n\f")[:4096]
    return start.startswith(b"<") and MARKUP_RE.search(start) is not None


def sniff(head: bytes, *, complete: bool) -> FileType:
    """The type of a file from its first bytes (``complete``: ``head`` is the whole file).

    Empty content is a 422; anything outside the allowlist a 415.
    """
    if not head:
        raise RejectedFile("empty", "the file is empty", "the file is empty")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    for signature, what in REFUSED_SIGNATURES:
        # "MZ" alone also starts some text; a PE header has binary bytes right after it
        if head.startswith(signature) and (signature != b"MZ" or CONTROL_RE.search(head[:64])):
            raise _refused(what, "executable" if "executable" in what else "archive")
    if _looks_like_markup(head):
        raise _refused("an HTML, SVG or XML document", "markup")
    if CONTROL_RE.search(head):
        raise _refused("binary data of an unknown type", "binary")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        raise _refused("binary data or text that is not UTF-8", "binary") from None
    return TEXT


class TextCheck:
    """Checks, chunk by chunk, that a text upload stays UTF-8 without control characters."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        try:
            text = self._decoder.decode(chunk, final=final)
        except UnicodeDecodeError:
            raise _refused("not UTF-8 text throughout", "binary") from None
        if TEXT_CONTROL_RE.search(text):
            raise _refused("binary data (control characters in text)", "binary")


def extension_of(filename: str) -> str:
    stem, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and stem else ""


def check_extension(filename: str, file_type: FileType) -> None:
    """The name must end in one of the type's extensions (a PNG named .pdf is a 422)."""
    ext = extension_of(filename)
    if ext in file_type.extensions:
        return
    said = f"ends in .{ext}" if ext else "has no extension"
    raise RejectedFile(
        "extension_mismatch",
        f"the name {said} but the content is {file_type.name}; "
        f"name it .{' or .'.join(file_type.extensions)}",
        "the file name does not match its content",
    )


def sanitize_filename(raw: str | None) -> str:
    """A safe display name: no path, no control or format characters, bounded length."""
    name = unicodedata.normalize("NFC", raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    # Cc/Cf/Cs/Co/Cn: control, bidi overrides and zero-width characters, surrogates...
    name = "".join(c for c in name if not unicodedata.category(c).startswith("C"))
    name = " ".join(name.split()).strip(" .")
    if not name:
        raise RejectedFile(
            "no_filename", "the file part needs a filename", "the upload has no usable file name"
        )
    ext = extension_of(name)
    suffix = f".{name.rpartition('.')[2]}" if ext and len(ext) <= 16 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    while len(stem + suffix) > MAX_FILENAME_CHARS or (
        len((stem + suffix).encode()) > MAX_FILENAME_BYTES
    ):
        stem = stem[:-1]
    return (stem.rstrip(" .") or "file") + suffix


def content_disposition(filename: str) -> str:
    """RFC 6266 ``attachment`` with an ASCII fallback and the UTF-8 name (RFC 8187)."""
    fallback = "".join(
        c if c.isascii() and (c.isalnum() or c in " ._-()[]+,=@") else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# --------------------------------------------------------------------------- images


def _bomb(width: int, height: int, max_pixels: int) -> RejectedFile:
    return RejectedFile(
        "image_too_large",
        f"the image declares {width}x{height} pixels, over the limit of "
        f"{max_pixels} (a decompression bomb or simply too large)",
        "the image is too large to process",
    )


def inspect_image(head: bytes, file_type: FileType, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` from the image header; nothing is decoded.

    Pillow's own decompression-bomb warning is an error here, and so is a header that
    declares more than ``max_pixels`` pixels (422). A header Pillow cannot read is a 415.
    """
    assert file_type.pillow_format is not None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(head), formats=[file_type.pillow_format]) as image:
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RejectedFile(
            "image_too_large",
            "the image declares too many pixels (a decompression bomb)",
            "the image is too large to process",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise RefusedContent(
            "broken_image",
            f"the file starts like a {file_type.name.upper()} image but its header cannot be "
            f"read ({type(exc).__name__})",
        ) from None
    if width < 1 or height < 1 or width * height > max_pixels:
        raise _bomb(width, height, max_pixels)
    return width, height


THUMBNAIL_TYPE = "image/webp"


def make_thumbnail(
    source: IO[bytes], file_type: FileType, bound: int, max_pixels: int
) -> tuple[bytes, int, int]:
    """A WebP of at most ``bound`` x ``bound`` pixels (aspect kept, EXIF rotation applied),
    with its width and height."""
    assert file_type.pillow_format is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(source, formats=[file_type.pillow_format]) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise _bomb(width, height, max_pixels)
            image.draft("RGB", (bound, bound))  # JPEG: decode at a reduced scale
            frame = ImageOps.exif_transpose(image)
            frame.thumbnail((bound, bound))
            mode = "RGBA" if "A" in frame.getbands() or "transparency" in frame.info else "RGB"
            out = io.BytesIO()
            frame.convert(mode).save(out, format="WEBP", quality=80, method=4)
            size = frame.size
    return out.getvalue(), size[0], size[1]


TYPES_BY_NAME = {t.name: t for t in ALLOWED}
