"""What a gallery thumbnail looks like (imgedit.imaging, through ImageStore.add).

The thumbnail is made the cheap way (bicubic, WebP effort 2; see ``imaging.THUMB_RESAMPLE``):
these tests hold it to what a user sees, so a cheaper filter that blurs or shows moiré fails.
"""

from __future__ import annotations

import io
import math

from PIL import Image, ImageChops, ImageStat

from imgedit.models import ImageOrigin, JobKind, Quality
from imgedit.providers.base import ProviderRequest
from imgedit.providers.local import LocalProvider
from imgedit.storage import ImageStore

SIDE = 1024


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def chirp(side: int) -> Image.Image:
    """Grey vertical stripes ever finer from left to right: at column x they repeat every
    ``2 * side / x`` pixels, down to 2 (the finest a picture of ``side`` pixels can hold)."""
    row = Image.new("L", (side, 1))
    row.putdata([round(127.5 + 127.5 * math.cos(math.pi * x * x / (2 * side))) for x in range(side)])
    return row.resize((side, side), Image.Resampling.NEAREST).convert("RGB")


def contrast(image: Image.Image, left: int, right: int) -> float:
    """The spread of grey (standard deviation) between two columns of the source, in the thumbnail."""
    scale = image.width / SIDE
    return ImageStat.Stat(
        image.convert("L").crop((round(left * scale), 0, round(right * scale), image.height))
    ).stddev[0]


class _NoSink:
    def progress(self, fraction: float, message: str | None = None) -> None:
        pass

    def preview(self, image: bytes) -> None:
        pass


async def test_stripes_too_fine_for_a_thumbnail_turn_even_grey_and_coarser_ones_keep_their_contrast(
    store: ImageStore,
) -> None:
    record = await store.add(png(chirp(SIDE)), origin=ImageOrigin.UPLOAD, name="stripes.png")

    with Image.open(store.thumb_path_of(record)) as thumb:
        assert thumb.size == (480, 480)
        # Left of column 300 the stripes are at least 7 px wide: a 480 px thumbnail shows them, at
        # (nearly) full contrast (a plain cosine: 90). A blurring filter (bilinear: 83) fails here.
        assert contrast(thumb, 0, 300) > 87
        # Right of column 700 they are under 3 px: finer than the thumbnail's pixels, so they must
        # come out an even grey, not as moiré. Bicubic leaves ~2.5; Hamming 17, a 2× box reduce
        # first 26, nearest 86.
        assert contrast(thumb, 700, 1000) < 8


async def test_a_local_engine_result_has_a_thumbnail_that_looks_like_it(store: ImageStore) -> None:
    request = ProviderRequest(
        kind=JobKind.GENERATE, prompt="waves in sunset colours", quality=Quality.MEDIUM, size=(SIDE, SIDE)
    )
    result = await LocalProvider().generate(request, _NoSink())

    record = await store.add(result.image, origin=ImageOrigin.GENERATE, provider="local")

    assert store.path_of(record).read_bytes() == result.image  # the provider's PNG, byte for byte
    with Image.open(io.BytesIO(result.image)) as image:
        reference = image.convert("RGB")
    reference.thumbnail((480, 480), Image.Resampling.LANCZOS)  # the finest shrink Pillow has
    with Image.open(store.thumb_path_of(record)) as thumb:
        assert (thumb.format, thumb.size) == ("WEBP", reference.size)
        difference = ImageChops.difference(thumb.convert("RGB"), reference)
    # The same picture to the eye: off by a level or two on average, WebP's own loss included
    # (Lanczos with WebP effort 4 was off by as much), and 999 pixels in 1000 by less than 20
    # (a nearest-neighbour shrink: 25).
    assert max(ImageStat.Stat(difference).mean) < 2
    assert percentile(difference.convert("L"), 0.999) < 20


def percentile(image: Image.Image, fraction: float) -> int:
    """The grey level that ``fraction`` of ``image``'s pixels do not exceed."""
    histogram = image.histogram()
    wanted, seen = fraction * sum(histogram), 0
    for level, count in enumerate(histogram):
        seen += count
        if seen >= wanted:
            return level
    return 255
