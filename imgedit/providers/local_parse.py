"""The local engine's prompt language: prompt → ``Operation`` list.

Owns ``Operation`` (one parsed step), ``parse_prompt`` (prompt → ``Operation`` list, or
``UnknownPrompt``; at most ``MAX_OPERATIONS``; letter case ignored), ``understood_phrases``
(the help text) and ``vary`` (a seeded variant of parsed operations, for "Variations" and
"Run again"). Pure and synchronous: no asyncio,
no I/O, no Pillow. Must not import nicegui or anything under ``imgedit.ui``.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from imgedit.errors import InvalidRequest, UnknownPrompt


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


MAX_OPERATIONS = 24
"""Steps one prompt may ask for: each costs a pass over the image, so a pasted wall of clauses must
not hold a worker for minutes."""

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
    r"|style|mode|tones?|version|also|do)\b",
    re.IGNORECASE,
)
# Case-insensitive like every pattern here: "SePiA AnD ViGnEtTe" is two clauses, as typed in
# any case. Clauses keep the user's own text, so a message quotes what they wrote.
_SPLIT = re.compile(
    r"\s*(?:[,;+&]|(?<!\d)\.|\.(?!\d)|\band then\b|\bthen\b|\band\b|\bplus\b)\s*", re.IGNORECASE
)
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
    pattern: str
    build: _Builder

    @property
    def regex(self) -> re.Pattern[str]:
        """Compiled on first use: compiling every rule at import cost a tenth of a second of
        every start-up, before the first prompt."""
        return _compiled(self.pattern)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _rule(core: str, build: _Builder, *, tail: str = _NUM) -> _Rule:
    return _Rule(f"{_PRE}(?:{core}){tail}{_POST}(?![a-z0-9])", build)


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
    """The operations a prompt asks for, in order, in any letter case.

    ``UnknownPrompt`` if any clause is not understood; ``InvalidRequest`` if it asks for more than
    ``MAX_OPERATIONS`` steps (found out before the rest of a long prompt is parsed).
    """
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
        if len(ops) > MAX_OPERATIONS:
            raise InvalidRequest(
                f"The prompt asks for more than {MAX_OPERATIONS} steps; the local engine does at most "
                f"{MAX_OPERATIONS} steps in one edit. Split it into several edits."
            )
    if not ops:
        raise UnknownPrompt(f'I don\'t understand "{" ".join(prompt.split())}". {_explain()}')
    return ops


# --- seeded variants -----------------------------------------------------------------------------

_GOLDEN = 0x9E3779B9
"""2**32 / the golden ratio: seed s moves an operation's position by s × 0.618… (mod 1), so any
two of the seeds s, s+1, s+2 land at least 0.236 apart and their variants visibly differ."""
_LOW, _HIGH = 0.7, 1.3
"""The seeded factor around 1 applied to an operation's amount."""
_SIGN_CAPS: dict[str, tuple[tuple[str, float], tuple[str, float]]] = {
    # name: ((label when the factor is above 1, cap), (label when below 1, cap))
    "brightness": (("Brighter (+{}%)", 300), ("Darker (-{}%)", 90)),
    "contrast": (("More contrast (+{}%)", 300), ("Less contrast (-{}%)", 90)),
    "saturation": (("More colourful (+{}%)", 300), ("Less colourful (-{}%)", 100)),
}
_LUMA = (0.299, 0.587, 0.114)


def _position(seed: int, index: int, name: str) -> float:
    """Where in [0, 1) the ``index``-th operation of a prompt sits for ``seed``: the same for the
    same seed, every time and in every process (no ``hash()``); each operation of a prompt has
    its own phase, so they do not all move in lockstep."""
    phase = random.Random(f"{index}:{name}").random()
    return (phase + (seed * _GOLDEN) % 2**32 / 2**32) % 1.0


def _factor_op(op: Operation, k: float) -> Operation:
    """Brightness, contrast, saturation: the amount away from 1 scaled by ``k``, same direction."""
    factor = op.param("factor")
    (up, up_cap), (down, down_cap) = _SIGN_CAPS[op.name]
    pct = round(_clamp(abs(factor - 1) * 100 * k, 1, up_cap if factor >= 1 else down_cap))
    if factor >= 1:
        return _op(op.name, up.format(pct), factor=1 + pct / 100)
    return _op(op.name, down.format(pct), factor=1 - pct / 100)


def _grey_mix(u: float) -> Operation:
    """Black and white seen through a coloured filter of hue ``u``: the channels' weights in the
    grey change (a red filter lightens reds and darkens blues), the result stays neutral grey."""
    angle = 2 * math.pi * u
    raw = [w * (1 + 0.8 * math.cos(angle - 2 * math.pi * c / 3)) for c, w in enumerate(_LUMA)]
    red, green = (round(w / sum(raw), 2) for w in raw[:2])
    blue = round(1 - red - green, 2)
    label = f"Black and white (red {red * 100:.0f}%, green {green * 100:.0f}%, blue {blue * 100:.0f}%)"
    return _op("grayscale", label, red=red, green=green, blue=blue)


def _varied(op: Operation, seed: int, index: int) -> Operation:
    u = _position(seed, index, op.name)
    k = _LOW + (_HIGH - _LOW) * u
    name = op.name
    if name == "blur":  # a blur's radius is seen on a log scale: a wider spread reads as a variant
        radius = round(_clamp(op.param("radius") * (0.6 + 0.9 * u), 0.3, 100), 1)
        return _op(name, f"Blur (radius {radius:g})", radius=radius)
    if name == "sharpen":
        pct = round(_clamp(op.param("percent") * k, 1, 500))
        return _op(name, f"Sharpen ({pct}%)", percent=pct)
    if name in _SIGN_CAPS:
        return _factor_op(op, k)
    if name == "temperature":
        amount = op.param("amount")
        pct = round(_clamp(abs(amount) * 100 * k, 1, 60))
        if amount >= 0:
            return _op(name, f"Warmer ({pct}%)", amount=pct / 100)
        return _op(name, f"Cooler ({pct}%)", amount=-pct / 100)
    if name == "vignette":
        pct = round(_clamp(op.param("strength") * 100 * k, 1, 100))
        return _op(name, f"Vignette ({pct}%)", strength=pct / 100)
    if name == "posterize":  # one bit fewer, the same, one more: in turn, so s, s+1, s+2 differ
        bits = round(_clamp(op.param("bits") + (seed + index) % 3 - 1, 1, 7))
        return _op(name, f"Posterize ({bits} bits)", bits=bits)
    if name == "pixelate":
        block = round(_clamp(op.param("block") * k, 2, 256))
        return _op(name, f"Pixelate ({block} px blocks)", block=block)
    if name == "solarize":
        threshold = round(_clamp(op.param("threshold") * k, 0, 255))
        return _op(name, f"Solarize (threshold {threshold})", threshold=threshold)
    if name == "grayscale":
        return _grey_mix(u)
    if name == "sepia":
        pct = round(100 * k)
        return _op(name, f"Sepia (strength {pct}%)", strength=pct / 100)
    if name == "edges":
        pct = round(100 * k)
        return _op(name, f"Edges (strength {pct}%)", strength=pct / 100)
    if name == "sketch":
        pct = round(100 * k)
        return _op(name, f"Sketch (lines {pct}%)", lines=pct / 100)
    if name == "autocontrast":
        clip = round(0.2 + 1.3 * u, 1)  # the share of darkest and lightest pixels clipped; 0.5 unvaried
        return _op(name, f"Auto contrast (clip {clip:g}%)", clip=clip)
    # Geometry (rotate, flip, mirror, crop, resize) is an exact request; invert and emboss have
    # no amount to vary.
    return op


def vary(ops: Sequence[Operation], seed: int) -> list[Operation]:
    """A seeded variant of ``ops``: the same steps in the same order with their amounts (blur
    radius, brightness, vignette strength, sepia strength, the grey mix, …) moved by a factor
    between 0.7 and 1.3 picked by ``seed`` (a blur's radius 0.6 to 1.5, posterize one bit either
    way), within each amount's own limits, and labels saying
    the amounts used. The same seed always gives the same operations; geometry never varies."""
    return [_varied(op, seed, index) for index, op in enumerate(ops)]
