"""Region edits on the local engine, end to end: the kept mask's properties (imgedit/masks.py),
the local engine editing only the selected area through the real Studio, registry and store on a
tmp data dir, refusals (another size, a provider without masks, rotate on an area), the mask
surviving a restart, and a region edit's loading card outlining its area."""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from nicegui import app, ui
from nicegui.testing import User
from PIL import Image, ImageChops, ImageStat

from imgedit import masks
from imgedit.config import Settings
from imgedit.errors import InvalidRequest
from imgedit.jobs import JobStage
from imgedit.models import ImageOrigin, JobId, Quality
from imgedit.providers.base import Capabilities, ProgressSink, ProviderRequest, ProviderResult
from imgedit.providers.local_ops import OperationCancelled
from imgedit.providers.local_parse import parse_prompt
from imgedit.providers.local_region import area_edit_work
from imgedit.services import Services, build_services
from tests.conftest import app_services
from tests.fakes import GatedProvider, eventually

SIZE = (160, 120)
AREA = (40, 30, 120, 90)  # left, top, right, bottom: the painted rectangle


# --- helpers -------------------------------------------------------------------------------------


def noise(size: tuple[int, int] = SIZE, seed: int = 7) -> Image.Image:
    """Every pixel different from its neighbours, so a blur changes every one of them."""
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def painted(size: tuple[int, int] = SIZE, box: tuple[int, int, int, int] = AREA) -> bytes:
    """What the painter sends: opaque where the picture stays, transparent where the user painted."""
    image = Image.new("RGBA", size, (0, 0, 0, 255))
    image.paste((0, 0, 0, 0), box)
    return png(image)


def area_of(size: tuple[int, int] = SIZE, box: tuple[int, int, int, int] = AREA) -> Image.Image:
    area = Image.new("L", size, 0)
    area.paste(255, box)
    return area


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def outside_unchanged(result: Image.Image, source: Image.Image, area: Image.Image) -> bool:
    """Every pixel outside ``area`` (255 = the area) is exactly the source's."""
    diff = ImageChops.difference(result, source).convert("L").point(lambda v: 255 if v else 0)
    return ImageChops.multiply(diff, ImageChops.invert(area)).getbbox() is None


def changed_inside(result: Image.Image, source: Image.Image, box: tuple[int, int, int, int]) -> float:
    """The mean difference (0-255) over the middle of ``box``, away from the feathered edge."""
    left, top, right, bottom = box
    core = (left + 10, top + 10, right - 10, bottom - 10)
    diff = ImageChops.difference(result.crop(core), source.crop(core))
    return sum(ImageStat.Stat(diff).mean) / 3


# --- masks.py ------------------------------------------------------------------------------------


def test_normalise_keeps_the_painted_area_transparent_and_the_rest_opaque_black() -> None:
    kept = Image.open(io.BytesIO(masks.normalise(painted(), SIZE)))
    assert kept.mode == "RGBA" and kept.size == SIZE
    assert kept.getpixel((50, 40)) == (0, 0, 0, 0)
    assert kept.getpixel((5, 5)) == (0, 0, 0, 255)
    assert masks.edit_area(masks.normalise(painted(), SIZE)).getbbox() == AREA


def test_normalise_refuses_another_size_and_an_empty_painting() -> None:
    with pytest.raises(InvalidRequest, match=r"160×120.*select the area again"):
        masks.normalise(painted((80, 60), (10, 10, 40, 40)), (160, 120))
    nothing = png(Image.new("RGBA", SIZE, (0, 0, 0, 255)))
    with pytest.raises(InvalidRequest, match="No area is selected"):
        masks.normalise(nothing, SIZE)


@pytest.mark.parametrize(
    "data", [b"garbage", b"\x89PNG\r\n\x1a\n" + b"x" * 40], ids=["not-an-image", "truncated"]
)
def test_normalise_says_an_unreadable_mask_is_unreadable(data: bytes) -> None:
    with pytest.raises(InvalidRequest, match="could not be read as an image"):
        masks.normalise(data, SIZE)


def test_white_on_black_is_white_exactly_where_the_edit_applies() -> None:
    sd = Image.open(io.BytesIO(masks.white_on_black(masks.normalise(painted(), SIZE))))
    assert sd.convert("L").getbbox() == AREA
    histogram = sd.convert("L").histogram()
    assert {v for v in range(256) if histogram[v]} == {0, 255}
    # and a white-on-black mask is read back as the same area
    assert (
        masks.edit_area(
            masks.normalise(masks.white_on_black(masks.normalise(painted(), SIZE)), SIZE)
        ).getbbox()
        == AREA
    )


def test_blend_keeps_every_outside_pixel_byte_identical_and_feathers_only_inside() -> None:
    original, edited = noise(seed=1), noise(seed=2)
    kept = masks.normalise(painted(), SIZE)
    out = masks.blend(original, edited, kept, feather=6)
    area = area_of()
    assert outside_unchanged(out, original, area)
    # Deep inside the area: the edit, as it is.
    assert out.getpixel((80, 60)) == edited.getpixel((80, 60))
    # On the area's own edge: a mix, still closer to the original than deep inside.
    edge = [(AREA[0], y) for y in range(40, 80)]
    assert any(out.getpixel(p) != edited.getpixel(p) for p in edge), "the edge is feathered"
    # With no feather the area is the edit everywhere inside.
    hard = masks.blend(original, edited, kept, feather=0)
    assert ImageChops.difference(hard.crop(AREA), edited.crop(AREA)).getbbox() is None
    assert outside_unchanged(hard, original, area)


def test_blend_refuses_a_mask_of_another_size() -> None:
    with pytest.raises(InvalidRequest, match="does not fit"):
        masks.blend(noise((80, 60)), noise((80, 60)), masks.normalise(painted(), SIZE))


# --- the local engine's area work, in the image pool's function directly ---------------------


def test_area_work_reports_rising_progress_and_stops_when_asked() -> None:
    kept = masks.normalise(painted(), SIZE)
    fractions: list[float] = []
    area_edit_work(
        png(noise()),
        kept,
        parse_prompt("blur 4 and sepia"),
        Quality.LOW,
        lambda f, _m: fractions.append(f),
        lambda: False,
    )
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    calls = 0

    def stop_soon() -> bool:
        nonlocal calls
        calls += 1
        return calls > 2

    with pytest.raises(OperationCancelled):
        area_edit_work(
            png(noise()), kept, parse_prompt("blur 4"), Quality.LOW, lambda _f, _m: None, stop_soon
        )


# --- through the real Studio on a tmp data dir ---------------------------------------------------


class MaskedGated(GatedProvider):
    """The gated test engine, mask-capable, remembering the mask of every request it was given."""

    name = "masked"
    label = "Masked test engine"
    capabilities = Capabilities(edit=True, generate=True, real_progress=True, mask=True)

    def __init__(self) -> None:
        super().__init__()
        self.masks: list[bytes | None] = []

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        self.masks.append(request.mask)
        return await super().edit(request, sink)


closed: list[Services] = []
"""Services a test stopped itself (``stop``): the fixture does not close them again."""


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[[], Services]]:
    """Start the services on one data dir, as ``python main.py`` does; again after a stop."""
    started: list[Services] = []

    def make() -> Services:
        services = build_services(
            Settings(data_dir=tmp_path / "data", samples=False, show=False, max_concurrent=1)
        )
        services.providers.add(GatedProvider())
        services.providers.add(MaskedGated())
        started.append(services)
        services.start()
        return services

    yield make
    for services in started:
        if services not in closed:
            await services.close()


async def stop(services: Services) -> None:
    await services.close()
    closed.append(services)


async def add_source(services: Services, image: Image.Image | None = None) -> str:
    record = await services.store.add(png(image or noise()), origin=ImageOrigin.UPLOAD, name="noise.png")
    return record.id


async def region_edit(services: Services, prompt: str) -> tuple[Image.Image, Image.Image | None, str | None]:
    """(source, stored result or None, error) of a local region edit of ``AREA``."""
    source_id = await add_source(services)
    mask_id = await services.studio.prepare_mask(source_id, painted())
    job = services.studio.submit_edit(source_id, prompt, Quality.MEDIUM, "local", mask=mask_id)
    final = await services.registry.wait(job)
    source = decoded(await services.store.read_bytes(source_id))
    if final.result_image_id is None:
        return source, None, final.error
    result = services.store.get(final.result_image_id)
    assert result.parent_id == source_id
    return source, decoded(await services.store.read_bytes(result.id)), final.error


async def test_local_blur_on_an_area_changes_only_the_area(start: Callable[[], Services]) -> None:
    source, result, error = await region_edit(start(), "blur 8")
    assert error is None and result is not None
    assert result.size == source.size, "a region edit keeps the picture's size"
    assert outside_unchanged(result, source, area_of()), "not one pixel outside the area moved"
    assert changed_inside(result, source, AREA) > 20, "the area is blurred"


async def test_local_sepia_on_an_area_tints_only_the_area(start: Callable[[], Services]) -> None:
    source, result, error = await region_edit(start(), "sepia")
    assert error is None and result is not None
    assert outside_unchanged(result, source, area_of())
    assert changed_inside(result, source, AREA) > 10
    r, g, b = result.getpixel((80, 60))  # type: ignore[misc]
    assert r >= g >= b, "sepia inside: warm browns"


async def test_local_rotate_on_an_area_fails_saying_to_clear_the_selection(
    start: Callable[[], Services],
) -> None:
    services = start()
    before = len(services.store)
    _source, result, error = await region_edit(services, "sepia and rotate 90")
    assert result is None
    assert error is not None and "Rotate changes the whole picture; clear the selection to rotate" in error
    assert len(services.store) == before + 1, "only the source: nothing was added"
    for prompt, words in (("crop square", "clear the selection to crop"), ("mirror", "to mirror")):
        _s, result, error = await region_edit(services, prompt)
        assert result is None and error is not None and words in error


async def test_prepare_mask_refuses_another_size_and_a_provider_without_masks_is_refused(
    start: Callable[[], Services],
) -> None:
    services = start()
    source_id = await add_source(services)
    with pytest.raises(InvalidRequest, match=r"80×60 but the image is 160×120; select the area again"):
        await services.studio.prepare_mask(source_id, painted((80, 60), (10, 10, 40, 40)))
    mask_id = await services.studio.prepare_mask(source_id, painted())
    with pytest.raises(InvalidRequest, match="Gated test engine cannot edit a selected area"):
        services.studio.submit_edit(source_id, "sepia", Quality.LOW, "gated", mask=mask_id)
    assert services.registry.snapshots() == [], "nothing was queued"
    assert services.providers.get("local").capabilities.mask


async def test_the_mask_survives_a_restart(start: Callable[[], Services]) -> None:
    first = start()
    source_id = await add_source(first)
    mask_id = await first.studio.prepare_mask(source_id, painted())
    job = first.studio.submit_edit(source_id, "inpaint a cat", Quality.LOW, "masked", mask=mask_id)
    provider = first.providers.get("masked")
    assert isinstance(provider, MaskedGated)
    await asyncio.wait_for(provider.started.wait(), 5)
    (given,) = provider.masks
    assert given == masks.normalise(painted(), SIZE), "the provider got the kept form"
    await stop(first)  # before it finishes: it is still running in the journal

    second = start()
    (resumed,) = [s for s in second.registry.snapshots() if s.id == job]
    assert resumed.spec.mask == mask_id
    again = second.providers.get("masked")
    assert isinstance(again, MaskedGated)
    await asyncio.wait_for(again.started.wait(), 5)
    again.gate.set()
    final = await second.registry.wait(JobId(job))
    assert final.stage is JobStage.COMPLETED
    assert again.masks == [given], "the resumed job's request carries the same mask bytes"


# --- the loading card -----------------------------------------------------------------------------


async def fetch(path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        return await client.get(path)


def loading_cards(user: User) -> list[ui.element]:
    assert user.client is not None
    return [e for e in user.client.elements.values() if "loading-card" in e._markers and e.visible]


def outline_of(card: ui.element) -> ui.element | None:
    return next((e for e in card.descendants() if "imgedit-mask-outline" in e.classes), None)


async def test_a_region_edits_loading_card_outlines_its_area(user: User) -> None:
    await user.open("/")
    services = app_services()
    provider = MaskedGated()
    services.providers.add(provider)
    source = services.store.list()[0]
    size = (source.width, source.height)
    box = (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2)
    mask_id = await services.studio.prepare_mask(source.id, painted(size, box))

    plain = services.studio.submit_edit(source.id, "whole", Quality.LOW, "masked")
    masked = services.studio.submit_edit(source.id, "area", Quality.LOW, "masked", mask=mask_id)
    await eventually(lambda: len(loading_cards(user)) == 2, message="both loading cards")
    by_job = {c: next(m for m in c._markers if m.startswith("job-")) for c in loading_cards(user)}
    cards = {job: card for card, job in by_job.items()}
    assert outline_of(cards[f"job-{plain}"]) is None, "a whole-picture edit has no outline"
    outline = outline_of(cards[f"job-{masked}"])
    assert outline is not None
    assert outline.props["alt"] == "", "decorative: the card's text says what the job is"
    response = await fetch(outline.props["src"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"
    drawn = Image.open(io.BytesIO(response.content))
    assert max(drawn.size) <= 512 and drawn.mode == "RGBA"
    assert drawn.getchannel("A").getbbox() is not None, "the outline is drawn"
    assert (await fetch(outline.props["src"])).content == response.content

    assert (await fetch(f"/media/masks/{'0' * 64}/outline")).status_code == 404
    assert (await fetch("/media/masks/..%2Fimgedit.sqlite3/outline")).status_code == 404
    provider.gate.set()
    for job in (plain, masked):
        assert (await services.registry.wait(JobId(job))).stage is JobStage.COMPLETED


async def test_a_provider_that_redraws_everything_changes_only_the_area(start: Callable[[], Services]) -> None:
    """A model may take the mask as a hint and answer the whole picture redrawn, at a size of its
    own (the masked test engine answers a flat green 32×24): the stored result is the source's
    size and exactly the source outside the area."""
    services = start()
    source_id = await add_source(services)
    mask_id = await services.studio.prepare_mask(source_id, painted())
    provider = services.providers.get("masked")
    assert isinstance(provider, MaskedGated)
    provider.gate.set()
    final = await services.registry.wait(
        services.studio.submit_edit(source_id, "make it green", Quality.LOW, "masked", mask=mask_id)
    )
    assert final.stage is JobStage.COMPLETED and final.result_image_id is not None
    source = decoded(await services.store.read_bytes(source_id))
    result = decoded(await services.store.read_bytes(final.result_image_id))
    assert result.size == source.size == SIZE
    assert outside_unchanged(result, source, area_of())
    left, top, right, bottom = AREA
    assert result.getpixel(((left + right) // 2, (top + bottom) // 2)) == (10, 200, 30)
