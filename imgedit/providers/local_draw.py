"""Deterministic text-to-image drawing for the local engine.

Owns ``draw_from_prompt``: reads colours, palettes, shapes and gradients named in a prompt and
draws them with Pillow, seeded by a SHA-256 of the normalised prompt, so the same prompt and
size always give the same pixels. Unknown words are ignored; it never fails on wording.
Pure and synchronous. Must not import nicegui or anything under ``imgedit.ui``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from imgedit.models import Quality
from imgedit.providers.local_ops import OperationCancelled, ProgressFn, StopFn

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (214, 40, 40), "crimson": (170, 20, 50), "orange": (247, 127, 0), "yellow": (252, 205, 40),
    "gold": (230, 180, 50), "green": (50, 160, 70), "lime": (150, 220, 60), "olive": (120, 130, 40),
    "teal": (0, 128, 128), "turquoise": (50, 200, 190), "cyan": (40, 200, 230), "blue": (30, 90, 200),
    "navy": (20, 30, 90), "indigo": (75, 40, 150), "purple": (120, 50, 170), "violet": (150, 90, 210),
    "magenta": (210, 40, 150), "pink": (245, 130, 180), "coral": (250, 120, 100), "brown": (120, 75, 40),
    "beige": (225, 205, 170), "white": (245, 245, 240), "black": (15, 15, 20), "gray": (128, 128, 128),
    "grey": (128, 128, 128), "silver": (190, 195, 200), "mint": (160, 230, 190), "lavender": (190, 170, 230),
}  # fmt: skip

PALETTES: dict[str, tuple[RGB, ...]] = {
    "sunset": ((43, 29, 80), (128, 45, 110), (232, 93, 74), (252, 176, 69), (255, 221, 140)),
    "ocean": ((200, 235, 250), (110, 190, 230), (30, 120, 180), (10, 60, 120), (5, 30, 70)),
    "forest": ((215, 235, 200), (140, 190, 120), (60, 120, 70), (25, 70, 45), (12, 40, 28)),
    "night": ((5, 8, 30), (15, 25, 70), (40, 40, 110), (75, 60, 130)),
    "desert": ((250, 225, 180), (240, 180, 110), (210, 120, 70), (150, 70, 50)),
    "candy": ((255, 200, 220), (220, 200, 255), (190, 230, 255), (200, 255, 230)),
    "autumn": ((250, 210, 120), (240, 160, 50), (200, 90, 30), (120, 40, 20)),
}
_PALETTE_WORDS = {
    "sunrise": "sunset", "dusk": "sunset", "evening": "sunset", "sea": "ocean", "water": "ocean",
    "underwater": "ocean", "woods": "forest", "trees": "forest", "jungle": "forest", "nature": "forest",
    "midnight": "night", "starry": "night", "sand": "desert", "dunes": "desert", "pastel": "candy",
    "fall": "autumn", "leaves": "autumn",
}  # fmt: skip
_SHAPE_WORDS = {
    "circle": "circle", "disc": "circle", "disk": "circle", "ball": "circle", "bubble": "circle",
    "square": "square", "box": "square", "rectangle": "square", "triangle": "triangle", "star": "star",
    "stripes": "stripes", "stripe": "stripes", "striped": "stripes", "wave": "waves", "waves": "waves",
    "mountain": "mountains", "mountains": "mountains", "hills": "mountains", "peaks": "mountains",
    "sun": "sun", "moon": "moon", "grid": "grid", "dots": "dots", "dot": "dots", "spots": "dots",
    "polka": "dots",
}  # fmt: skip
_NUMBERS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_OBJECTS = ("circle", "square", "triangle", "star")
_SCENERY = ("stripes", "grid", "sun", "moon", "mountains", "waves", "dots")  # back to front


@dataclass
class _Shape:
    kind: str
    plural: bool
    colours: list[RGB] = field(default_factory=list)
    count: int | None = None
    scale: float = 1.0


@dataclass
class _Plan:
    palette: tuple[RGB, ...]
    background: list[RGB]
    radial: bool
    shapes: list[_Shape]
    night: bool


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def _luma(c: RGB) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _singular(word: str) -> tuple[str, bool]:
    if word in _SHAPE_WORDS:
        return word, word.endswith("s") and word not in ("stripes", "waves", "mountains", "hills", "peaks")
    if word.endswith("es") and word[:-2] in _SHAPE_WORDS:
        return word[:-2], True
    if word.endswith("s") and word[:-1] in _SHAPE_WORDS:
        return word[:-1], True
    return word, False


def _colour_at(words: Sequence[str], i: int) -> RGB | None:
    base = COLOURS.get(words[i])
    if base is None or i == 0:
        return base
    if words[i - 1] in ("dark", "deep"):
        return _mix(base, (0, 0, 0), 0.45)
    if words[i - 1] in ("light", "pale", "soft"):
        return _mix(base, (255, 255, 255), 0.45)
    return base


def _plan(words: Sequence[str], rng: random.Random) -> _Plan:
    palette_name = next(
        (w if w in PALETTES else _PALETTE_WORDS[w] for w in words if w in PALETTES or w in _PALETTE_WORDS),
        None,
    )
    background: list[RGB] = []
    shapes: list[_Shape] = []
    free: list[RGB] = []  # colours not tied to a shape or the background
    pending: list[RGB] = []
    count: int | None = None
    scale = 1.0
    after_on = False
    for i, word in enumerate(words):
        colour = _colour_at(words, i)
        stem, plural = _singular(word)
        if colour is not None:
            (background if after_on else pending).append(colour)
        elif word in ("background", "backdrop", "sky") and pending:
            background.extend(pending)
            pending = []
        elif stem in _SHAPE_WORDS:
            kind = _SHAPE_WORDS[stem]
            shapes.append(_Shape(kind, plural or (count or 1) > 1, pending, count, scale))
            pending, count, scale, after_on = [], None, 1.0, False
        elif word.isdigit() or word in _NUMBERS:
            count = min(40, int(word)) if word.isdigit() else _NUMBERS[word]
        elif word in ("big", "large", "huge", "giant"):
            scale = 1.25
        elif word in ("small", "tiny", "little"):
            scale = 0.6
        elif word in ("on", "over", "against", "behind"):
            free.extend(pending)
            pending, after_on = [], True
    free.extend(pending)
    named = background + free + [c for s in shapes for c in s.colours]
    if palette_name is not None:
        palette = PALETTES[palette_name]
    elif named:
        first = named[0]
        palette = (_mix(first, (255, 255, 255), 0.55), *dict.fromkeys(named), _mix(first, (0, 0, 0), 0.6))
    else:
        palette = PALETTES[rng.choice(sorted(PALETTES))]
    if not background:
        background = free if ("gradient" in words or "radial" in words) and len(free) >= 2 else []
    if not background and not free and palette_name is None and named:
        # Only the shapes have colours: a backdrop of their own hue would swallow them.
        first = named[0]
        ink = (12, 14, 32) if _luma(first) > 140 else (255, 255, 255)
        background = [_mix(first, ink, 0.9), _mix(first, ink, 0.72)]
    if len(background) == 1:  # one colour reads flat; give it a gentle light-to-dark fall-off
        background = [_mix(background[0], (255, 255, 255), 0.15), _mix(background[0], (0, 0, 0), 0.25)]
    if not shapes:
        shapes = _abstract(rng, bool(named) or palette_name is not None)
    return _Plan(palette, background or list(palette), "radial" in words, shapes, palette_name == "night")


def _abstract(rng: random.Random, themed: bool) -> list[_Shape]:
    """A seeded composition for prompts that name no shapes, so every prompt gives a picture."""
    pool = ["circle", "waves", "mountains", "dots", "stripes", "star", "square", "triangle"]
    picks = rng.sample(pool, 2 if themed else 3)
    return [_Shape(kind, kind in _OBJECTS, count=rng.randint(4, 9)) for kind in picks]


def _gradient(size: tuple[int, int], stops: Sequence[RGB], radial: bool) -> Image.Image:
    lut: list[list[int]] = [[], [], []]
    for v in range(256):
        pos = v / 255 * (len(stops) - 1)
        k = min(int(pos), len(stops) - 2) if len(stops) > 1 else 0
        colour = _mix(stops[k], stops[min(k + 1, len(stops) - 1)], pos - k)
        for channel in range(3):
            lut[channel].append(colour[channel])
    bilinear = Image.Resampling.BILINEAR
    if radial:  # a circle, not an ellipse: take the middle of the square gradient that covers the image
        fx, fy = 128 * size[0] / max(size), 128 * size[1] / max(size)
        mask = Image.radial_gradient("L").resize(size, bilinear, box=(128 - fx, 128 - fy, 128 + fx, 128 + fy))
    else:  # one column, widened at the end: resizing the full canvas costs several times more
        column = Image.linear_gradient("L").resize((1, size[1]), bilinear)
        return Image.merge("RGB", [column.point(lut[c]) for c in range(3)]).resize(
            size, Image.Resampling.NEAREST
        )
    return Image.merge("RGB", [mask.point(lut[c]) for c in range(3)])


def _polygon(
    cx: float, cy: float, r: float, points: int, turn: float, inner: float = 1.0
) -> list[tuple[float, float]]:
    out = []
    for k in range(points * (2 if inner < 1 else 1)):
        radius = r if inner >= 1 or k % 2 == 0 else r * inner
        angle = turn + k * math.pi / (points if inner < 1 else points / 2)
        out.append((cx + radius * math.sin(angle), cy - radius * math.cos(angle)))
    return out


def _draw_object(
    draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, fill: tuple[int, ...], turn: float
) -> None:
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif kind == "square":
        draw.polygon(_polygon(cx, cy, r * 1.25, 4, turn + math.pi / 4), fill=fill)
    elif kind == "triangle":
        draw.polygon(_polygon(cx, cy, r * 1.2, 3, turn), fill=fill)
    else:
        draw.polygon(_polygon(cx, cy, r * 1.2, 5, turn, inner=0.45), fill=fill)


Layer = tuple[str, Callable[[Image.Image], Image.Image]]


class _Painter:
    """Turns a plan into drawing layers; every random draw is in unit coordinates so the
    composition is the same at 1x and 2x."""

    def __init__(self, plan: _Plan, rng: random.Random, *, varied: bool = False) -> None:
        self.plan, self.rng = plan, rng
        self.varied = varied
        """A seeded run: even a single named shape moves and sizes a little, so each seed differs."""
        self.dark = min(plan.palette, key=_luma)
        self.light = max(plan.palette, key=_luma)

    def layers(self) -> list[Layer]:
        plan = self.plan
        layers: list[Layer] = [("Background", lambda c: _gradient(c.size, plan.background, plan.radial))]
        if plan.night:
            layers.append(("Stars", self._sky_stars))
        singles = [s for s in plan.shapes if s.kind in _OBJECTS and not s.plural]
        for kind in _SCENERY:
            for shape in (s for s in plan.shapes if s.kind == kind):
                layers.append((kind.capitalize(), functools.partial(self._scenery, shape=shape)))
        for shape in plan.shapes:
            if shape.kind in _OBJECTS:
                label = shape.kind.capitalize() + ("s" if shape.plural else "")
                slot = next((k for k, single in enumerate(singles) if single is shape), -1)
                paint = functools.partial(self._objects, shape=shape, slot=slot, singles=len(singles))
                layers.append((label, paint))
        return layers

    def _colour(self, shape: _Shape, k: int, fallback: Sequence[RGB]) -> RGB:
        source = shape.colours or list(fallback)
        return source[k % len(source)]

    def _sky_stars(self, canvas: Image.Image) -> Image.Image:
        draw = ImageDraw.Draw(canvas, "RGBA")
        w, h = canvas.size
        for _ in range(140):
            x, y, r, a = (
                self.rng.random(),
                self.rng.random() ** 1.6,
                self.rng.uniform(0.6, 2.0),
                self.rng.randint(90, 255),
            )
            s = r * min(w, h) / 500
            draw.ellipse((x * w - s, y * h - s, x * w + s, y * h + s), fill=(255, 250, 235, a))
        return canvas

    def _scenery(self, canvas: Image.Image, shape: _Shape) -> Image.Image:
        draw = ImageDraw.Draw(canvas, "RGBA")
        w, h = canvas.size
        m, rng = min(w, h), self.rng
        if shape.kind in ("sun", "moon"):
            low = any(s.kind in ("mountains", "waves") for s in self.plan.shapes)
            cx, cy = rng.uniform(0.3, 0.7) * w, (0.42 if low else 0.32) * h
            r = 0.13 * m * shape.scale
            default = (255, 214, 110) if shape.kind == "sun" else (245, 240, 220)
            colour = self._colour(shape, 0, [default])
            for k in range(6, 0, -1):
                g = r * (1 + 0.28 * k)
                draw.ellipse((cx - g, cy - g, cx + g, cy + g), fill=(*colour, 16))
            if shape.kind == "sun":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
            else:
                mask = Image.new("L", canvas.size)
                mdraw = ImageDraw.Draw(mask)
                mdraw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
                mdraw.ellipse((cx - 0.45 * r, cy - 1.15 * r, cx + 1.55 * r, cy + 0.85 * r), fill=0)
                canvas.paste(colour, mask=mask)
        elif shape.kind == "mountains":
            haze = self.plan.background[len(self.plan.background) // 2]
            base_colour = self._colour(shape, 0, [self.dark])
            for k in range(3):
                base, amp = (0.55 + 0.12 * k) * h, (0.16 - 0.03 * k) * h
                phases = [rng.uniform(0, math.tau) for _ in range(3)]
                ridge = []
                for step in range(33):
                    x = step / 32
                    wave = sum(
                        math.sin(x * f * math.tau + p) / f for f, p in zip((1, 2.3, 5.1), phases, strict=True)
                    )
                    ridge.append((x * w, base - amp * (0.5 + 0.45 * wave + rng.uniform(-0.08, 0.08))))
                colour = _mix(base_colour, haze, 0.6 - 0.28 * k)
                draw.polygon([*ridge, (w, h), (0, h)], fill=_mix(colour, (0, 0, 0), 0.12 * k))
        elif shape.kind == "waves":
            blues = shape.colours or sorted(self.plan.palette, key=_luma, reverse=True)
            for k in range(5):
                base, amp = (0.62 + 0.08 * k) * h, 0.02 * h
                period, phase = rng.uniform(0.25, 0.45) * w, rng.uniform(0, math.tau)
                crest = [(x, base + amp * math.sin(x / period * math.tau + phase)) for x in _steps(w, 48)]
                colour = _mix(blues[min(k, len(blues) - 1)], self.dark, 0.1 * k)
                draw.polygon([*crest, (w, h), (0, h)], fill=(*colour, 235))
                draw.line(crest, fill=(255, 255, 255, 90), width=max(1, round(m / 250)))
        elif shape.kind == "stripes":
            colours = shape.colours or list(self.plan.palette)
            period, angle = m / rng.uniform(6, 10), rng.choice((-35, -20, 20, 35, 45))
            slope = math.tan(math.radians(angle))
            for k, x in enumerate(
                _steps(w + h * abs(slope) * 2, int((w + 2 * h) / period), start=-h * abs(slope))
            ):
                alpha = 255 if shape.colours else 110
                draw.line(
                    [(x, -10), (x + slope * (h + 20), h + 10)],
                    fill=(*colours[k % len(colours)], alpha),
                    width=round(period / 2),
                )
        elif shape.kind == "grid":
            colour = self._colour(shape, 0, [self.light])
            gap, width = m / 12, max(1, round(m / 300))
            for x in _steps(w, round(w / gap)):
                draw.line([(x, 0), (x, h)], fill=(*colour, 110), width=width)
            for y in _steps(h, round(h / gap)):
                draw.line([(0, y), (w, y)], fill=(*colour, 110), width=width)
        else:  # dots
            colours = shape.colours or list(self.plan.palette)
            gap = m / (shape.count or 10)
            for row, y in enumerate(_steps(h, round(h / gap) + 1)):
                for col, x in enumerate(_steps(w, round(w / gap) + 1)):
                    cx, r = x + (gap / 2 if row % 2 else 0), gap * 0.22 * shape.scale
                    fill = (*colours[(row + col) % len(colours)], 220)
                    draw.ellipse((cx - r, y - r, cx + r, y + r), fill=fill)
        return canvas

    def _objects(self, canvas: Image.Image, shape: _Shape, slot: int, singles: int) -> Image.Image:
        draw = ImageDraw.Draw(canvas, "RGBA")
        w, h = canvas.size
        m, rng = min(w, h), self.rng
        if slot >= 0:  # one big shape, side by side with any other single shapes
            r = (0.3 * m if singles == 1 else min(0.3 * m, 0.45 * w / (singles + 1))) * shape.scale
            cx, cy = w * (slot + 1) / (singles + 1), h / 2
            if self.varied:
                r *= rng.uniform(0.75, 1.1)
                cx += rng.uniform(-0.25, 0.25) * w / (singles + 1)
                cy += rng.uniform(-0.15, 0.15) * h
            shadow = r * 0.06
            colour = self._colour(shape, 0, [self.light])
            _draw_object(draw, shape.kind, cx + shadow, cy + shadow, r, (0, 0, 0, 60), 0.0)
            _draw_object(draw, shape.kind, cx, cy, r, colour, 0.0)
            return canvas
        # Palette colours pushed away from the backdrop's brightness, so unnamed shapes stand out.
        backdrop = sum(_luma(c) for c in self.plan.background) / len(self.plan.background)
        ink, amount = (
            ((255, 255, 255), 0.45) if backdrop < 110 else ((0, 0, 0), 0.3 if backdrop > 170 else 0.0)
        )
        fallback = [_mix(c, ink, amount) for c in self.plan.palette]
        count = shape.count or rng.randint(5, 9)
        size = shape.scale * (1.6 if count <= 3 else 1.0)
        for k in range(count):
            cx, cy = rng.uniform(0.08, 0.92) * w, rng.uniform(0.1, 0.9) * h
            r, turn = rng.uniform(0.05, 0.14) * m * size, rng.uniform(-0.5, 0.5)
            colour = self._colour(shape, k, fallback)
            _draw_object(draw, shape.kind, cx, cy, r, (*colour, 225), turn)
        return canvas


def _steps(length: float, count: int, start: float = 0.0) -> list[float]:
    count = max(1, count)
    return [start + length * k / count for k in range(count + 1)]


def prompt_seed(prompt: str, seed: int | None = None) -> int:
    """A stable 64-bit seed from the normalised prompt (``hash()`` is salted per process)."""
    normal = " ".join(re.findall(r"[a-z0-9]+", prompt.lower()))
    payload = normal if seed is None else f"{normal}#{seed}"
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:8], "big")


def draw_from_prompt(
    prompt: str,
    size: tuple[int, int],
    *,
    quality: Quality,
    on_progress: ProgressFn,
    should_stop: StopFn,
    seed: int | None = None,
) -> Image.Image:
    """An RGB picture of ``size`` for ``prompt``; drawn at 2x and downscaled unless quality is low."""
    rng = random.Random(prompt_seed(prompt, seed))
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    layers = _Painter(_plan(words, rng), rng, varied=seed is not None).layers()
    # Supersampling is how quality buys smoother edges; above ~4 MP the 2x canvas costs too much memory.
    factor = 1 if quality == Quality.LOW or size[0] * size[1] > 2048 * 2048 else 2
    canvas = Image.new("RGB", (size[0] * factor, size[1] * factor))
    units = len(layers) + 1
    for index, (label, paint) in enumerate(layers):
        if should_stop():
            raise OperationCancelled
        on_progress(index / units, f"{label} ({index + 1}/{len(layers)})")
        canvas = paint(canvas)
    if should_stop():
        raise OperationCancelled
    if factor > 1:
        on_progress(len(layers) / units, "Smoothing edges")
        canvas = canvas.resize(size, Image.Resampling.LANCZOS)
    on_progress(1.0, "Done")
    return canvas
