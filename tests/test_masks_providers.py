"""Region edits on the remote providers, each against its fake over real loopback sockets.

For OpenAI, SD WebUI and ComfyUI: the selected area reaches the server in the form its API
expects (decoded on the fake's side: the source's size, transparent or white where painted), the
fake applies it as the real server does so the result changes only inside the area, and a mask
that does not fit is a readable failure. ComfyUI also picks or refuses a workflow for the area.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui.testing import User
from PIL import Image, ImageDraw

from imgedit import masks
from imgedit.errors import InvalidRequest, ProviderFailed, ProviderRejected
from imgedit.models import JobKind, Quality
from imgedit.providers.base import ProviderRequest
from imgedit.providers.comfyui import ComfyUIProvider
from imgedit.providers.comfyui_workflow import SHIPPED, WorkflowError, load_workflows, parse_workflow
from imgedit.providers.openai import OpenAIProvider
from imgedit.providers.sdwebui import SdWebUiProvider
from tests.conftest import app_services
from tests.fake_comfyui import FakeComfyUI, serve_comfyui
from tests.fake_openai import FakeOpenAI, make_app
from tests.fake_sdwebui import IMG2IMG, FakeWebUI
from tests.fakes import RecordingSink, eventually
from tests.loopback import serve

KEY = "sk-test-fake-openai-key"
SIZE = (128, 96)
BOX = (40, 24, 88, 72)
"""The selected area: a rectangle (left, top, right, bottom) in the middle of the source."""


def source_png(size: tuple[int, int] = SIZE) -> bytes:
    """A gradient, so a changed pixel anywhere is told from an unchanged one."""
    image = Image.new("RGB", size)
    image.putdata(
        [(x * 255 // size[0], y * 255 // size[1], 90) for y in range(size[1]) for x in range(size[0])]
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def plain_png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (20, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def kept_mask(size: tuple[int, int] = SIZE, box: tuple[int, int, int, int] = BOX) -> bytes:
    """The kept form of a painted rectangle, as Studio.prepare_mask keeps it."""
    area = Image.new("L", size, 0)
    ImageDraw.Draw(area).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    return masks.from_area(area)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def edit(mask: bytes | None = None, image: bytes | None = None, **kw: Any) -> ProviderRequest:
    return ProviderRequest(
        kind=JobKind.EDIT,
        prompt="a red hat",
        quality=Quality.LOW,
        image=source_png() if image is None else image,
        mask=mask,
        **kw,
    )


def inside(box: tuple[int, int, int, int], margin: int = 0) -> list[tuple[int, int]]:
    left, top, right, bottom = box
    return [
        (x, y) for y in range(top + margin, bottom - margin) for x in range(left + margin, right - margin)
    ]


def outside(size: tuple[int, int], box: tuple[int, int, int, int], margin: int = 0) -> list[tuple[int, int]]:
    left, top, right, bottom = box
    return [
        (x, y)
        for y in range(size[1])
        for x in range(size[0])
        if not (left - margin <= x < right + margin and top - margin <= y < bottom + margin)
    ]


def changed(before: Image.Image, after: Image.Image, points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    a, b = before.convert("RGB"), after.convert("RGB")
    return [p for p in points if a.getpixel(p) != b.getpixel(p)]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(15.0)) as client:
        yield client


# -- OpenAI ----------------------------------------------------------------------------------------


@pytest.fixture
def openai_server() -> Iterator[tuple[FakeOpenAI, str]]:
    state = FakeOpenAI(api_key=KEY)
    with serve(make_app(state)) as base:
        yield state, base + "/v1"


async def test_openai_gets_the_mask_as_a_png_part_of_the_images_size_and_changes_only_the_area(
    openai_server: tuple[FakeOpenAI, str], http: httpx.AsyncClient
) -> None:
    state, base = openai_server
    provider = OpenAIProvider(client=http, api_key=KEY, base_url=base)
    assert provider.capabilities.mask

    result = await provider.edit(edit(kept_mask()), RecordingSink())

    (part,) = [u for u in state.last.uploads if u.field == "mask"]
    assert (part.content_type, part.format, part.size) == ("image/png", "PNG", SIZE)
    sent = decoded(state.last.mask or b"")
    assert "A" in sent.getbands()
    assert {sent.getpixel(p)[3] for p in inside(BOX)} == {0}  # transparent: edit here
    assert {sent.getpixel(p)[3] for p in outside(SIZE, BOX)} == {255}
    before, after = decoded(source_png()), decoded(result.image)
    assert after.size == SIZE
    assert changed(before, after, outside(SIZE, BOX)) == []
    assert len(changed(before, after, inside(BOX))) == len(inside(BOX))


async def test_openai_re_encodes_a_gif_source_and_the_mask_still_fits_it(
    openai_server: tuple[FakeOpenAI, str], http: httpx.AsyncClient
) -> None:
    state, base = openai_server
    buffer = io.BytesIO()
    decoded(source_png()).convert("P").save(buffer, "GIF")
    provider = OpenAIProvider(client=http, api_key=KEY, base_url=base, partial_images=0)

    await provider.edit(edit(kept_mask(), image=buffer.getvalue()), RecordingSink())

    sizes = {u.field: (u.format, u.size) for u in state.last.uploads}
    assert sizes == {"image": ("PNG", SIZE), "mask": ("PNG", SIZE)}
    assert state.last.outcome == "ok"


async def test_openai_a_mask_of_another_size_is_refused_before_anything_is_sent(
    openai_server: tuple[FakeOpenAI, str], http: httpx.AsyncClient
) -> None:
    state, base = openai_server
    provider = OpenAIProvider(client=http, api_key=KEY, base_url=base)

    with pytest.raises(InvalidRequest, match="The selected area is 64×48 but the image is 128×96"):
        await provider.edit(edit(kept_mask((64, 48), (10, 10, 30, 30))), RecordingSink())

    assert state.requests == []


async def test_openai_a_mask_too_big_for_dall_e_2_is_refused_before_anything_is_sent(
    openai_server: tuple[FakeOpenAI, str], http: httpx.AsyncClient
) -> None:
    state, base = openai_server
    size = (1100, 1100)
    noise = Image.frombytes("RGBA", size, os.urandom(size[0] * size[1] * 4))  # does not compress
    buffer = io.BytesIO()
    noise.save(buffer, "PNG", compress_level=1)
    assert len(buffer.getvalue()) > 4 * 2**20
    provider = OpenAIProvider(client=http, api_key=KEY, base_url=base, model="dall-e-2", input_fidelity=None)

    with pytest.raises(InvalidRequest, match="accepts masks of less than 4 MB"):
        await provider.edit(edit(buffer.getvalue(), image=plain_png(size)), RecordingSink())

    assert state.requests == []


async def test_the_fake_openai_refuses_a_mask_of_another_size_like_the_api(
    openai_server: tuple[FakeOpenAI, str], http: httpx.AsyncClient
) -> None:
    _, base = openai_server
    response = await http.post(
        f"{base}/images/edits",
        headers={"Authorization": f"Bearer {KEY}"},
        data={"prompt": "a red hat", "model": "gpt-image-1.5"},
        files={
            "image": ("image.png", source_png(), "image/png"),
            "mask": ("mask.png", kept_mask((64, 48), (10, 10, 30, 30)), "image/png"),
        },
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "mask")
    assert "64x48" in error["message"] and "128x96" in error["message"]


async def test_openai_a_mask_without_alpha_is_refused_by_the_server_with_its_words(
    openai_server: tuple[FakeOpenAI, str], http: httpx.AsyncClient
) -> None:
    state, base = openai_server
    provider = OpenAIProvider(client=http, api_key=KEY, base_url=base)
    no_alpha = masks.white_on_black(kept_mask())  # SD's form, not OpenAI's

    with pytest.raises(ProviderRejected) as caught:
        await provider.edit(edit(no_alpha), RecordingSink())

    assert "mask image missing alpha channel" in str(caught.value)
    assert (caught.value.status, caught.value.code) == (400, "invalid_mask_image_format")
    assert not caught.value.retryable
    assert len(state.requests) == 1


# -- SD WebUI --------------------------------------------------------------------------------------


@pytest.fixture
def webui() -> Iterator[tuple[FakeWebUI, str]]:
    fake = FakeWebUI(step_seconds=0.0)
    with serve(fake.app()) as url:
        yield fake, url


async def test_sdwebui_inpaints_the_whole_picture_with_a_white_on_black_mask_changing_only_the_area(
    webui: tuple[FakeWebUI, str], http: httpx.AsyncClient
) -> None:
    fake, url = webui
    provider = SdWebUiProvider(client=http, urls=[url], poll_interval=0.02)
    assert provider.capabilities.mask

    result = await provider.edit(edit(kept_mask()), RecordingSink())

    payload = fake.received[-1]
    assert payload["inpainting_fill"] == 1 and payload["inpaint_full_res"] is False
    assert payload["inpainting_mask_invert"] == 0
    blur = payload["mask_blur"]
    assert isinstance(blur, int) and 1 <= blur <= 24
    sent = decoded(base64.b64decode(payload["mask"]))
    assert sent.size == SIZE and sent.format == "PNG"
    grey = sent.convert("L")
    assert {grey.getpixel(p) for p in inside(BOX)} == {255}  # white: change
    assert {grey.getpixel(p) for p in outside(SIZE, BOX)} == {0}
    after = decoded(result.image)
    scale = after.width / SIZE[0]
    before = decoded(source_png()).convert("RGB").resize(after.size)  # A1111 works at its own size
    area = tuple(round(v * scale) for v in BOX)
    reach = round(4 * blur * scale)  # the blurred, doubled overlay reaches this far out
    assert changed(before, after, outside(after.size, area, margin=reach)) == []  # type: ignore[arg-type]
    middle = inside(area, margin=reach)  # type: ignore[arg-type]
    assert middle and len(changed(before, after, middle)) == len(middle)


async def test_sdwebui_a_mask_of_another_size_is_refused_before_anything_is_sent(
    webui: tuple[FakeWebUI, str], http: httpx.AsyncClient
) -> None:
    fake, url = webui
    provider = SdWebUiProvider(client=http, urls=[url], poll_interval=0.02)

    with pytest.raises(InvalidRequest, match="select the area again"):
        await provider.edit(edit(kept_mask((64, 48), (10, 10, 30, 30))), RecordingSink())

    assert fake.received == []


async def test_the_fake_sdwebui_reads_the_kept_form_by_its_alpha_as_a1111_does(
    webui: tuple[FakeWebUI, str], http: httpx.AsyncClient
) -> None:
    """Sent as it is kept, the mask would be read inverted (opaque = change): the reason the
    provider converts it. The fake must show that, or the test above proves nothing."""
    _, url = webui
    body = {
        "init_images": [base64.b64encode(source_png()).decode()],
        "mask": base64.b64encode(kept_mask()).decode(),
        "mask_blur": 0,
        "inpainting_fill": 1,
        "inpaint_full_res": False,
        "prompt": "a red hat",
        "steps": 4,
        "width": SIZE[0],
        "height": SIZE[1],
        "denoising_strength": 0.5,
    }
    response = await http.post(url + IMG2IMG, json=body)

    assert response.status_code == 200, response.text
    after = decoded(base64.b64decode(response.json()["images"][0]))
    before = decoded(source_png()).convert("RGB")
    assert changed(before, after, inside(BOX)) == []
    assert changed(before, after, outside(SIZE, BOX, margin=1)) != []
    assert response.json()["parameters"]["mask"] is None


async def test_the_fake_sdwebui_answers_500_for_a_mask_that_does_not_decode(
    webui: tuple[FakeWebUI, str], http: httpx.AsyncClient
) -> None:
    fake, url = webui
    body = {
        "init_images": [base64.b64encode(source_png()).decode()],
        "mask": "bm90IGFuIGltYWdl",
        "steps": 4,
        "width": 64,
        "height": 48,
    }
    response = await http.post(url + IMG2IMG, json=body)

    assert response.status_code == 500
    assert (
        response.json()["error"] == "HTTPException" and response.json()["detail"] == "Invalid encoded image"
    )
    assert fake.jobs == []  # refused before the queue


# -- ComfyUI ---------------------------------------------------------------------------------------


@pytest.fixture
def comfy() -> Iterator[tuple[FakeComfyUI, str]]:
    fake = FakeComfyUI()
    with contextlib.ExitStack() as stack:
        yield fake, stack.enter_context(serve_comfyui(fake))
        fake.release()


def comfy_provider(http: httpx.AsyncClient, url: str, **options: Any) -> ComfyUIProvider:
    return ComfyUIProvider(
        client=http,
        urls=[url],
        **{"poll_interval": 0.01, "reconnect_window": 10.0, "quiet_check": 5.0, **options},
    )


def uploaded(fake: FakeComfyUI, name: str) -> bytes:
    assert fake.root is not None
    return (fake.root / "input" / name).read_bytes()


async def test_comfyui_offers_region_edits_when_a_workflow_has_the_mask_mark(http: httpx.AsyncClient) -> None:
    shipped = comfy_provider(http, "http://127.0.0.1:9")
    assert shipped.capabilities.mask
    assert shipped.workflows(JobKind.EDIT) == ["edit"]  # whole-image edits: as before
    assert shipped.variants(JobKind.EDIT, mask=True) == ["inpaint"]
    assert shipped.variants(JobKind.GENERATE, mask=True) == []
    workflows = load_workflows()
    plain = comfy_provider(
        http, "http://127.0.0.1:9", workflows={"edit": workflows["edit"], "generate": workflows["generate"]}
    )
    assert not plain.capabilities.mask


async def test_comfyui_a_region_edit_on_the_default_runs_the_shipped_inpaint_workflow(
    comfy: tuple[FakeComfyUI, str], http: httpx.AsyncClient
) -> None:
    fake, url = comfy
    mask = kept_mask()

    result = await comfy_provider(http, url).edit(edit(mask, seed=3), RecordingSink())

    assert result.metadata["workflow"] == "inpaint"
    graph = fake.prompts[-1]["prompt"]
    node = graph["12"]
    assert node["class_type"] == "LoadImageMask" and node["inputs"]["channel"] == "alpha"
    assert uploaded(fake, node["inputs"]["image"]) == mask  # the kept form, as it is
    assert uploaded(fake, graph["10"]["inputs"]["image"]) == source_png()
    (name, read), *_ = fake.mask_loads
    assert name == node["inputs"]["image"] and read.size == SIZE
    assert {read.getpixel(p) for p in inside(BOX)} == {255}  # 1: inpaint here
    assert {read.getpixel(p) for p in outside(SIZE, BOX)} == {0}
    before, after = decoded(source_png()), decoded(result.image)
    assert after.size == SIZE
    assert changed(before, after, outside(SIZE, BOX)) == []
    assert len(changed(before, after, inside(BOX))) == len(inside(BOX))


async def test_comfyui_a_chosen_workflow_without_the_mark_is_refused_naming_those_with_it(
    comfy: tuple[FakeComfyUI, str], http: httpx.AsyncClient
) -> None:
    fake, url = comfy

    with pytest.raises(InvalidRequest) as caught:
        await comfy_provider(http, url).edit(edit(kept_mask(), variant="edit"), RecordingSink())

    assert "“edit” cannot edit a selected area" in str(caught.value) and "“inpaint”" in str(caught.value)
    assert fake.prompts == [] and fake.uploads == []


async def test_comfyui_without_a_workflow_taking_a_mask_a_region_edit_is_refused(
    comfy: tuple[FakeComfyUI, str], http: httpx.AsyncClient
) -> None:
    fake, url = comfy
    workflows = load_workflows()
    provider = comfy_provider(
        http, url, workflows={"edit": workflows["edit"], "generate": workflows["generate"]}
    )

    with pytest.raises(InvalidRequest, match="No ComfyUI edit workflow can edit a selected area"):
        await provider.edit(edit(kept_mask()), RecordingSink())

    assert fake.prompts == []


async def test_comfyui_a_default_edit_workflow_with_the_mark_takes_the_region_itself(
    comfy: tuple[FakeComfyUI, str], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    (tmp_path / "edit.json").write_text((SHIPPED / "inpaint.json").read_text())
    fake, url = comfy

    result = await comfy_provider(http, url, workflow_folder=tmp_path).edit(
        edit(kept_mask()), RecordingSink()
    )

    assert result.metadata["workflow"] == "edit"
    assert fake.prompts[-1]["prompt"]["12"]["class_type"] == "LoadImageMask"


async def test_comfyui_an_edit_without_an_area_on_inpaint_changes_the_whole_picture(
    comfy: tuple[FakeComfyUI, str], http: httpx.AsyncClient
) -> None:
    fake, url = comfy

    result = await comfy_provider(http, url).edit(edit(None, variant="inpaint", seed=3), RecordingSink())

    graph = fake.prompts[-1]["prompt"]
    clear = decoded(uploaded(fake, graph["12"]["inputs"]["image"]))
    assert clear.size == SIZE and clear.getchannel("A").getextrema() == (0, 0)
    (_, read), *_ = fake.mask_loads
    assert read.getextrema() == (255, 255)
    before, after = decoded(source_png()), decoded(result.image)
    assert changed(before, after, [(0, 0), (SIZE[0] - 1, SIZE[1] - 1), (60, 40)]) == [
        (0, 0),
        (SIZE[0] - 1, SIZE[1] - 1),
        (60, 40),
    ]


async def test_comfyui_a_mask_of_another_size_is_refused_before_any_upload(
    comfy: tuple[FakeComfyUI, str], http: httpx.AsyncClient
) -> None:
    fake, url = comfy

    with pytest.raises(InvalidRequest, match="The selected area is 64×48 but the image is 128×96"):
        await comfy_provider(http, url).edit(edit(kept_mask((64, 48), (10, 10, 30, 30))), RecordingSink())

    assert fake.uploads == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (
            lambda g: g["12"]["inputs"].update(channel="red"),
            "reads the red channel; set its channel to alpha",
        ),
        (lambda g: g["10"]["_meta"].update(title="Source"), "has imgedit:mask but no imgedit:image"),
        (lambda g: g["11"]["_meta"].update(title="imgedit:mask"), "imgedit:mask marks both node"),
    ],
)
def test_a_badly_marked_mask_says_what_is_wrong(change: Any, complaint: str) -> None:
    graph = json.loads((SHIPPED / "inpaint.json").read_text())
    change(graph)
    with pytest.raises(WorkflowError, match=complaint):
        parse_workflow("mine", json.dumps(graph), "mine.json")


async def test_the_fake_comfyui_runs_a_users_vae_encode_for_inpaint_workflow(
    comfy: tuple[FakeComfyUI, str], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A common hand-made inpainting graph: VAEEncodeForInpaint, no composite at the end."""
    graph = json.loads((SHIPPED / "inpaint.json").read_text())
    graph["11"] = {
        "class_type": "VAEEncodeForInpaint",
        "inputs": {"pixels": ["10", 0], "vae": ["4", 2], "mask": ["12", 0], "grow_mask_by": 6},
        "_meta": {"title": "VAE Encode (for inpainting)"},
    }
    del graph["13"], graph["14"]
    graph["3"]["inputs"]["latent_image"] = ["11", 0]
    graph["3"]["inputs"]["denoise"] = 1.0
    graph["9"]["inputs"]["images"] = ["8", 0]
    (tmp_path / "grown.json").write_text(json.dumps(graph))
    _, url = comfy

    result = await comfy_provider(http, url, workflow_folder=tmp_path).edit(
        edit(kept_mask(), variant="grown", seed=3), RecordingSink()
    )

    before, after = decoded(source_png()), decoded(result.image)
    assert changed(before, after, outside(SIZE, BOX, margin=4)) == []
    assert len(changed(before, after, inside(BOX))) == len(inside(BOX))


async def test_comfyui_a_failing_inpaint_run_is_a_readable_failure(
    comfy: tuple[FakeComfyUI, str], http: httpx.AsyncClient
) -> None:
    fake, url = comfy
    fake.fail_node = "SetLatentNoiseMask"

    with pytest.raises(ProviderFailed, match="SetLatentNoiseMask"):
        await comfy_provider(http, url).edit(edit(kept_mask()), RecordingSink())


# -- in the app ------------------------------------------------------------------------------------


@pytest.fixture
def comfyui_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeComfyUI]:
    """A fake ComfyUI the app is configured with, as a user would: IMGEDIT_COMFYUI_URLS."""
    fake = FakeComfyUI()
    with serve_comfyui(fake) as base:
        monkeypatch.setenv("IMGEDIT_COMFYUI_URLS", base)
        yield fake


async def test_a_region_edit_queued_in_the_studio_reaches_comfyui_and_keeps_the_rest(
    comfyui_app: FakeComfyUI, user: User
) -> None:
    await user.open("/")
    services = app_services()
    assert services.providers.get("comfyui").capabilities.mask
    source = services.store.list()[0]
    size = (source.width, source.height)
    box = (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2)
    mask_id = await services.studio.prepare_mask(source.id, kept_mask(size, box))
    before = len(services.store)

    services.studio.submit_edit(source.id, "a red hat", Quality.LOW, "comfyui", mask=mask_id, seed=3)

    await eventually(lambda: len(services.store) == before + 1, message="the result")
    result = services.store.list()[0]
    assert result.parent_id == source.id and result.provider == "comfyui"
    assert comfyui_app.prompts[-1]["prompt"]["12"]["class_type"] == "LoadImageMask"
    original = decoded(await services.store.read_bytes(source.id))
    after = decoded(await services.store.read_bytes(result.id))
    step = 7  # every 7th pixel: the whole picture, quickly
    far = [p for p in outside(size, box) if p[0] % step == 0 and p[1] % step == 0]
    near = [p for p in inside(box) if p[0] % step == 0 and p[1] % step == 0]
    assert changed(original, after, far) == []
    assert len(changed(original, after, near)) == len(near)
