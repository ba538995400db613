"""Seeded variants of a local edit (issue 11, "Variations" and "Run again"): the local engine asked
once per variation with seeds s, s+1, s+2 … makes visibly different pictures that are each still
the edit asked for; the same seed makes the same bytes; geometry stays exact; no seed gives
exactly today's result; a region edit's variants change nothing outside the area."""

from __future__ import annotations

import io
import itertools
import os
import random
import re
import subprocess
import sys

import pytest
from PIL import Image, ImageChops, ImageStat

from imgedit import masks
from imgedit.models import JobKind, Quality
from imgedit.providers.base import ProviderRequest, ProviderResult
from imgedit.providers.local import LocalProvider
from imgedit.providers.local_ops import apply_operations
from imgedit.providers.local_parse import parse_prompt, vary

SIZE = (96, 72)
SEEDS = (41, 42, 43)  # what the studio sends for three variations of one job


# --- helpers -------------------------------------------------------------------------------------


class QuietSink:
    def progress(self, fraction: float, message: str | None = None) -> None:
        pass

    def preview(self, image: bytes) -> None:
        raise AssertionError("the local engine sends no previews")


def gradient(size: tuple[int, int] = SIZE) -> Image.Image:
    """Every colour different: red grows to the right, green downwards, blue along the diagonal."""
    w, h = size
    image = Image.new("RGB", size)
    image.putdata(
        [
            (20 + 215 * x // (w - 1), 30 + 200 * y // (h - 1), 40 + 180 * (x + y) // (w + h - 2))
            for y in range(h)
            for x in range(w)
        ]
    )
    return image


def noise(size: tuple[int, int] = SIZE, seed: int = 3) -> Image.Image:
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


async def edit(
    source: Image.Image, prompt: str, seed: int | None, *, mask: bytes | None = None
) -> ProviderResult:
    request = ProviderRequest(
        kind=JobKind.EDIT, prompt=prompt, quality=Quality.MEDIUM, image=png(source), seed=seed, mask=mask
    )
    return await LocalProvider().edit(request, QuietSink())


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0-255."""
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def stddev(image: Image.Image) -> float:
    return sum(ImageStat.Stat(image.convert("RGB")).stddev) / 3


# --- the same seed, other seeds ------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    ["sepia and a vignette", "blur", "black and white", "darker and more contrast", "warmer", "pixelate"],
)
async def test_the_same_seed_gives_the_same_bytes_and_labels(prompt: str) -> None:
    first = await edit(gradient(), prompt, 42)
    again = await edit(gradient(), prompt, 42)
    assert first.image == again.image
    assert first.metadata == again.metadata


@pytest.mark.parametrize(
    ("prompt", "source"),
    [
        ("sepia and a vignette", gradient()),
        ("blur", noise()),
        ("black and white", gradient()),
        ("brighter", gradient()),
        ("darker and more contrast", gradient()),
        ("more colourful", gradient()),
        ("warmer", gradient()),
        ("sharpen", noise()),
        ("solarize", gradient()),
        ("auto contrast", Image.eval(gradient(), lambda v: 60 + v // 3)),
        ("sketch", noise()),
        ("edges", noise()),
        ("posterize", gradient()),
        ("pixelate", noise()),
        ("vignette", gradient()),
        ("less contrast", gradient()),
        ("cooler", gradient()),
    ],
)
async def test_three_seeds_give_three_visibly_different_pictures(prompt: str, source: Image.Image) -> None:
    results = [await edit(source, prompt, seed) for seed in SEEDS]
    pictures = [decoded(r.image) for r in results]
    for a, b in itertools.combinations(pictures, 2):
        assert mean_difference(a, b) > 1.0  # deterministic images: any difference is the variant's
    assert len({r.metadata["operations"] for r in results}) == 3  # the labels say how they differ


async def test_run_again_on_the_default_variant_differs_from_the_first_run() -> None:
    """ "Run again" gives a local edit a new seed: the picture changes, the unvaried one stays."""
    source = gradient()
    plain = decoded((await edit(source, "sepia and a vignette", None)).image)
    for seed in SEEDS:
        assert mean_difference(decoded((await edit(source, "sepia and a vignette", seed)).image), plain) > 0.5


# --- still the edit asked for --------------------------------------------------------------------


async def test_sepia_variants_are_all_sepia_toned_on_grey() -> None:
    grey = Image.new("RGB", SIZE, (128, 128, 128))
    for seed in SEEDS:
        result = await edit(grey, "sepia", seed)
        r, g, b = decoded(result.image).convert("RGB").getpixel((10, 10))  # type: ignore[misc]
        assert r >= g >= b and r - b >= 20, (seed, (r, g, b))
        assert re.fullmatch(r"Sepia \(strength \d+%\)", result.metadata["operations"])


async def test_blur_variants_are_all_blurrier_than_the_source_and_say_their_radius() -> None:
    source = noise()
    radii = []
    for seed in SEEDS:
        result = await edit(source, "blur", seed)
        assert stddev(decoded(result.image)) < stddev(source) * 0.5
        found = re.fullmatch(r"Blur \(radius (\d+(?:\.\d)?)\)", result.metadata["operations"])
        assert found is not None
        radii.append(float(found[1]))
    assert len(set(radii)) == 3 and all(4 * 0.7 - 0.05 <= r <= 4 * 1.3 + 0.05 for r in radii)


async def test_black_and_white_variants_stay_neutral_grey_with_other_channel_mixes() -> None:
    for seed in SEEDS:
        result = await edit(gradient(), "black and white", seed)
        picture = decoded(result.image).convert("RGB")
        r, g, b = picture.split()
        assert ImageChops.difference(r, g).getbbox() is None and ImageChops.difference(g, b).getbbox() is None
        assert result.metadata["operations"].startswith("Black and white (red ")


def test_direction_and_limits_are_kept_for_every_seed() -> None:
    """Darker stays darker (never past -90%), warmer stays warmer, a vignette at most 100%."""
    ops = parse_prompt("darker 85% and warmer and vignette 95% and less colourful 90% and posterize 7")
    for seed in range(200):
        varied = {op.name: op for op in vary(ops, seed)}
        assert 0.1 - 1e-9 <= varied["brightness"].param("factor") < 1
        assert 0 < varied["temperature"].param("amount") <= 0.6
        assert 0 < varied["vignette"].param("strength") <= 1
        assert 0 <= varied["saturation"].param("factor") < 1
        assert 1 <= varied["posterize"].param("bits") <= 7


# --- geometry is exact ---------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["rotate 90", "flip", "mirror", "crop square", "half size", "invert"])
async def test_geometry_and_exact_operations_do_not_vary(prompt: str) -> None:
    plain = await edit(gradient(), prompt, None)
    for seed in SEEDS:
        assert (await edit(gradient(), prompt, seed)).image == plain.image
    if prompt == "rotate 90":
        assert decoded(plain.image).size == (SIZE[1], SIZE[0])


async def test_a_varied_edit_with_a_rotation_keeps_the_rotation_exact() -> None:
    result = await edit(gradient(), "rotate 90 and sepia", 7)
    assert decoded(result.image).size == (SIZE[1], SIZE[0])
    assert result.metadata["operations"].startswith("Rotate (90° clockwise), Sepia (strength ")


# --- no seed: exactly as before ------------------------------------------------------------------

EVERY_OPERATION = (
    "black and white, sepia, blur, sharpen, invert, rotate 30, flip, mirror, brighter, less contrast, "
    "more colourful, posterize, pixelate, vignette, cooler, edges, sketch, emboss, crop square, "
    "resize 80%, auto contrast, solarize"
)


@pytest.mark.parametrize("prompt", [*EVERY_OPERATION.split(", "), "sepia and a vignette"])
async def test_without_a_seed_the_result_is_the_unvaried_edit(prompt: str) -> None:
    source = gradient()
    result = await edit(source, prompt, None)
    ops = parse_prompt(prompt)
    expected = apply_operations(
        source, ops, quality=Quality.MEDIUM, on_progress=lambda f, m: None, should_stop=lambda: False
    )
    assert decoded(result.image).tobytes() == expected.tobytes()
    assert result.metadata["operations"] == ", ".join(op.label for op in ops)


def test_vary_never_changes_a_prompt_it_is_not_given_and_is_the_same_in_another_process() -> None:
    ops = parse_prompt(EVERY_OPERATION)
    assert vary(ops, 5) == vary(parse_prompt(EVERY_OPERATION), 5)
    assert ops == parse_prompt(EVERY_OPERATION)  # the parsed list itself is untouched
    code = (
        "from imgedit.providers.local_parse import parse_prompt, vary; "
        f"print([o.label for o in vary(parse_prompt({EVERY_OPERATION!r}), 5)])"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for hash_seed in ("1", "2")
    }
    assert outputs == {str([o.label for o in vary(ops, 5)])}


# --- region edits --------------------------------------------------------------------------------


async def test_a_seeded_region_edit_varies_inside_and_leaves_every_outside_pixel() -> None:
    source = noise((160, 120))
    painted = Image.new("RGBA", source.size, (0, 0, 0, 255))
    painted.paste((0, 0, 0, 0), (40, 30, 120, 90))
    kept = masks.normalise(png(painted), source.size)
    area = masks.edit_area(kept)
    outside = ImageChops.invert(area)
    pictures = []
    for seed in SEEDS:
        result = await edit(source, "blur and warmer", seed, mask=kept)
        picture = decoded(result.image).convert("RGB")
        changed = ImageChops.difference(picture, source).convert("L").point(lambda v: 255 if v else 0)
        assert ImageChops.multiply(changed, outside).getbbox() is None
        assert result.metadata["operations"].startswith("Blur (radius ")
        pictures.append(picture.crop((50, 40, 110, 80)))
    for a, b in itertools.combinations(pictures, 2):
        assert mean_difference(a, b) > 0.5
