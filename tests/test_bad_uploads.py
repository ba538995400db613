"""Bad and odd uploads through the real store (issue 6): every file is generated here, handed to
``ImageStore.add_upload`` with real folders and real SQLite, and judged by what a user sees: the
message of a refusal, or the stored image, its thumbnail and its title. The data dir and the
``images`` rows must afterwards hold exactly what was accepted, nothing more."""

from __future__ import annotations

import functools
import io
import os
import sqlite3
import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image, UnidentifiedImageError

from imgedit import imaging
from imgedit.errors import InvalidRequest
from imgedit.imaging import MAX_UPLOAD_BYTES, THUMB_SIDE, display_name
from imgedit.models import ImageRecord
from imgedit.storage import ImageStore

# -- making files ----------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def halves(size: tuple[int, int] = (120, 80), left: str = "red", right: str = "blue") -> Image.Image:
    """Left half one colour, right half another: shows which way round an image was stored."""
    image = Image.new("RGB", size, left)
    image.paste(Image.new("RGB", (size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return image


def png(size: tuple[int, int] = (120, 80)) -> bytes:
    return encode(halves(size), "PNG")


def cut_in_half(fmt: str) -> bytes:
    """A noisy picture (so pixel data, not headers, fills the file) with its second half missing."""
    data = encode(Image.effect_noise((300, 200), 60).convert("RGB"), fmt)
    return data[: len(data) // 2]


def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


@functools.cache
def black_and_white_png(width: int, height: int) -> bytes:
    """A real, complete 1-bit PNG of any size, built row by row without holding its pixels: a
    30000×30000 one is 900 MP yet about 0.1 MB, like a decompression bomb."""
    row = b"\0" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(1)
    rows_per_block = max(1, 1_000_000 // len(row))
    body = [
        compressor.compress(row * min(rows_per_block, height - top))
        for top in range(0, height, rows_per_block)
    ]
    idat = b"".join(body) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def animated(fmt: str, colours: list[str]) -> bytes:
    frames = [Image.new("RGB", (40, 30), colour) for colour in colours]
    options = {"lossless": True} if fmt == "WEBP" else {}
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **options)


def exif_rotated_jpeg() -> bytes:
    """Stored landscape (left red, right blue) and tagged "rotate 90° clockwise to view"."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(halves((300, 200)), "JPEG", exif=exif, quality=95)


def palette_with_transparency() -> bytes:
    image = Image.new("P", (40, 40), 0)
    image.putpalette([0, 0, 0, 0, 200, 0] + [0, 0, 0] * 254)
    image.paste(1, (20, 0, 40, 40))
    return encode(image, "PNG", transparency=0)


def sixteen_bit_grey() -> bytes:
    """Left half 16-bit black, right half 16-bit mid grey (32896 = 128 × 257)."""
    image = Image.new("I;16", (64, 32), 0)
    image.paste(32896, (32, 0, 64, 32))
    return encode(image, "PNG")


def eps() -> bytes:
    return encode(Image.new("RGB", (16, 16), "red"), "EPS")


SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<script>alert("hi")</script><rect width="10" height="10" fill="red"/></svg>'
)


# -- looking at the store --------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What the data dir and the database hold: file names per folder and the rows."""

    images: frozenset[str]
    thumbs: frozenset[str]
    rows: tuple[tuple[object, ...], ...]

    @classmethod
    def of(cls, data_dir: Path) -> Snapshot:
        conn = sqlite3.connect(data_dir / "imgedit.sqlite3")
        try:
            rows = tuple(
                conn.execute("SELECT id, format, width, height, name, origin FROM images ORDER BY id")
            )
        finally:
            conn.close()
        return cls(
            images=frozenset(p.name for p in (data_dir / "images").iterdir()),
            thumbs=frozenset(p.name for p in (data_dir / "thumbs").iterdir()),
            rows=rows,
        )


async def with_one_image(store: ImageStore) -> ImageRecord:
    """Every case starts from a gallery that already holds a picture, which must survive untouched."""
    record, _note = await store.add_upload(png(), name="already-here.png")
    return record


def stored(store: ImageStore, record: ImageRecord) -> Image.Image:
    with Image.open(store.path_of(record)) as image:
        image.load()
        return image


def thumb(store: ImageStore, record: ImageRecord) -> Image.Image:
    with Image.open(store.thumb_path_of(record)) as image:
        assert image.format == "WEBP"
        image.load()
        return image


def close_to(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


# -- refused files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    make: Callable[[], bytes]
    name: str
    says: str
    """The message, after the file's quoted name."""


REFUSED: dict[str, Refused] = {
    "text named png": Refused(
        lambda: b"Shopping list:\n- milk\n- eggs\n", "notes.png", "is a text file, not an image"
    ),
    "utf-8 text with a bom": Refused(
        lambda: "\ufeffCafé notes — ünïcödé\n".encode(), "readme.jpg", "is a text file, not an image"
    ),
    "pdf named jpg": Refused(
        lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n",
        "report.jpg",
        "is a PDF document, not an image",
    ),
    "html named png": Refused(
        lambda: b"<!DOCTYPE html>\n<html><body><script>alert(1)</script></body></html>",
        "page.png",
        "is a web page (HTML), not an image",
    ),
    "svg named png": Refused(
        lambda: SVG, "logo.png", "is an SVG drawing; SVG is not accepted because it can carry scripts"
    ),
    "svg": Refused(
        lambda: SVG[SVG.index(b"<svg") :],
        "icon.svg",
        "is an SVG drawing; SVG is not accepted because it can carry scripts",
    ),
    "eps named png": Refused(eps, "poster.png", "is a PostScript file"),
    "empty": Refused(lambda: b"", "empty.png", "is empty"),
    "truncated png": Refused(lambda: cut_in_half("PNG"), "half.png", "is cut short or damaged"),
    "truncated jpeg": Refused(lambda: cut_in_half("JPEG"), "half.jpg", "is cut short or damaged"),
    "random bytes": Refused(
        lambda: bytes(range(256)) * 4, "noise.gif", "is not an image imgedit can read (PNG, JPEG, WebP"
    ),
    "decompression bomb": Refused(
        lambda: black_and_white_png(30000, 30000),
        "bomb.png",
        "is 30000×30000 pixels; imgedit takes up to 64 MP",
    ),
    "just over 64 MP": Refused(
        lambda: black_and_white_png(9000, 9000), "huge.png", "is 9000×9000 pixels; imgedit takes up to 64 MP"
    ),
    "over the size limit": Refused(
        lambda: png() + b"\0" * (MAX_UPLOAD_BYTES + 1 - len(png())), "big.png", "is larger than 50 MB"
    ),
    "text under a path-like name": Refused(
        lambda: b"hello", "../../notes.png", "is a text file, not an image"
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
async def test_a_bad_upload_is_refused_with_a_plain_reason_and_nothing_is_kept(
    store: ImageStore, tmp_path: Path, case: Refused
) -> None:
    existing = await with_one_image(store)
    before, version = Snapshot.of(tmp_path), store.version

    with pytest.raises(InvalidRequest) as caught:
        await store.add_upload(case.make(), name=case.name)

    message = str(caught.value)
    assert f"“{display_name(case.name)}” {case.says}" in message, message
    assert "/" not in message.split("”")[0]  # the name shown never carries a path
    assert Snapshot.of(tmp_path) == before
    assert [r.id for r in store.list()] == [existing.id]
    assert store.version == version


# -- accepted files --------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    make: Callable[[], bytes]
    name: str
    format: str
    size: tuple[int, int]
    check: Callable[[ImageStore, ImageRecord, bytes], None] = lambda _s, _r, _d: None
    note: str = ""
    kept_as_uploaded: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def _cmyk_is_rgb(store: ImageStore, record: ImageRecord, _data: bytes) -> None:
    image = stored(store, record)
    assert image.mode in ("RGB", "RGBA")  # browsers and the engine both show RGB right
    assert close_to(image.convert("RGB").getpixel((10, 40)), (255, 0, 0))
    assert close_to(image.convert("RGB").getpixel((110, 40)), (0, 0, 255))
    assert close_to(thumb(store, record).convert("RGB").getpixel((10, 40)), (255, 0, 0))


def _sixteen_bit_is_displayable(store: ImageStore, record: ImageRecord, _data: bytes) -> None:
    image = stored(store, record)
    assert image.mode in ("L", "RGB")  # 8 bits per channel: what every browser and filter expects
    grey = image.convert("L")
    assert grey.getpixel((5, 5)) == 0
    assert abs(grey.getpixel((50, 5)) - 128) <= 1  # mid grey stays mid grey, not clipped to white
    shown = thumb(store, record).convert("L")
    assert shown.getpixel((5, 5)) <= 8 and abs(shown.getpixel((50, 5)) - 128) <= 8


def _transparency_kept(store: ImageStore, record: ImageRecord, _data: bytes) -> None:
    rgba = stored(store, record).convert("RGBA")
    assert rgba.getpixel((5, 5))[3] == 0
    assert rgba.getpixel((30, 5)) == (0, 200, 0, 255)
    shown = thumb(store, record).convert("RGBA")
    assert shown.getpixel((5, 5))[3] == 0
    assert close_to(shown.getpixel((34, 5)), (0, 200, 0, 255), 12)


def _grey_alpha_kept(store: ImageStore, record: ImageRecord, _data: bytes) -> None:
    image = stored(store, record)
    assert image.mode in ("LA", "RGBA")
    assert image.convert("RGBA").getpixel((2, 2)) == (90, 90, 90, 0)
    assert image.convert("RGBA").getpixel((30, 2)) == (90, 90, 90, 255)
    shown = thumb(store, record)
    assert shown.mode == "RGBA"
    assert shown.getpixel((2, 2))[3] == 0 and shown.getpixel((30, 2))[3] == 255


def _first_frame(colour: tuple[int, int, int]) -> Callable[[ImageStore, ImageRecord, bytes], None]:
    def check(store: ImageStore, record: ImageRecord, _data: bytes) -> None:
        image = stored(store, record)
        assert getattr(image, "n_frames", 1) == 1  # a still picture, so every view shows the same
        assert close_to(image.convert("RGB").getpixel((20, 15)), colour, 8)
        assert close_to(thumb(store, record).convert("RGB").getpixel((20, 15)), colour, 8)

    return check


def _upright(store: ImageStore, record: ImageRecord, _data: bytes) -> None:
    image = stored(store, record).convert("RGB")
    assert image.getexif().get(0x0112) in (None, 1)  # no viewer turns it a second time
    assert close_to(image.getpixel((100, 40)), (255, 0, 0))  # the red left edge is now on top
    assert close_to(image.getpixel((100, 260)), (0, 0, 255))
    small = thumb(store, record).convert("RGB")
    assert small.height > small.width
    assert close_to(small.getpixel((small.width // 2, 10)), (255, 0, 0))
    assert close_to(small.getpixel((small.width // 2, small.height - 10)), (0, 0, 255))


def _thumb_size(size: tuple[int, int]) -> Callable[[ImageStore, ImageRecord, bytes], None]:
    def check(store: ImageStore, record: ImageRecord, _data: bytes) -> None:
        assert thumb(store, record).size == size

    return check


ACCEPTED: dict[str, Accepted] = {
    "cmyk jpeg": Accepted(
        lambda: encode(halves().convert("CMYK"), "JPEG", quality=95),
        "print.jpg",
        "PNG",
        (120, 80),
        _cmyk_is_rgb,
        note="CMYK",
    ),
    "16-bit png": Accepted(
        sixteen_bit_grey, "scan.png", "PNG", (64, 32), _sixteen_bit_is_displayable, note="16-bit"
    ),
    "palette png with transparency": Accepted(
        palette_with_transparency, "sprite.png", "PNG", (40, 40), _transparency_kept, kept_as_uploaded=True
    ),
    "grey with alpha (LA)": Accepted(
        lambda: encode(
            Image.merge(
                "LA", (Image.new("L", (40, 20), 90), halves((40, 20), "black", "white").convert("L"))
            ),
            "PNG",
        ),
        "mask.png",
        "PNG",
        (40, 20),
        _grey_alpha_kept,
        kept_as_uploaded=True,
    ),
    "animated gif": Accepted(
        lambda: animated("GIF", ["red", "lime", "blue", "white", "black"]),
        "dance.gif",
        "PNG",
        (40, 30),
        _first_frame((255, 0, 0)),
        note="Animated GIF: only the first of 5 frames was kept.",
    ),
    "animated webp": Accepted(
        lambda: animated("WEBP", ["lime", "red", "blue", "white"]),
        "loop.webp",
        "PNG",
        (40, 30),
        _first_frame((0, 255, 0)),
        note="Animated WebP: only the first of 4 frames was kept.",
    ),
    "animated png": Accepted(
        lambda: animated("PNG", ["blue", "red", "lime"]),
        "blink.png",
        "PNG",
        (40, 30),
        _first_frame((0, 0, 255)),
        note="Animated PNG: only the first of 3 frames was kept.",
    ),
    "exif-rotated jpeg": Accepted(exif_rotated_jpeg, "phone.jpg", "PNG", (200, 300), _upright),
    "1x1": Accepted(
        lambda: png((1, 1)), "dot.png", "PNG", (1, 1), _thumb_size((1, 1)), kept_as_uploaded=True
    ),
    "10000x10": Accepted(
        lambda: png((10000, 10)),
        "strip.png",
        "PNG",
        (10000, 10),
        _thumb_size((THUMB_SIDE, 1)),
        kept_as_uploaded=True,
    ),
    "10x10000": Accepted(
        lambda: png((10, 10000)),
        "pole.png",
        "PNG",
        (10, 10000),
        _thumb_size((1, THUMB_SIDE)),
        kept_as_uploaded=True,
    ),
    "still webp": Accepted(
        lambda: encode(halves(), "WEBP", lossless=True),
        "still.webp",
        "WEBP",
        (120, 80),
        kept_as_uploaded=True,
    ),
    "tiff": Accepted(
        lambda: encode(halves(), "TIFF"), "scan.tif", "PNG", (120, 80), _first_frame((255, 0, 0))
    ),
}


@pytest.mark.parametrize("case", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_an_odd_but_real_image_is_stored_so_that_it_shows_right(
    store: ImageStore, tmp_path: Path, case: Accepted
) -> None:
    await with_one_image(store)
    before = Snapshot.of(tmp_path)
    data = case.make()

    record, note = await store.add_upload(data, name=case.name)

    assert (record.format, (record.width, record.height), record.name) == (case.format, case.size, case.name)
    assert case.note in note and (note == "") == (case.note == "")
    with Image.open(store.path_of(record)) as image:
        assert (image.format, image.size) == (case.format, case.size)
    if case.kept_as_uploaded:
        assert store.path_of(record).read_bytes() == data  # nothing needed changing: nothing lost
    case.check(store, record, data)
    after = Snapshot.of(tmp_path)
    assert after.images == before.images | {store.path_of(record).name}
    assert after.thumbs == before.thumbs | {f"{record.id}.webp"}
    assert set(after.rows) == set(before.rows) | {(record.id, case.format, *case.size, case.name, "upload")}


# -- names -----------------------------------------------------------------------------------


NAMES: dict[str, tuple[str, str]] = {
    "unicode": ("café 🎨.png", "café 🎨.png"),
    "posix traversal": ("../../x.png", "x.png"),
    "windows absolute": ("C:\\evil.png", "evil.png"),
    "windows traversal": ("..\\..\\y.png", "y.png"),
    "drive-relative": ("D:z.png", "z.png"),
    "absolute posix": ("/etc/passwd", "passwd"),
    "nul and controls": ("a\x00b\x07c\r\n.png", "abc .png"),
    "bidi override": ("photo\u202egnp.exe", "photognp.exe"),
    "whitespace": ("  my \t  holiday\u00a0 pic.png  ", "my holiday pic.png"),
    "only a path": ("../../", "upload"),
    "dots": ("..", "upload"),
    "empty": ("", "upload"),
}


@pytest.mark.parametrize(("raw", "shown"), NAMES.values(), ids=NAMES.keys())
async def test_an_upload_name_becomes_a_plain_title_and_never_a_path(
    store: ImageStore, tmp_path: Path, raw: str, shown: str
) -> None:
    before = Snapshot.of(tmp_path)

    record, _note = await store.add_upload(png(), name=raw)

    assert record.title == record.name == shown
    assert "\x00" not in record.name and "/" not in record.name and "\\" not in record.name
    assert Snapshot.of(tmp_path).images == before.images | {f"{record.id}.png"}  # inside images/, by id
    assert top_level(tmp_path) == {"images", "thumbs", "imgedit.sqlite3"}  # nothing beside them
    conn = sqlite3.connect(tmp_path / "imgedit.sqlite3")
    try:
        assert conn.execute("SELECT name FROM images WHERE id = ?", (record.id,)).fetchone() == (shown,)
    finally:
        conn.close()
    reopened = ImageStore(tmp_path)
    reopened.open()
    try:
        assert reopened.get(record.id).title == shown  # the same after a restart
    finally:
        reopened.close()


def top_level(data_dir: Path) -> set[str]:
    """The data dir's own entries, SQLite's journal files aside."""
    return {p.name for p in data_dir.iterdir() if not p.name.startswith("imgedit.sqlite3-")}


def test_a_long_name_is_capped_and_keeps_its_start() -> None:
    shown = display_name("a" * 500 + ".png")
    assert len(shown) == 120 and shown.startswith("aaa")


# -- PostScript never reaches Ghostscript (issue 6, defect 13) -------------------------------


@pytest.fixture
def ghostscript_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``gs`` first on PATH that leaves a marker file if anything ever runs it."""
    bin_dir, marker = tmp_path / "bin", tmp_path / "gs-ran"
    bin_dir.mkdir()
    fake = bin_dir / "gs"
    fake.write_text(f'#!/bin/sh\ntouch "{marker}"\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return marker


def ran(marker: Path) -> bool:
    return marker.exists()


@pytest.mark.parametrize("name", ["poster.png", "poster.eps", "poster.jpg"])
async def test_an_eps_upload_is_refused_without_running_ghostscript(
    store: ImageStore, tmp_path: Path, ghostscript_marker: Path, name: str
) -> None:
    before = Snapshot.of(tmp_path)

    with pytest.raises(InvalidRequest, match=f"“{name}” is a PostScript file"):
        await store.add_upload(eps(), name=name)

    assert not ran(ghostscript_marker)
    assert Snapshot.of(tmp_path) == before


def test_provider_answers_holding_postscript_are_not_decoded(ghostscript_marker: Path) -> None:
    # The decoder allow-list itself, not only the upload check: provider answers go through it too.
    with pytest.raises(UnidentifiedImageError):
        imaging.open_image(eps()).load()
    assert not ran(ghostscript_marker)
