"""The Pillow operations behind the local engine's prompt language.

Owns ``apply_operations`` (parsed ``Operation`` list → new image: working resolution per quality,
banded processing with real progress and cancellation), ``OperationCancelled`` and the
``ProgressFn`` / ``StopFn`` callback types. Pure and synchronous: no asyncio, no I/O.
Must not import nicegui or anything under ``imgedit.ui``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageEnhance, ImageFilter, ImageOps, ImageStat

from imgedit.imaging import displayable
from imgedit.models import Quality
from imgedit.providers.local_parse import Operation

ProgressFn = Callable[[float, str], None]
StopFn = Callable[[], bool]
NoteFn = Callable[[str], None]


class OperationCancelled(Exception):
    """``should_stop`` returned True; the work was abandoned and produced nothing."""


@dataclass(frozen=True, slots=True)
class QualitySpec:
    """How much work one quality level buys: the longest side worked on and the resampling filter."""

    max_side: int
    resample: Image.Resampling


QUALITY_SPECS: dict[Quality, QualitySpec] = {
    Quality.LOW: QualitySpec(512, Image.Resampling.BILINEAR),
    Quality.MEDIUM: QualitySpec(1024, Image.Resampling.BICUBIC),
    Quality.HIGH: QualitySpec(2048, Image.Resampling.LANCZOS),
}
MAX_OUTPUT_SIDE = 4096
"""No step may leave a longer side than this: rotation with ``expand`` grows the canvas by up to √2
each time, so a few turns would otherwise reach gigabytes. 4096² stays well inside the store's
``imaging.MAX_PIXELS``."""
BANDS = 8

BandFn = Callable[[Image.Image, tuple[int, int]], Image.Image]


@dataclass(frozen=True, slots=True)
class Banded:
    """A row-local operation: ``fn(padded_band, (top, bottom))`` returns the processed padded band.

    ``pad`` rows of real context above and below each band cover the filter's reach, so bands join
    without seams. ``replicate`` also pads the image's own borders by repeating edge pixels, for
    kernels Pillow would otherwise leave unfiltered there. ``alpha``: ``fn`` handles RGBA itself
    (else the alpha channel is kept as it was).
    """

    fn: BandFn
    pad: int = 0
    align: int = 1
    alpha: bool = False
    replicate: bool = False


def normalise_mode(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when the source has transparency; every operation works on these two.

    The same conversion as the gallery's, so a 16-bit source is scaled to 8 bits, not clipped white.
    """
    return displayable(image)


def to_working_resolution(image: Image.Image, quality: Quality) -> Image.Image:
    """Downscale (never upscale) so the longest side fits the quality's budget."""
    spec = QUALITY_SPECS[quality]
    longest = max(image.size)
    if longest <= spec.max_side:
        return image
    scale = spec.max_side / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, spec.resample)


def band_ranges(height: int, align: int = 1) -> list[tuple[int, int]]:
    step = math.ceil(math.ceil(height / BANDS) / align) * align
    return [(top, min(height, top + step)) for top in range(0, height, step)]


def _padded_band(image: Image.Image, top: int, bottom: int, pad: int) -> Image.Image:
    """Rows ``top..bottom`` with ``pad`` pixels of context on every side, replicating the image edge."""
    w, h = image.size
    if pad == 0:
        return image.crop((0, top, w, bottom))
    nearest = Image.Resampling.NEAREST
    first, last = max(0, top - pad), min(h, bottom + pad)
    out = Image.new(image.mode, (w + 2 * pad, bottom - top + 2 * pad))
    y = first - (top - pad)
    out.paste(image.crop((0, first, w, last)), (pad, y))
    if y > 0:
        out.paste(image.crop((0, 0, w, 1)).resize((w, y), nearest), (pad, 0))
    below = out.height - (y + last - first)
    if below > 0:
        out.paste(image.crop((0, h - 1, w, h)).resize((w, below), nearest), (pad, out.height - below))
    out.paste(out.crop((pad, 0, pad + 1, out.height)).resize((pad, out.height), nearest), (0, 0))
    out.paste(
        out.crop((pad + w - 1, 0, pad + w, out.height)).resize((pad, out.height), nearest), (pad + w, 0)
    )
    return out


def run_banded(image: Image.Image, banded: Banded, on_band: Callable[[float], None]) -> Image.Image:
    """Apply ``banded`` band by band, calling ``on_band(fraction_done)`` before each band."""
    alpha = image.getchannel("A") if image.mode == "RGBA" and not banded.alpha else None
    source = image.convert("RGB") if alpha is not None else image
    w, pad = source.width, banded.pad
    out = Image.new(source.mode, source.size)
    ranges = band_ranges(source.height, banded.align)
    for k, (top, bottom) in enumerate(ranges):
        on_band(k / len(ranges))
        if banded.replicate:
            region, dx, dy = _padded_band(source, top, bottom, pad), pad, pad
        else:
            first = max(0, top - pad)
            region, dx, dy = source.crop((0, first, w, min(source.height, bottom + pad))), 0, top - first
        result = banded.fn(region, (top, bottom))
        out.paste(result.crop((dx, dy, dx + w, dy + bottom - top)), (0, top))
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _blur_pad(radius: float) -> int:
    # Pillow's Gaussian blur is three box blurs of radius ≈ ``radius``; each reaches one pixel further.
    return 3 * math.ceil(radius) + 4


_SEPIA = (0.393, 0.769, 0.189, 0, 0.349, 0.686, 0.168, 0, 0.272, 0.534, 0.131, 0)
_SKETCH_PAPER = [215 + v * 40 // 255 for v in range(256)]


def _sketch_fn(lines: float = 1.0) -> BandFn:
    """Pencil lines on paper; ``lines`` times as dark as the plain sketch's (a seeded variant)."""
    table = [255 - min(255, round(v * 6 * lines)) for v in range(256)]

    def fn(band: Image.Image, _rows: tuple[int, int]) -> Image.Image:
        gray = ImageOps.grayscale(band)
        strokes = ImageChops.difference(gray, gray.filter(ImageFilter.GaussianBlur(2))).point(table)
        return ImageChops.multiply(strokes, gray.point(_SKETCH_PAPER)).convert("RGB")

    return fn


def _prep_sketch(_image: Image.Image, op: Operation) -> Banded:
    return Banded(_sketch_fn(dict(op.params).get("lines", 1.0)), pad=_blur_pad(2))


def _prep_grayscale(_image: Image.Image, op: Operation) -> Banded:
    """Plain luma grey, or (a seeded variant) grey mixed from the channels in the op's weights."""
    if not op.params:
        return Banded(lambda b, _r: ImageOps.grayscale(b).convert("RGB"))
    matrix = (op.param("red"), op.param("green"), op.param("blue"), 0.0)
    return Banded(lambda b, _r: b.convert("L", matrix).convert("RGB"))


def _sepia_matrix(strength: float) -> tuple[float, ...]:
    """The sepia tint ``strength`` times as strong: 0 is plain luma grey, 1 the usual sepia."""
    grey = (0.299, 0.587, 0.114, 0) * 3
    return tuple(g + strength * (s - g) for g, s in zip(grey, _SEPIA, strict=True))


def _prep_sepia(_image: Image.Image, op: Operation) -> Banded:
    strength = dict(op.params).get("strength")
    matrix = _SEPIA if strength is None else _sepia_matrix(strength)
    return Banded(lambda b, _r: b.convert("RGB", matrix))


def _prep_edges(_image: Image.Image, op: Operation) -> Banded:
    strength = dict(op.params).get("strength")
    if strength is None:
        return Banded(lambda b, _r: b.filter(ImageFilter.FIND_EDGES), pad=2, replicate=True)
    lut = [min(255, round(v * strength)) for v in range(256)] * 3
    return Banded(lambda b, _r: b.filter(ImageFilter.FIND_EDGES).point(lut), pad=2, replicate=True)


def _pixelate_fn(block: int) -> BandFn:
    def fn(band: Image.Image, _rows: tuple[int, int]) -> Image.Image:
        small = band.reduce(block)  # box average; partial blocks at the edges average what is there
        big = small.resize((small.width * block, small.height * block), Image.Resampling.NEAREST)
        return big.crop((0, 0, band.width, band.height))

    return fn


@functools.lru_cache(maxsize=16)
def _vignette_mask(strength: float) -> Image.Image:
    """128×128 multiplier (255 = untouched): flat in the middle, easing down towards the corners."""
    values = []
    for y in range(128):
        for x in range(128):
            d = math.hypot((x + 0.5) / 64 - 1, (y + 0.5) / 64 - 1) / math.sqrt(2)
            t = _clamp((d - 0.35) / 0.65, 0, 1)
            values.append(round(255 * (1 - strength * t * t * (3 - 2 * t))))
    mask = Image.new("L", (128, 128))
    mask.putdata(values)
    return mask


def _prep_vignette(image: Image.Image, op: Operation) -> Banded:
    mask = _vignette_mask(op.param("strength")).resize(image.size, Image.Resampling.BILINEAR).convert("RGB")
    return Banded(lambda band, rows: ImageChops.multiply(band, mask.crop((0, rows[0], image.width, rows[1]))))


def _prep_contrast(image: Image.Image, op: Operation) -> Banded:
    # ImageEnhance.Contrast pivots on the mean of whatever it is given; a band's own mean would
    # leave visible seams, so pivot on the whole image's mean.
    mean = round(ImageStat.Stat(ImageOps.grayscale(image.convert("RGB"))).mean[0])
    factor = op.param("factor")
    return Banded(lambda band, _r: Image.blend(Image.new("RGB", band.size, (mean,) * 3), band, factor))


def _prep_autocontrast(image: Image.Image, op: Operation) -> Banded:
    """Stretch each channel between its 0.5th and 99.5th percentile (or the op's ``clip`` percent,
    a seeded variant), measured on the whole image."""
    histogram = image.convert("RGB").histogram()
    clip = dict(op.params).get("clip")
    cutoff = image.width * image.height * (0.005 if clip is None else clip / 100)
    lut: list[int] = []
    for channel in range(3):
        counts = histogram[channel * 256 : channel * 256 + 256]
        low, high = 0, 255
        total = 0
        while low < 255 and total + counts[low] <= cutoff:
            total += counts[low]
            low += 1
        total = 0
        while high > 0 and total + counts[high] <= cutoff:
            total += counts[high]
            high -= 1
        span = max(1, high - low)
        lut.extend(round(_clamp((v - low) * 255 / span, 0, 255)) for v in range(256))
    return Banded(lambda band, _r: band.point(lut))


def _temperature_matrix(amount: float) -> tuple[float, ...]:
    if amount >= 0:
        return (1 + amount, 0, 0, 0, 0, 1 + amount / 4, 0, 0, 0, 0, 1 - amount, 0)
    return (1 + amount, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1 - amount, 0)


_PREPARE: dict[str, Callable[[Image.Image, Operation], Banded]] = {
    "grayscale": _prep_grayscale,
    "sepia": _prep_sepia,
    "blur": lambda _i, o: Banded(
        lambda b, _r: b.filter(ImageFilter.GaussianBlur(o.param("radius"))),
        pad=_blur_pad(o.param("radius")),
        alpha=True,
    ),
    "sharpen": lambda _i, o: Banded(
        lambda b, _r: b.filter(ImageFilter.UnsharpMask(2, round(o.param("percent")), 2)), pad=_blur_pad(2)
    ),
    "invert": lambda _i, _o: Banded(lambda b, _r: ImageOps.invert(b)),
    "brightness": lambda _i, o: Banded(lambda b, _r: ImageEnhance.Brightness(b).enhance(o.param("factor"))),
    "contrast": _prep_contrast,
    "saturation": lambda _i, o: Banded(lambda b, _r: ImageEnhance.Color(b).enhance(o.param("factor"))),
    "posterize": lambda _i, o: Banded(lambda b, _r: ImageOps.posterize(b, int(o.param("bits")))),
    "pixelate": lambda i, o: Banded(
        _pixelate_fn(int(min(o.param("block"), max(i.size)))),
        align=int(min(o.param("block"), max(i.size))),
        alpha=True,
    ),
    "vignette": _prep_vignette,
    "temperature": lambda _i, o: Banded(
        lambda b, _r: b.convert("RGB", _temperature_matrix(o.param("amount")))
    ),
    "edges": _prep_edges,
    "sketch": _prep_sketch,
    "emboss": lambda _i, _o: Banded(
        lambda b, _r: ImageOps.grayscale(b).filter(ImageFilter.EMBOSS).convert("RGB"), pad=2, replicate=True
    ),
    "autocontrast": _prep_autocontrast,
    "solarize": lambda _i, o: Banded(lambda b, _r: ImageOps.solarize(b, int(o.param("threshold")))),
}


def _natural_side(image: Image.Image, op: Operation) -> float:
    """The longest side ``op`` would produce with no limit; only rotate and resize grow an image."""
    w, h = image.size
    if op.name == "resize":
        return max(w, h) * op.param("percent") / 100
    if op.name == "rotate":
        angle = math.radians(op.param("degrees"))
        c, s = abs(math.cos(angle)), abs(math.sin(angle))
        return max(w * c + h * s, w * s + h * c)
    return max(w, h)


def _scaled(image: Image.Image, scale: float, resample: Image.Resampling) -> Image.Image:
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, resample)


def fit_within(image: Image.Image, side: int, resample: Image.Resampling) -> Image.Image:
    """``image`` scaled down (never up) so that its longest side is at most ``side``."""
    longest = max(image.size)
    return image if longest <= side else _scaled(image, side / longest, resample)


def _rotate_image(image: Image.Image, op: Operation, spec: QualitySpec) -> Image.Image:
    degrees = op.param("degrees") % 360  # clockwise
    exact = {
        0: None,
        90: Image.Transpose.ROTATE_270,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_90,
    }
    if degrees.is_integer() and int(degrees) in exact:
        method = exact[int(degrees)]
        return image.copy() if method is None else image.transpose(method)
    # Shrink before turning, so the oversized canvas is never allocated; the 2 px margin covers
    # Pillow rounding the expanded corners outwards.
    natural = _natural_side(image, op)
    if natural > MAX_OUTPUT_SIDE:
        image = _scaled(image, (MAX_OUTPUT_SIDE - 2) / natural, spec.resample)
    # rotate() has no LANCZOS; the expanded corners become transparent rather than an arbitrary colour.
    resample = Image.Resampling.BICUBIC if spec.resample == Image.Resampling.LANCZOS else spec.resample
    return image.convert("RGBA").rotate(-degrees, resample=resample, expand=True)


def _crop_square(image: Image.Image, _op: Operation, _spec: QualitySpec) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _resize_image(image: Image.Image, op: Operation, spec: QualitySpec) -> Image.Image:
    scale = min(op.param("percent") / 100, MAX_OUTPUT_SIDE / max(image.size))
    return _scaled(image, scale, spec.resample)


_GEOMETRY: dict[str, Callable[[Image.Image, Operation, QualitySpec], Image.Image]] = {
    "rotate": _rotate_image,
    "flip": lambda i, _o, _s: i.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "mirror": lambda i, _o, _s: i.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "crop_square": _crop_square,
    "resize": _resize_image,
}


def apply_operations(
    image: Image.Image,
    ops: Sequence[Operation],
    *,
    quality: Quality,
    on_progress: ProgressFn,
    should_stop: StopFn,
    on_note: NoteFn = lambda _note: None,
) -> Image.Image:
    """Apply ``ops`` in order at the quality's working resolution; the result is a new RGB/RGBA image.

    Progress goes to ``on_progress(fraction, message)`` before every band or step (fractions rise
    and reach 1.0 only once everything is done); ``OperationCancelled`` as soon as ``should_stop()``.
    No step leaves a side longer than ``MAX_OUTPUT_SIDE``; when one had to be scaled down to keep
    to that, ``on_note`` hears it once, in words for the user.
    """
    units = len(ops) + 1  # preparing the working image counts as one unit, like each operation

    def step(done: float, message: str) -> None:
        if should_stop():
            raise OperationCancelled
        on_progress(done / units, message)

    step(0, "Preparing image")
    work = to_working_resolution(normalise_mode(image), quality)
    if work is image:
        work = image.copy()  # never hand the caller's own object back
    spec = QUALITY_SPECS[quality]
    capped = False
    for index, op in enumerate(ops):
        message = f"{op.label} ({index + 1}/{len(ops)})"
        geometry = _GEOMETRY.get(op.name)
        if geometry is not None:
            grows_too_far = _natural_side(work, op) > MAX_OUTPUT_SIDE + 0.5
            if grows_too_far:
                message += f", scaled down to fit {MAX_OUTPUT_SIDE} px"
            step(index + 1, message)
            # The geometry functions keep to the limit themselves; this catches any rounding.
            work = fit_within(geometry(work, op, spec), MAX_OUTPUT_SIDE, spec.resample)
            if grows_too_far and not capped:
                capped = True
                on_note(
                    f"The result was scaled down to fit {MAX_OUTPUT_SIDE} px on its longest side, "
                    "the local engine's limit."
                )
        else:
            on_band = functools.partial(
                lambda base, msg, fraction: step(base + fraction, msg), index + 1, message
            )
            work = run_banded(work, _PREPARE[op.name](work, op), on_band)
    if should_stop():
        raise OperationCancelled
    on_progress(1.0, "Done")
    return work
