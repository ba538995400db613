"""The local engine on real pixels: prompt parsing, every operation, quality, progress,
cancellation, the LocalProvider's async contract, procedural drawing and the sample pictures."""

from __future__ import annotations

import asyncio
import colorsys
import io
import itertools
import random
import threading
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageEnhance, ImageFilter, ImageStat

from imgedit.errors import InvalidRequest, UnknownPrompt
from imgedit.imaging import MAX_PIXELS, normalize
from imgedit.models import JobKind, Quality
from imgedit.providers import local_ops
from imgedit.providers.base import Provider, ProviderRequest
from imgedit.providers.local import LocalProvider
from imgedit.providers.local_draw import draw_from_prompt
from imgedit.providers.local_ops import (
    MAX_OUTPUT_SIDE,
    Banded,
    OperationCancelled,
    apply_operations,
    run_banded,
)
from imgedit.providers.local_parse import MAX_OPERATIONS, Operation, parse_prompt, understood_phrases
from imgedit.samples import SAMPLE_PROMPTS, render_sample

# --- helpers -------------------------------------------------------------------------------------


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    """Distinct colours everywhere: red grows to the right, green downwards, blue along the diagonal."""
    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            (
                20 + 215 * x // (width - 1),
                30 + 200 * y // (height - 1),
                40 + 180 * (x + y) // (width + height - 2),
            )
            for y in range(height)
            for x in range(width)
        ]
    )
    return image


def noise(width: int, height: int, seed: int = 1) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height))
    image.putdata(
        [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(width * height)]
    )
    return image


def flat(colour: tuple[int, int, int] = (128, 128, 128), size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.new("RGB", size, colour)


def step_edge(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """Black left half, white right half: one vertical edge between x=31 and x=32."""
    image = Image.new("RGB", size, (0, 0, 0))
    image.paste((255, 255, 255), (size[0] // 2, 0, size[0], size[1]))
    return image


def run(image: Image.Image, prompt: str, quality: Quality = Quality.HIGH) -> Image.Image:
    return apply_operations(
        image, parse_prompt(prompt), quality=quality, on_progress=lambda f, m: None, should_stop=lambda: False
    )


def pixels(image: Image.Image) -> list[Any]:
    return list(image.get_flattened_data())


def mean(image: Image.Image) -> float:
    return sum(ImageStat.Stat(image.convert("RGB")).mean) / 3


def stddev(image: Image.Image) -> float:
    return sum(ImageStat.Stat(image.convert("RGB")).stddev) / 3


def saturation(image: Image.Image) -> float:
    return ImageStat.Stat(image.convert("HSV")).mean[1]


def max_difference(a: Image.Image, b: Image.Image) -> int:
    return max(high for _low, high in ImageChops.difference(a, b).getextrema())


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "synonyms",
    [
        ["black and white", "grayscale", "greyscale", "monochrome", "make it grey", "B&W"],
        ["sepia", "make it sepia please", "vintage"],
        ["invert", "negative", "invert colours"],
        ["mirror", "flip horizontally", "mirror horizontal"],
        ["flip", "flip vertically", "flip upside down"],
        ["rotate right", "rotate 90", "rotate 90 degrees clockwise", "turn it right"],
        ["rotate left", "rotate 90 counterclockwise", "rotate -90", "rotate 270"],
        ["more colourful", "saturate", "more saturated", "vivid"],
        ["less colourful", "desaturate", "less colorful", "muted"],
        ["more contrast", "contrast", "increase contrast"],
        ["brighter", "brighten", "lighten", "make it a bit brighter"],
        ["darker", "darken", "dim"],
        ["warmer", "warm", "make it warmer"],
        ["cooler", "cool", "colder"],
        ["edges", "find edges", "outlines"],
        ["sketch", "pencil sketch", "pencil drawing"],
        ["emboss", "embossed", "relief"],
        ["crop square", "crop to square", "square crop", "square"],
        ["resize 50%", "half size", "scale 50%", "resize to 50 percent", "scale 0.5x"],
        ["resize 200%", "double size", "scale 2x", "twice as big"],
        ["blur", "blurry", "add a blur"],
        ["pixelate", "pixelize", "mosaic"],
        ["posterize", "posterise"],
        ["auto contrast", "autocontrast", "auto levels"],
    ],
)
def test_synonyms_parse_to_the_same_operation(synonyms: list[str]) -> None:
    parsed = [parse_prompt(text) for text in synonyms]
    assert all(len(ops) == 1 for ops in parsed), parsed
    assert all(ops == parsed[0] for ops in parsed), parsed


def test_parameters_are_read_defaulted_and_clamped() -> None:
    assert parse_prompt("blur 5") == [Operation("blur", (("radius", 5.0),), "Blur (radius 5)")]
    default, strong, light = (
        parse_prompt(p)[0].param("radius") for p in ("blur", "strong blur", "light blur")
    )
    assert light < default < strong
    assert parse_prompt("blur 5000")[0].param("radius") == 100
    assert parse_prompt("posterize 12")[0].param("bits") == 7
    assert parse_prompt("posterize 2 bits")[0].param("bits") == 2
    assert parse_prompt("pixelate 16")[0].param("block") == 16
    assert parse_prompt("rotate 45")[0].param("degrees") == 45
    assert parse_prompt("rotate 45 counterclockwise")[0].param("degrees") == 315
    assert parse_prompt("brighter 20%")[0].param("factor") == pytest.approx(1.2)
    assert parse_prompt("darker 30%")[0].param("factor") == pytest.approx(0.7)
    assert (
        parse_prompt("less contrast")[0].param("factor")
        < 1
        < parse_prompt("more contrast")[0].param("factor")
    )
    assert parse_prompt("resize 5000%")[0].param("percent") == 800
    assert parse_prompt("blur 2.5")[0].param("radius") == 2.5  # "." inside a number does not split


def test_clauses_keep_prompt_order() -> None:
    ops = parse_prompt("Make it sepia, then blur 3; add a vignette + mirror and rotate left. Posterize")
    assert [op.name for op in ops] == ["sepia", "blur", "vignette", "mirror", "rotate", "posterize"]
    assert [op.name for op in parse_prompt("sepia vignette")] == ["sepia", "vignette"]


def test_unknown_prompt_quotes_the_clause_and_lists_what_is_understood() -> None:
    with pytest.raises(UnknownPrompt) as caught:
        parse_prompt("add glitter")
    message = str(caught.value)
    assert '"add glitter"' in message
    for phrase in ("sepia", "vignette", "blur [radius]", "black and white", "Example:"):
        assert phrase in message


def test_one_unknown_clause_fails_the_whole_prompt() -> None:
    with pytest.raises(UnknownPrompt, match='"add glitter"'):
        parse_prompt("sepia and add glitter and vignette")


@pytest.mark.parametrize("prompt", ["", "   ", "please", "zoom", "turn"])
def test_empty_or_meaningless_prompts_are_unknown(prompt: str) -> None:
    with pytest.raises(UnknownPrompt, match="sepia"):
        parse_prompt(prompt)


def test_understood_phrases_cover_every_operation_family() -> None:
    text = " ".join(understood_phrases())
    for word in ("grayscale", "sepia", "blur", "sharpen", "invert", "rotate", "flip", "mirror", "brighter",
                 "darker", "contrast", "colourful", "posterize", "pixelate", "vignette", "warmer", "cooler",
                 "edges", "sketch", "emboss", "crop square", "resize"):  # fmt: skip
        assert word in text


@pytest.mark.parametrize(
    ("prompt", "lower"),
    [
        ("SePiA AnD ViGnEtTe", "sepia and vignette"),
        ("SEPIA THEN BLUR 3 PLUS MIRROR", "sepia then blur 3 plus mirror"),
        ("Make It Black And White, Please", "make it black and white, please"),
        ("Rotate LEFT And Then Flip", "rotate left and then flip"),
        ("A Little Brighter & More Contrast", "a little brighter & more contrast"),
    ],
)
def test_engine_words_are_understood_in_any_case(prompt: str, lower: str) -> None:
    assert parse_prompt(prompt) == parse_prompt(lower)


def test_an_unknown_clause_is_quoted_as_the_user_wrote_it() -> None:
    with pytest.raises(UnknownPrompt, match='"Add GLITTER"'):
        parse_prompt("SEPIA AND Add GLITTER")


def test_a_prompt_with_too_many_steps_is_refused_saying_the_limit() -> None:
    assert len(parse_prompt(" and ".join(["rotate 45"] * MAX_OPERATIONS))) == MAX_OPERATIONS
    for count in (MAX_OPERATIONS + 1, 800):
        with pytest.raises(InvalidRequest) as caught:
            parse_prompt(" and ".join(["rotate 45"] * count))
        assert f"at most {MAX_OPERATIONS} steps" in str(caught.value)


# --- operations on pixels ------------------------------------------------------------------------


def test_grayscale_makes_every_pixel_neutral() -> None:
    out = run(gradient(), "black and white")
    assert out.mode == "RGB"
    assert all(r == g == b for r, g, b in pixels(out))
    assert len({p[0] for p in pixels(out)}) > 10


def test_sepia_on_grey_is_warm_toned() -> None:
    out = run(ImageChops.multiply(gradient(), flat((255, 255, 255))).convert("L").convert("RGB"), "sepia")
    assert all(r >= g >= b for r, g, b in pixels(out))
    assert any(r > b + 20 for r, _g, b in pixels(out))


def test_invert_is_255_minus_each_channel() -> None:
    source = gradient()
    out = run(source, "invert")
    assert pixels(out) == [tuple(255 - v for v in p) for p in pixels(source)]


def test_rotate_right_swaps_sides_and_moves_the_top_left_corner_to_the_top_right() -> None:
    source = gradient()
    out = run(source, "rotate 90")
    assert out.size == (48, 64)
    assert out.getpixel((47, 0)) == source.getpixel((0, 0))
    assert out.getpixel((0, 0)) == source.getpixel((0, 47))


def test_rotate_left_moves_the_top_left_corner_to_the_bottom_left() -> None:
    source = gradient()
    out = run(source, "rotate left")
    assert out.size == (48, 64)
    assert out.getpixel((0, 63)) == source.getpixel((0, 0))


def test_rotate_by_an_odd_angle_expands_the_canvas_with_transparent_corners() -> None:
    out = run(gradient(), "rotate 45")
    assert out.mode == "RGBA"
    assert out.width > 64 and out.height > 48
    assert out.getpixel((0, 0))[3] == 0
    assert out.getpixel((out.width // 2, out.height // 2))[3] == 255


def test_mirror_and_flip() -> None:
    source = gradient()
    mirrored, flipped = run(source, "mirror"), run(source, "flip")
    assert [mirrored.getpixel((0, y)) for y in range(48)] == [source.getpixel((63, y)) for y in range(48)]
    assert [flipped.getpixel((x, 0)) for x in range(64)] == [source.getpixel((x, 47)) for x in range(64)]
    assert mirrored.size == flipped.size == source.size


def test_brighter_and_darker_move_the_mean() -> None:
    source = gradient()
    assert mean(run(source, "brighter")) > mean(source) + 10
    assert mean(run(source, "darker 30%")) < mean(source) - 10


def test_contrast_changes_the_spread() -> None:
    source = gradient()
    assert stddev(run(source, "more contrast")) > stddev(source) * 1.2
    assert stddev(run(source, "less contrast")) < stddev(source) * 0.8


def test_saturation_up_and_down() -> None:
    source = gradient()
    assert saturation(run(source, "more colourful")) > saturation(source) + 10
    assert saturation(run(source, "desaturate")) < saturation(source) - 10


def test_posterize_leaves_at_most_two_to_the_bits_levels() -> None:
    out = run(noise(64, 48), "posterize 2")
    for channel in range(3):
        assert len({p[channel] for p in pixels(out)}) <= 4


@pytest.mark.parametrize("size", [(64, 48), (70, 53)])
def test_pixelate_makes_uniform_blocks(size: tuple[int, int]) -> None:
    out = run(noise(*size), "pixelate 8")
    assert out.size == size
    for bx, by in itertools.product(range(0, size[0] - 7, 8), range(0, size[1] - 7, 8)):
        block = out.crop((bx, by, bx + 8, by + 8))
        assert len(set(block.get_flattened_data())) == 1, (bx, by)
    assert len(set(out.get_flattened_data())) > 20


def test_vignette_darkens_corners_and_keeps_the_centre() -> None:
    out = run(flat(size=(120, 80)), "vignette")
    centre = out.getpixel((60, 40))
    assert all(abs(v - 128) <= 2 for v in centre)
    for corner in ((0, 0), (119, 0), (0, 79), (119, 79)):
        assert out.getpixel(corner)[0] < 90


def test_warm_and_cool_shift_red_against_blue() -> None:
    def red_over_blue(image: Image.Image) -> float:
        r, _g, b = ImageStat.Stat(image).mean
        return r / b

    source = gradient()
    assert red_over_blue(run(source, "warmer")) > red_over_blue(source) * 1.1
    assert red_over_blue(run(source, "cooler")) < red_over_blue(source) / 1.1


def test_edges_are_black_on_flat_areas_and_bright_on_an_edge() -> None:
    assert max(max(p) for p in pixels(run(flat((90, 160, 30)), "edges"))) <= 3  # borders included
    out = run(step_edge(), "edges")
    assert (
        min(out.getpixel((31, y))[0] for y in range(48)) + min(out.getpixel((32, y))[0] for y in range(48))
        > 200
    )
    assert max(out.getpixel((x, 20))[0] for x in (0, 10, 20, 45, 63)) <= 3


def test_emboss_is_mid_grey_on_flat_areas_and_relief_on_an_edge() -> None:
    assert {p for p in pixels(run(flat((200, 40, 90)), "emboss"))} == {(128, 128, 128)}
    out = run(step_edge(), "emboss")
    assert any(abs(out.getpixel((x, 20))[0] - 128) > 60 for x in (31, 32))
    assert all(r == g == b for r, g, b in pixels(out))


def test_sketch_is_light_paper_with_a_dark_line_at_an_edge() -> None:
    out = run(step_edge((64, 48)), "sketch")
    assert all(r == g == b for r, g, b in pixels(out))
    assert min(out.getpixel((x, 24))[0] for x in range(28, 36)) < 100
    assert out.getpixel((2, 24))[0] > 180 and out.getpixel((60, 24))[0] > 180


def test_crop_square_takes_the_centre() -> None:
    source = gradient()
    out = run(source, "crop square")
    assert out.size == (48, 48)
    assert out.getpixel((0, 0)) == source.getpixel((8, 0))


def test_resize_by_percent_and_words() -> None:
    assert run(gradient(), "resize 50%").size == (32, 24)
    assert run(gradient(), "double size").size == (128, 96)
    assert run(Image.new("RGB", (1000, 10)), "resize 800%").size == (4096, 41)  # capped at 4096


def test_blur_lowers_variance() -> None:
    source = noise(64, 48)
    assert stddev(run(source, "blur 3")) < stddev(source) / 3


def test_auto_contrast_and_solarize() -> None:
    dull = gradient().point(lambda v: 100 + v // 4)
    stretched = run(dull, "auto contrast")
    assert stddev(stretched) > stddev(dull) * 2
    out = run(flat((200, 50, 128)), "solarize")
    assert out.getpixel((0, 0)) == (55, 50, 127)


@pytest.mark.parametrize(
    ("prompt", "reference"),
    [
        ("blur 2", ImageFilter.GaussianBlur(2)),
        ("blur 7.5", ImageFilter.GaussianBlur(7.5)),
        ("blur 30", ImageFilter.GaussianBlur(30)),
        ("sharpen", ImageFilter.UnsharpMask(2, 150, 2)),
    ],
)
def test_banded_filters_have_no_seams(prompt: str, reference: ImageFilter.Filter) -> None:
    source = noise(200, 161)
    out = run(source, prompt)
    assert max_difference(out, source.filter(reference)) <= 1


def test_banded_contrast_pivots_on_the_whole_image_mean() -> None:
    source = gradient(200, 161)
    assert max_difference(run(source, "more contrast"), ImageEnhance.Contrast(source).enhance(1.4)) <= 1


def test_banded_edges_match_the_whole_image_filter_inside_the_border() -> None:
    source = noise(120, 97)
    out = run(source, "edges").crop((1, 1, 119, 96))
    assert max_difference(out, source.filter(ImageFilter.FIND_EDGES).crop((1, 1, 119, 96))) == 0


def test_run_banded_really_works_in_bands() -> None:
    seen: list[tuple[int, int]] = []

    def record(band: Image.Image, rows: tuple[int, int]) -> Image.Image:
        seen.append(rows)
        return band

    run_banded(gradient(64, 100), Banded(record, pad=5), lambda fraction: None)
    assert len(seen) == 8
    assert seen[0][0] == 0 and seen[-1][1] == 100
    assert all(a[1] == b[0] for a, b in itertools.pairwise(seen))


# --- order, modes, quality, progress, cancellation -----------------------------------------------


def test_operations_apply_in_prompt_order() -> None:
    source = gradient()
    both = run(source, "grayscale and invert")
    gray = run(source, "grayscale")
    assert pixels(both) == [tuple(255 - v for v in p) for p in pixels(gray)]
    a, b = run(source, "posterize 1 then invert"), run(source, "invert then posterize 1")
    assert {p[0] for p in pixels(a)} == {127, 255}
    assert {p[0] for p in pixels(b)} == {0, 128}


def test_alpha_is_kept_and_other_modes_are_converted() -> None:
    rgba = gradient().convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((64, 48)))
    out = run(rgba, "sepia and sharpen")
    assert out.mode == "RGBA"
    assert pixels(out.getchannel("A")) == pixels(rgba.getchannel("A"))
    assert run(gradient().convert("L"), "sepia").mode == "RGB"
    assert run(gradient().convert("CMYK"), "invert").mode == "RGB"
    palette = gradient().convert("P")
    assert run(palette, "blur").mode == "RGB"
    palette.info["transparency"] = 0
    assert run(palette, "blur").mode == "RGBA"


def test_a_16_bit_grey_source_is_scaled_to_8_bits_not_clipped_to_white() -> None:
    source = Image.new("I;16", (64, 48), 0)
    source.paste(32896, (32, 0, 64, 48))  # 128 × 257: mid grey in 16 bits
    out = run(source, "mirror")
    assert out.mode == "RGB"
    assert out.getpixel((10, 10)) == (128, 128, 128) and out.getpixel((50, 10)) == (0, 0, 0)


@pytest.mark.parametrize(
    ("quality", "size"),
    [(Quality.LOW, (512, 384)), (Quality.MEDIUM, (1024, 768)), (Quality.HIGH, (1600, 1200))],
)
def test_quality_sets_the_working_resolution(quality: Quality, size: tuple[int, int]) -> None:
    assert run(gradient(1600, 1200), "sepia", quality).size == size


def test_high_quality_caps_at_2048_and_never_upscales() -> None:
    assert run(Image.new("RGB", (3000, 1500)), "invert", Quality.HIGH).size == (2048, 1024)
    assert run(gradient(), "invert", Quality.LOW).size == (64, 48)


def test_progress_is_monotonic_labelled_and_ends_at_one() -> None:
    events: list[tuple[float, str]] = []
    apply_operations(
        gradient(),
        parse_prompt("sepia, blur 2, rotate 90"),
        quality=Quality.HIGH,
        on_progress=lambda f, m: events.append((f, m)),
        should_stop=lambda: False,
    )
    fractions = [f for f, _m in events]
    assert len(events) >= 2 * 8 + 2  # one per band for the two banded operations
    assert all(a < b for a, b in itertools.pairwise(fractions))
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(f < 1.0 for f in fractions[:-1])
    assert "Sepia (1/3)" in [m for _f, m in events]
    assert any(m.startswith("Rotate") and m.endswith("(3/3)") for _f, m in events)


def test_should_stop_cancels_between_steps() -> None:
    calls: list[float] = []
    with pytest.raises(OperationCancelled):
        apply_operations(
            gradient(),
            parse_prompt("sepia and blur"),
            quality=Quality.HIGH,
            on_progress=lambda f, m: calls.append(f),
            should_stop=lambda: len(calls) >= 2,
        )
    assert len(calls) == 2


# --- LocalProvider -------------------------------------------------------------------------------


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[float, str | None]] = []
        self.thread_ids: set[int] = set()
        self.first_work = asyncio.Event()

    def progress(self, fraction: float, message: str | None = None) -> None:
        self.events.append((fraction, message))
        self.thread_ids.add(threading.get_ident())
        if 0.05 <= fraction < 0.9:
            self.first_work.set()

    def preview(self, image: bytes) -> None:
        raise AssertionError("the local engine sends no previews")


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_local_provider_satisfies_the_protocol() -> None:
    provider = LocalProvider()
    assert isinstance(provider, Provider)
    assert (provider.name, provider.label) == ("local", "Local engine (offline)")
    assert (
        provider.capabilities.edit and provider.capabilities.generate and provider.capabilities.real_progress
    )
    for kind in JobKind:
        low, medium, high = (provider.expected_seconds(kind, q) for q in Quality)
        assert 0 < low < medium < high


async def test_edit_returns_a_png_and_reports_progress_on_the_loop_thread() -> None:
    sink = RecordingSink()
    request = ProviderRequest(
        kind=JobKind.EDIT, prompt="sepia and vignette", quality=Quality.LOW, image=png_bytes(gradient())
    )
    result = await LocalProvider().edit(request, sink)
    image = decode(result.image)
    assert (result.format, image.format, image.size) == ("PNG", "PNG", (64, 48))
    assert result.metadata == {"operations": "Sepia, Vignette (50%)"}
    assert sink.thread_ids == {threading.get_ident()}
    fractions = [f for f, _m in sink.events]
    assert fractions[-1] == 1.0 and all(a <= b for a, b in itertools.pairwise(fractions))


async def test_edit_fails_fast_on_an_unknown_prompt_and_on_a_broken_image() -> None:
    sink = RecordingSink()
    with pytest.raises(UnknownPrompt, match="glitter"):
        await LocalProvider().edit(
            ProviderRequest(kind=JobKind.EDIT, prompt="glitter", quality=Quality.LOW, image=b"x"), sink
        )
    assert sink.events == []
    with pytest.raises(InvalidRequest, match="The source image could not be read"):
        await LocalProvider().edit(
            ProviderRequest(kind=JobKind.EDIT, prompt="sepia", quality=Quality.LOW, image=b"not an image"),
            sink,
        )


async def test_edit_applies_exif_orientation() -> None:
    source = gradient()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate it 90° clockwise
    buffer = io.BytesIO()
    source.save(buffer, "PNG", exif=exif)
    request = ProviderRequest(
        kind=JobKind.EDIT, prompt="invert", quality=Quality.HIGH, image=buffer.getvalue()
    )
    assert decode((await LocalProvider().edit(request, RecordingSink())).image).size == (48, 64)


async def test_the_event_loop_keeps_running_during_an_edit() -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    big = png_bytes(noise(400, 300).resize((2000, 1500)))
    request = ProviderRequest(
        kind=JobKind.EDIT, prompt="blur 20 and sharpen and emboss", quality=Quality.HIGH, image=big
    )
    ticks_before = ticks
    await LocalProvider().edit(request, RecordingSink())
    done.set()
    await ticking
    assert ticks - ticks_before >= 3


async def test_cancelling_an_edit_stops_the_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    state = {"running": 0, "outcome": "not started"}
    real_apply = local_ops.apply_operations

    def tracking_apply(*args: Any, **kwargs: Any) -> Image.Image:
        state["running"] += 1
        try:
            result = real_apply(*args, **kwargs)
            state["outcome"] = "finished"
            return result
        except OperationCancelled:
            state["outcome"] = "cancelled"
            raise
        finally:
            state["running"] -= 1

    monkeypatch.setattr(local_ops, "apply_operations", tracking_apply)  # read at each edit
    sink = RecordingSink()
    big = png_bytes(noise(400, 300).resize((2000, 1500)))
    prompt = "blur 20 and sharpen and emboss and blur 20 and sharpen"
    request = ProviderRequest(kind=JobKind.EDIT, prompt=prompt, quality=Quality.HIGH, image=big)
    task = asyncio.create_task(LocalProvider().edit(request, sink))
    await asyncio.wait_for(sink.first_work.wait(), timeout=30)
    assert state["running"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The provider waited for the thread before re-raising, so it has already stopped, mid-way.
    assert state == {"running": 0, "outcome": "cancelled"}
    seen = len(sink.events)
    for _ in range(3):
        await asyncio.sleep(0)  # let any callbacks still queued on the loop run
    assert len(sink.events) == seen
    assert all(f < 0.9 for f, _m in sink.events)


async def test_repeated_rotation_is_capped_to_the_output_limit_and_the_result_is_storable() -> None:
    # Six 45° turns of a 1024 px square would need an 8192² canvas (and 10 turns ~4 GB) uncapped.
    source = gradient(32, 32).resize((1024, 1024))
    sink = RecordingSink()
    request = ProviderRequest(
        kind=JobKind.EDIT,
        prompt=" and ".join(["rotate 45"] * 6),
        quality=Quality.MEDIUM,
        image=png_bytes(source),
    )
    result = await LocalProvider().edit(request, sink)
    image = decode(result.image)
    assert max(image.size) <= MAX_OUTPUT_SIDE
    assert max(image.size) >= MAX_OUTPUT_SIDE - 2  # scaled to fit, not shrunk more than needed
    assert normalize(result.image).width == image.width  # the store takes it
    assert image.width * image.height <= MAX_PIXELS
    assert f"{MAX_OUTPUT_SIDE} px" in result.metadata["note"]


def test_growing_geometry_stays_within_the_output_limit() -> None:
    notes: list[str] = []
    result = apply_operations(
        gradient(32, 32).resize((2048, 1024)),
        parse_prompt("resize 800% and rotate 30 and pixelate 4 and rotate 100"),
        quality=Quality.HIGH,
        on_progress=lambda f, m: None,
        should_stop=lambda: False,
        on_note=notes.append,
    )
    assert MAX_OUTPUT_SIDE - 2 <= max(result.size) <= MAX_OUTPUT_SIDE
    assert len(notes) == 1 and "scaled down" in notes[0]


async def test_generate_is_deterministic_and_sized_by_quality_or_request() -> None:
    provider = LocalProvider()

    async def generate(
        prompt: str, quality: Quality = Quality.LOW, size: tuple[int, int] | None = None
    ) -> bytes:
        request = ProviderRequest(kind=JobKind.GENERATE, prompt=prompt, quality=quality, size=size)
        return (await provider.generate(request, RecordingSink())).image

    first = await generate("three green triangles on a night sky")
    assert first == await generate("Three green   triangles on a night sky!")
    assert first != await generate("three green triangles on a sunset sky")
    assert decode(first).size == (512, 512)
    assert decode(await generate("waves", Quality.MEDIUM)).size == (768, 768)
    assert decode(await generate("waves", Quality.HIGH, (300, 200))).size == (300, 200)


async def test_a_red_circle_on_a_blue_background() -> None:
    request = ProviderRequest(
        kind=JobKind.GENERATE, prompt="a red circle on a blue background", quality=Quality.MEDIUM
    )
    image = decode((await LocalProvider().generate(request, RecordingSink())).image).convert("RGB")
    w, h = image.size
    r, g, b = image.getpixel((w // 2, h // 2))
    assert r > 150 and g < 90 and b < 90
    for corner in ((2, 2), (w - 3, 2), (2, h - 3), (w - 3, h - 3)):
        cr, cg, cb = image.getpixel(corner)
        assert cb > cr + 60 and cb > cg + 40, corner
    blue = sum(1 for pr, pg, pb in image.get_flattened_data() if pb > pr + 40 and pb > pg + 20)
    red = sum(1 for pr, pg, pb in image.get_flattened_data() if pr > pb + 80 and pr > pg + 80)
    assert blue > 0.55 * w * h
    assert 0.15 * w * h < red < 0.45 * w * h


def test_drawing_progress_cancels_and_never_fails_on_unknown_words() -> None:
    events: list[float] = []
    image = draw_from_prompt(
        "qwerty zxcv",
        (120, 80),
        quality=Quality.HIGH,
        on_progress=lambda f, m: events.append(f),
        should_stop=lambda: False,
    )
    assert image.size == (120, 80) and len(set(image.get_flattened_data())) > 50
    assert events[-1] == 1.0 and all(a < b for a, b in itertools.pairwise(events))
    with pytest.raises(OperationCancelled):
        draw_from_prompt(
            "sunset mountains",
            (120, 80),
            quality=Quality.LOW,
            on_progress=events.append,
            should_stop=lambda: True,
        )


# --- samples -------------------------------------------------------------------------------------


def test_samples_are_distinct_valid_pngs() -> None:
    assert len(SAMPLE_PROMPTS) >= 6 and len(set(SAMPLE_PROMPTS)) == len(SAMPLE_PROMPTS)
    rendered = [render_sample(prompt) for prompt in SAMPLE_PROMPTS]
    images = []
    for data in rendered:
        image = decode(data)
        assert image.format == "PNG" and image.size == (768, 512)
        images.append(image.convert("RGB").resize((96, 64)))
    for a, b in itertools.combinations(images, 2):
        assert sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3 > 20


def test_hsv_helper_agrees_with_colorsys() -> None:
    # saturation() above relies on Pillow's HSV; make sure it means what the assertions assume
    image = flat((200, 100, 50), (2, 2))
    expected = colorsys.rgb_to_hsv(200 / 255, 100 / 255, 50 / 255)[1] * 255
    assert abs(saturation(image) - expected) <= 1
