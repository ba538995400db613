"""The local engine's prompt language and the Pillow operations behind it.

Owns ``parse_prompt`` (prompt → ``Operation`` list, or ``UnknownPrompt``), ``understood_phrases``
(the help text) and ``apply_operations`` (working resolution per quality, banded processing with
real progress and cancellation). Pure and synchronous: no asyncio, no I/O.
Must not import nicegui or anything under ``imgedit.ui``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageEnhance, ImageFilter, ImageOps, ImageStat

from imgedit.errors import UnknownPrompt
from imgedit.models import Quality

ProgressFn = Callable[[float, str], None]
StopFn = Callable[[], bool]


class OperationCancelled(Exception):
    """``should_stop`` returned True; the work was abandoned and produced nothing."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One parsed step, e.g. ``Operation("blur", (("radius", 5.0),), "Blur (radius 5)")``."""

    name: str
    params: tuple[tuple[str, float], ...] = ()
    label: str = ""

    def param(self, key: str) -> float:
        return dict(self.params)[key]


def _op(name: str, label: str, **params: float) -> Operation:
    return Operation(name, tuple(sorted(params.items())), label)


# --- parsing -------------------------------------------------------------------------------------

_EXAMPLE = "make it sepia and add a vignette"
_PHRASES = (
    "black and white (grayscale, monochrome)",
    "sepia",
    "blur [radius]",
    "sharpen",
    "invert (negative)",
    "rotate [degrees | left | right]",
    "flip (vertical)",
    "mirror (horizontal)",
    "brighter / darker [percent]",
    "more / less contrast",
    "more / less colourful (saturate, desaturate)",
    "posterize [bits]",
    "pixelate [block size]",
    "vignette",
    "warmer / cooler",
    "edges",
    "sketch",
    "emboss",
    "crop square",
    "resize [percent] (half size, double size)",
    "auto contrast",
    "solarize",
)


def understood_phrases() -> list[str]:
    """What the local engine understands, for the error message and the UI's help text."""
    return list(_PHRASES)


def _explain() -> str:
    return f'The local engine understands: {", ".join(_PHRASES)}. Example: "{_EXAMPLE}".'


# Words that carry no meaning for the engine; removed before matching so "make it a bit
# sepia, please" reads as "sepia". "turn" survives when it starts a rotation ("turn it left").
_FILLERS = re.compile(
    r"\b(?:thanks|thank you|can you|could you|i want|i'd like|i would like|please"
    r"|make(?: it| the (?:image|picture|photo))?"
    r"|(?:a )?(?:little|tiny)(?: bit)?|a bit|a touch(?: of)?|slightly|somewhat|kind of"
    r"|(?:the|this|my) (?:image|picture|photo|pic)|image|picture|photo|add(?: an?| some)?"
    r"|apply(?: an?| some)?|use(?: an?)?|give(?: it)?(?: an?)?|turn(?: it)? into"
    r"|convert(?: it)?(?: to| into)?"
    r"|turn(?: it)?(?!\s+(?:it\s+)?(?:left|right|clockwise|counter|anti|ccw|cw|[-+]?\d))"
    r"|more|much|very|really|quite|way|it|an?|the|to|by|some|with|of|effect|filter|look(?:ing)?"
    r"|style|mode|tones?|version|also|do)\b"
)
_SPLIT = re.compile(r"\s*(?:[,;+&]|(?<!\d)\.|\.(?!\d)|\band then\b|\bthen\b|\band\b|\bplus\b)\s*")
_BLACK_AND_WHITE = re.compile(r"\bblack[\s-]*(?:and|&|n)[\s-]*white\b|\bb\s*[&/]\s*w\b", re.IGNORECASE)

_STRONG = r"strong(?:er|ly)?|heavy|heavily|intense(?:ly)?|big|huge|extra|super|lots?|hard"
_WEAK = r"light(?:ly)?|subtle|subtly|soft(?:ly)?|gentle|gently|small|mild(?:ly)?|faint"
_PRE = rf"(?:(?:(?P<pre_s>{_STRONG})|(?P<pre_w>{_WEAK}))\s+)?"
_POST = rf"(?:\s+(?:(?P<post_s>{_STRONG})|(?P<post_w>{_WEAK})))?"
_NUM = r"(?:\s*(?P<num>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>%|percent|px|pixels?|degrees?|deg|°|bits?|x|times)?)?"
_DIR = r"left|right|clockwise|cw|counter[- ]?clockwise|anti[- ]?clockwise|ccw"

_Builder = Callable[[re.Match[str]], Operation | None]


@dataclass(frozen=True, slots=True)
class _Rule:
    regex: re.Pattern[str]
    build: _Builder


def _rule(core: str, build: _Builder, *, tail: str = _NUM) -> _Rule:
    return _Rule(re.compile(f"{_PRE}(?:{core}){tail}{_POST}(?![a-z0-9])"), build)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _num(m: re.Match[str]) -> float | None:
    return float(m["num"]) if m["num"] is not None else None


def _pick(m: re.Match[str], normal: float, strong: float, weak: float) -> float:
    if m["pre_s"] or m["post_s"]:
        return strong
    return weak if m["pre_w"] or m["post_w"] else normal


def _amount(m: re.Match[str], normal: float, strong: float, weak: float, high: float) -> float:
    """A percentage from the clause, or the default picked by strength words."""
    n = _num(m)
    return _clamp(abs(n), 1, high) if n is not None else _pick(m, normal, strong, weak)


def _blur(m: re.Match[str]) -> Operation:
    n = _num(m)
    radius = _clamp(abs(n) if n is not None else _pick(m, 4, 10, 1.5), 0.3, 100)
    return _op("blur", f"Blur (radius {radius:g})", radius=radius)


def _sharpen(m: re.Match[str]) -> Operation:
    pct = _amount(m, 150, 300, 75, 500)
    return _op("sharpen", f"Sharpen ({pct:g}%)", percent=pct)


def _posterize(m: re.Match[str]) -> Operation:
    n = _num(m)
    bits = round(_clamp(n if n is not None else 3, 1, 7))
    return _op("posterize", f"Posterize ({bits} bits)", bits=bits)


def _pixelate(m: re.Match[str]) -> Operation:
    n = _num(m)
    block = round(_clamp(n if n is not None else _pick(m, 10, 20, 5), 2, 256))
    return _op("pixelate", f"Pixelate ({block} px blocks)", block=block)


def _vignette(m: re.Match[str]) -> Operation:
    pct = _amount(m, 50, 80, 30, 100)
    return _op("vignette", f"Vignette ({pct:g}%)", strength=pct / 100)


def _solarize(m: re.Match[str]) -> Operation:
    n = _num(m)
    threshold = round(_clamp(n if n is not None else 128, 0, 255))
    return _op("solarize", f"Solarize (threshold {threshold})", threshold=threshold)


def _rotate(m: re.Match[str]) -> Operation | None:
    direction = m["dir1"] or m["dir2"] or ""
    n = _num(m)
    if n is None and not direction and not m["verb"].startswith("rot"):
        return None  # a bare "turn" is not a rotation
    degrees = 90.0 if n is None else n
    if direction.startswith(("left", "counter", "anti", "ccw")):
        degrees = -degrees
    degrees %= 360
    if degrees <= 180:
        return _op("rotate", f"Rotate ({degrees:g}° clockwise)", degrees=degrees)
    return _op("rotate", f"Rotate ({360 - degrees:g}° counter-clockwise)", degrees=degrees)


def _brightness(m: re.Match[str]) -> Operation:
    pct = _amount(m, 25, 50, 10, 300)
    if m["down"] or (_num(m) or 0) < 0:
        pct = min(pct, 90)
        return _op("brightness", f"Darker (-{pct:g}%)", factor=1 - pct / 100)
    return _op("brightness", f"Brighter (+{pct:g}%)", factor=1 + pct / 100)


def _contrast(m: re.Match[str]) -> Operation:
    pct = _amount(m, 40, 80, 20, 300)
    if m["down"] or (_num(m) or 0) < 0:
        pct = min(pct, 90)
        return _op("contrast", f"Less contrast (-{pct:g}%)", factor=1 - pct / 100)
    return _op("contrast", f"More contrast (+{pct:g}%)", factor=1 + pct / 100)


def _saturation(m: re.Match[str]) -> Operation:
    if m["down"]:
        pct = min(_amount(m, 50, 80, 25, 100), 100)
        return _op("saturation", f"Less colourful (-{pct:g}%)", factor=1 - pct / 100)
    pct = _amount(m, 60, 120, 25, 300)
    return _op("saturation", f"More colourful (+{pct:g}%)", factor=1 + pct / 100)


def _temperature(m: re.Match[str]) -> Operation:
    pct = _amount(m, 15, 30, 7, 60)
    if m["cool"]:
        return _op("temperature", f"Cooler ({pct:g}%)", amount=-pct / 100)
    return _op("temperature", f"Warmer ({pct:g}%)", amount=pct / 100)


def _resize(m: re.Match[str]) -> Operation | None:
    n = _num(m)
    if n is not None:
        pct = n * 100 if m["unit"] in ("x", "times") else n
    elif m["half"] or m["double"]:
        pct = 50.0 if m["half"] else 200.0
    else:
        return None
    pct = _clamp(pct, 1, 800)
    return _op("resize", f"Resize ({pct:g}%)", percent=pct)


def _fixed(name: str, label: str) -> _Builder:
    return lambda _m: _op(name, label)


_RULES: tuple[_Rule, ...] = (
    _rule(
        r"black_and_white|gr[ae]y(?:\s*scale(?:d)?)?|monochrome|mono|colou?rless",
        _fixed("grayscale", "Black and white"),
    ),
    _rule(r"sepia|vintage|antique|old(?:[- ]fashioned)?", _fixed("sepia", "Sepia")),
    _rule(
        r"blur(?:ry|red)?(?:\s+radius)?|soften|smooth(?:en)?|defocus(?:ed)?|out focus|gaussian(?: blur)?",
        _blur,
    ),
    _rule(
        r"sharpen(?:ed)?|sharper|sharp|crisp(?:er)?|unsharp(?: mask)?|enhance details?|details?",
        _sharpen,
    ),
    _rule(
        r"invert(?:ed)? colou?rs|reverse colou?rs|invert(?:ed)?|negative|inverse", _fixed("invert", "Invert")
    ),
    _rule(
        rf"(?P<verb>rotate[d]?|rotation|spin|turn(?: it)?)(?:\s+(?P<dir1>{_DIR}))?{_NUM}"
        rf"(?:\s+(?P<dir2>{_DIR}))?",
        _rotate,
        tail="",
    ),
    _rule(r"upside down", lambda _m: _op("rotate", "Rotate (180° clockwise)", degrees=180.0)),
    _rule(
        r"flip(?:ped)?(?:\s+(?:vertical(?:ly)?|upside down|top bottom|over))?|vertical(?:ly)? flip(?:ped)?",
        _fixed("flip", "Flip vertical"),
    ),
    _rule(
        r"mirror(?:ed)?(?:\s+horizontal(?:ly)?)?|flip(?:ped)?\s+(?:horizontal(?:ly)?|left right|sideways)"
        r"|horizontal(?:ly)? flip(?:ped)?",
        _fixed("mirror", "Mirror horizontal"),
    ),
    _rule(
        r"(?P<up>bright(?:en|er|ness)?|light(?:en|er)|less dark)"
        r"|(?P<down>dark(?:en|er)?|dim(?:mer)?|less bright)",
        _brightness,
    ),
    _rule(
        r"(?:(?P<down>less|lower|low|reduced?|decreased?|softer|weaker)\s+)?"
        r"(?:(?:high(?:er)?|increased?|boost(?:ed)?|punchy)\s+)?contrast(?:y)?|(?P<flat>flat(?:ter|ten)?)",
        lambda m: _contrast(m) if not m["flat"] else _op("contrast", "Less contrast (-40%)", factor=0.6),
    ),
    _rule(
        r"(?P<up>saturate[d]?|saturation|colou?rful|vivid|vibrant|boost(?:ed)? colou?rs?"
        r"|rich(?:er)? colou?rs?)"
        r"|(?P<down>desaturate[d]?|unsaturated|less (?:colou?rful|saturated|saturation|vivid|vibrant)"
        r"|muted|washed[- ]out|faded|dull(?:er)?)",
        _saturation,
    ),
    _rule(
        r"posteri[sz]e[d]?|posteri[sz]ation|poster|reduce colou?rs|fewer colou?rs",
        _posterize,
    ),
    _rule(
        r"pixel(?:ate[d]?|i[sz]e[d]?| art)?|mosaic|blocky",
        _pixelate,
    ),
    _rule(
        r"vignett(?:e|ing)|dark(?:en(?:ed)?)? (?:corners|edges|borders)",
        _vignette,
    ),
    _rule(r"(?P<warm>warm(?:er|th)?|golden)|(?P<cool>cool(?:er)?|cold(?:er)?|icy|chill(?:y)?)", _temperature),
    _rule(r"(?:find |detect )?edges?(?: detect(?:ion|ed)?)?|outlines?|contours?", _fixed("edges", "Edges")),
    _rule(
        r"sketch(?:y|ed)?|pencil(?: sketch| drawing)?|(?:line )?drawing|charcoal", _fixed("sketch", "Sketch")
    ),
    _rule(r"emboss(?:ed)?|relief|engraved?|stamped", _fixed("emboss", "Emboss")),
    _rule(
        r"crop(?:ped)?(?: (?:square|cent(?:er|re)|middle))*|square(?: crop(?:ped)?)?|cent(?:er|re) crop",
        _fixed("crop_square", "Crop square"),
    ),
    _rule(
        r"(?:resize[d]?|re-?scale[d]?|scale[d]?|zoom)|(?P<half>half(?: size)?|halve(?: size)?|smaller)"
        r"|(?P<double>double(?: size)?|twice (?:as )?(?:big|large)|bigger|larger|enlarge[d]?)",
        _resize,
    ),
    _rule(
        r"auto[- ]?(?:contrast|levels?|enhance|fix)|normali[sz]e[d]?|enhance",
        _fixed("autocontrast", "Auto contrast"),
    ),
    _rule(
        r"solari[sz]e[d]?|solari[sz]ation",
        _solarize,
    ),
)


def _parse_clause(text: str) -> list[Operation] | None:
    """Longest match wins at each position, so "flip horizontally" is a mirror, not a flip."""
    ops: list[Operation] = []
    rest = text
    while rest:
        best: tuple[int, Operation] | None = None
        for rule in _RULES:
            m = rule.regex.match(rest)
            if m and (best is None or m.end() > best[0]):
                op = rule.build(m)
                if op is not None:
                    best = (m.end(), op)
        if best is None:
            return None
        ops.append(best[1])
        rest = rest[best[0] :].strip()
    return ops


def parse_prompt(prompt: str) -> list[Operation]:
    """The operations a prompt asks for, in order; ``UnknownPrompt`` if any clause is not understood."""
    if not prompt.strip():
        raise UnknownPrompt(f"The prompt is empty. {_explain()}")
    ops: list[Operation] = []
    for clause in _SPLIT.split(_BLACK_AND_WHITE.sub(" black_and_white ", prompt)):
        original = " ".join(clause.split())
        text = " ".join(_FILLERS.sub(" ", original.lower().replace("’", "'")).split())
        if not text:
            continue
        found = _parse_clause(text)
        if found is None:
            raise UnknownPrompt(f'I don\'t understand "{original}". {_explain()}')
        ops.extend(found)
    if not ops:
        raise UnknownPrompt(f'I don\'t understand "{" ".join(prompt.split())}". {_explain()}')
    return ops


# --- applying ------------------------------------------------------------------------------------


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
    """RGB, or RGBA when the source has transparency; every operation works on these two."""
    if image.mode in ("RGB", "RGBA"):
        return image
    if image.mode in ("LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    return image.convert("RGB")


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


def _blur_pad(radius: float) -> int:
    # Pillow's Gaussian blur is three box blurs of radius ≈ ``radius``; each reaches one pixel further.
    return 3 * math.ceil(radius) + 4


_SEPIA = (0.393, 0.769, 0.189, 0, 0.349, 0.686, 0.168, 0, 0.272, 0.534, 0.131, 0)
_SKETCH_LINES = [255 - min(255, v * 6) for v in range(256)]
_SKETCH_PAPER = [215 + v * 40 // 255 for v in range(256)]


def _sketch(band: Image.Image, _rows: tuple[int, int]) -> Image.Image:
    gray = ImageOps.grayscale(band)
    lines = ImageChops.difference(gray, gray.filter(ImageFilter.GaussianBlur(2))).point(_SKETCH_LINES)
    return ImageChops.multiply(lines, gray.point(_SKETCH_PAPER)).convert("RGB")


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


def _prep_autocontrast(image: Image.Image, _op: Operation) -> Banded:
    """Stretch each channel between its 0.5th and 99.5th percentile, measured on the whole image."""
    histogram = image.convert("RGB").histogram()
    cutoff = image.width * image.height * 0.005
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
    "grayscale": lambda _i, _o: Banded(lambda b, _r: ImageOps.grayscale(b).convert("RGB")),
    "sepia": lambda _i, _o: Banded(lambda b, _r: b.convert("RGB", _SEPIA)),
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
    "edges": lambda _i, _o: Banded(lambda b, _r: b.filter(ImageFilter.FIND_EDGES), pad=2, replicate=True),
    "sketch": lambda _i, _o: Banded(_sketch, pad=_blur_pad(2)),
    "emboss": lambda _i, _o: Banded(
        lambda b, _r: ImageOps.grayscale(b).filter(ImageFilter.EMBOSS).convert("RGB"), pad=2, replicate=True
    ),
    "autocontrast": _prep_autocontrast,
    "solarize": lambda _i, o: Banded(lambda b, _r: ImageOps.solarize(b, int(o.param("threshold")))),
}


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
    # rotate() has no LANCZOS; the expanded corners become transparent rather than an arbitrary colour.
    resample = Image.Resampling.BICUBIC if spec.resample == Image.Resampling.LANCZOS else spec.resample
    return image.convert("RGBA").rotate(-degrees, resample=resample, expand=True)


def _crop_square(image: Image.Image, _op: Operation, _spec: QualitySpec) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _resize_image(image: Image.Image, op: Operation, spec: QualitySpec) -> Image.Image:
    scale = op.param("percent") / 100
    scale = min(scale, MAX_OUTPUT_SIDE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, spec.resample)


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
) -> Image.Image:
    """Apply ``ops`` in order at the quality's working resolution; the result is a new RGB/RGBA image.

    Progress goes to ``on_progress(fraction, message)`` before every band or step (fractions rise
    and reach 1.0 only once everything is done); ``OperationCancelled`` as soon as ``should_stop()``.
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
    for index, op in enumerate(ops):
        message = f"{op.label} ({index + 1}/{len(ops)})"
        geometry = _GEOMETRY.get(op.name)
        if geometry is not None:
            step(index + 1, message)
            work = geometry(work, op, spec)
        else:
            on_band = functools.partial(
                lambda base, msg, fraction: step(base + fraction, msg), index + 1, message
            )
            work = run_banded(work, _PREPARE[op.name](work, op), on_band)
    if should_stop():
        raise OperationCancelled
    on_progress(1.0, "Done")
    return work
