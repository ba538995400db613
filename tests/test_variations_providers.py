"""Variations: one request for n results on OpenAI, SD WebUI and ComfyUI, over real loopback.

Each provider runs unchanged against its fake (``tests.fake_openai``, ``tests.fake_sdwebui``,
``tests.fake_comfyui``), which makes result i of a batch visibly different from result 0, so a
test can tell that n distinct images came back in order. What went over the wire is read from
the fakes: ``n``, ``batch_size``, the workflow's batch node, or one prompt per variation.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from imgedit.errors import InvalidRequest, ProviderFailed
from imgedit.masks import from_area
from imgedit.models import JobKind, Quality
from imgedit.providers.base import ProviderRequest, ProviderResult
from imgedit.providers.comfyui import ComfyUIProvider
from imgedit.providers.comfyui_workflow import SHIPPED, load_workflows
from imgedit.providers.openai import OpenAIProvider
from imgedit.providers.sdwebui import SdWebUiProvider
from tests.fake_comfyui import FakeComfyUI, StartServer, comfy_servers
from tests.fake_openai import FakeOpenAI, Short, generated_image, serve_openai, variation
from tests.fake_sdwebui import FakeWebUI
from tests.fakes import RecordingSink
from tests.loopback import serve

KEY = "sk-test-variations"


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def results(result: ProviderResult) -> list[Image.Image]:
    return [decoded(data) for data in (result.image, *result.more)]


def source(size: tuple[int, int] = (64, 48)) -> bytes:
    image = Image.new("RGB", size)
    image.putdata([(x * 4 % 256, y * 5 % 256, 90) for y in range(size[1]) for x in range(size[0])])
    return png(image)


def request(kind: JobKind, count: int, **options: Any) -> ProviderRequest:
    image = source() if kind is JobKind.EDIT else None
    return ProviderRequest(
        kind=kind,
        prompt=options.pop("prompt", "a red fox"),
        quality=Quality.LOW,
        image=image,
        count=count,
        **options,
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as client:
        yield client


# -- OpenAI ------------------------------------------------------------------------------------


@pytest.fixture
def openai_fake() -> Iterator[tuple[FakeOpenAI, str]]:
    with serve_openai(KEY) as served:
        yield served


def openai(http: httpx.AsyncClient, base_url: str, **options: Any) -> OpenAIProvider:
    return OpenAIProvider(client=http, api_key=KEY, base_url=base_url, **options)


async def test_openai_asks_for_n_in_one_unstreamed_call_and_returns_every_image_in_order(
    openai_fake: tuple[FakeOpenAI, str], http: httpx.AsyncClient
) -> None:
    state, base_url = openai_fake
    provider = openai(http, base_url)  # streams partial images for a single result
    assert provider.capabilities.variations == 4

    result = await provider.generate(
        request(JobKind.GENERATE, 3, prompt="a teal lighthouse"), RecordingSink()
    )

    sent = state.last.json
    assert sent is not None and sent["n"] == 3
    assert "stream" not in sent and "partial_images" not in sent  # n images: the plain JSON answer
    assert state.last.headers["accept"] == "application/json"
    drawn = generated_image("a teal lighthouse", (1024, 1024))
    assert [image.tobytes() for image in results(result)] == [variation(drawn, i).tobytes() for i in range(3)]
    assert len({image.tobytes() for image in results(result)}) == 3


async def test_openai_edit_sends_n_in_the_multipart_form(
    openai_fake: tuple[FakeOpenAI, str], http: httpx.AsyncClient
) -> None:
    state, base_url = openai_fake

    result = await openai(http, base_url, partial_images=0).edit(request(JobKind.EDIT, 2), RecordingSink())

    assert state.last.fields["n"] == "2" and "stream" not in state.last.fields
    first, second = results(result)
    assert first.size == second.size == (64, 48) and first.tobytes() != second.tobytes()
    assert second.tobytes() == variation(first, 1).tobytes()


async def test_openai_returning_fewer_images_than_asked_fails_and_says_so(
    openai_fake: tuple[FakeOpenAI, str], http: httpx.AsyncClient
) -> None:
    state, base_url = openai_fake
    state.script(Short(2))

    with pytest.raises(ProviderFailed, match=r"returned 2 images of the 3 asked for"):
        await openai(http, base_url).generate(request(JobKind.GENERATE, 3), RecordingSink())


async def test_openai_count_1_still_streams_exactly_as_before(
    openai_fake: tuple[FakeOpenAI, str], http: httpx.AsyncClient
) -> None:
    state, base_url = openai_fake

    result = await openai(http, base_url).generate(request(JobKind.GENERATE, 1), RecordingSink())

    assert state.last.json == {
        "model": "gpt-image-1.5",
        "prompt": "a red fox",
        "quality": "low",
        "size": "auto",
        "output_format": "png",
        "n": 1,
        "stream": True,
        "partial_images": 2,
    }
    assert result.more == ()


async def test_dall_e_3_makes_one_image_per_request(
    openai_fake: tuple[FakeOpenAI, str], http: httpx.AsyncClient
) -> None:
    state, base_url = openai_fake
    provider = openai(http, base_url, model="dall-e-3")
    assert provider.capabilities.variations == 1

    with pytest.raises(InvalidRequest, match="1 to 1 images"):
        await provider.generate(request(JobKind.GENERATE, 2), RecordingSink())
    assert state.requests == []  # refused here, before a paid call
    # ... as the API would have refused it; and n stays within 1..10 for every model.
    for model, n in (("dall-e-3", 2), ("gpt-image-1.5", 11), ("gpt-image-1.5", 0)):
        answer = await http.post(
            f"{base_url}/images/generations",
            json={"model": model, "prompt": "a fox", "n": n},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "n"


# -- SD WebUI ----------------------------------------------------------------------------------


@pytest.fixture
def webui() -> Iterator[Callable[..., tuple[FakeWebUI, str]]]:
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> tuple[FakeWebUI, str]:
            fake = FakeWebUI(**{"step_seconds": 0.001, **options})
            return fake, stack.enter_context(serve(fake.app()))

        yield start


def sdwebui(http: httpx.AsyncClient, url: str) -> SdWebUiProvider:
    return SdWebUiProvider(client=http, urls=[url], poll_interval=0.02)


@pytest.mark.parametrize("extra_images", [0, 2])
async def test_sdwebui_asks_for_one_batch_and_keeps_its_images_in_order(
    webui: Callable[..., tuple[FakeWebUI, str]], http: httpx.AsyncClient, extra_images: int
) -> None:
    """An extension's extra images after the batch (ControlNet's maps) are not results."""
    fake, url = webui()
    fake.extra_images = extra_images
    provider = sdwebui(http, url)
    assert provider.capabilities.variations == 4

    result = await provider.generate(request(JobKind.GENERATE, 3, seed=7), RecordingSink())

    sent = fake.received[-1]
    assert (sent["batch_size"], sent["n_iter"], sent["save_images"]) == (3, 1, False)
    corners = [image.getpixel((0, 0)) for image in results(result)]
    assert corners == [(255, 0, 0), (255, 50, 0), (255, 100, 0)]  # the red fox, then its siblings
    assert result.metadata["seed"] == "7" and result.metadata["seeds"] == "7,8,9"


async def test_sdwebui_edit_batch_and_count_1_sends_what_it_sent_before(
    webui: Callable[..., tuple[FakeWebUI, str]], http: httpx.AsyncClient
) -> None:
    fake, url = webui()
    provider = sdwebui(http, url)

    single = await provider.edit(request(JobKind.EDIT, 1), RecordingSink())
    double = await provider.edit(request(JobKind.EDIT, 2), RecordingSink())

    first, second = fake.received
    assert first["batch_size"] == 1 and first["n_iter"] == 1 and "seeds" not in single.metadata
    assert {k: v for k, v in second.items() if k not in ("batch_size", "force_task_id")} == {
        k: v for k, v in first.items() if k not in ("batch_size", "force_task_id")
    }
    assert second["batch_size"] == 2 and single.more == ()
    images = results(double)
    assert (
        images[0].tobytes() == decoded(single.image).tobytes() and images[1].tobytes() != images[0].tobytes()
    )


async def test_sdwebui_answering_fewer_images_than_asked_fails_and_says_so(
    webui: Callable[..., tuple[FakeWebUI, str]], http: httpx.AsyncClient
) -> None:
    fake, url = webui()
    fake.answer_images = 2

    with pytest.raises(ProviderFailed, match=r"returned 2 images of the 3 asked for"):
        await sdwebui(http, url).generate(request(JobKind.GENERATE, 3), RecordingSink())


# -- ComfyUI -----------------------------------------------------------------------------------


@pytest.fixture
def comfy() -> Iterator[StartServer]:
    """Starts fake ComfyUI servers on loopback; at the end lets held prompts go, then stops them."""
    with comfy_servers() as start:
        yield start


def comfyui(http: httpx.AsyncClient, url: str, **options: Any) -> ComfyUIProvider:
    return ComfyUIProvider(client=http, urls=[url], poll_interval=0.01, **options)


def sampled(seed: int, index: int = 0) -> tuple[int, int, int]:
    """The colour the fake's KSampler paints item ``index`` of a batch for ``seed``."""
    return (seed * 97) % 256, (seed * 57 + 80) % 256, (seed * 31 + 160 + 60 * index) % 256


async def test_comfyui_generates_a_batch_in_one_prompt_and_fetches_every_image(
    comfy: Callable[..., tuple[FakeComfyUI, str]], http: httpx.AsyncClient
) -> None:
    fake, url = comfy()
    provider = comfyui(http, url)
    assert provider.capabilities.variations == 4

    result = await provider.generate(request(JobKind.GENERATE, 3, seed=5), RecordingSink())

    (sent,) = fake.prompts
    assert sent["prompt"]["5"]["inputs"]["batch_size"] == 3 and sent["prompt"]["3"]["inputs"]["seed"] == 5
    centres = [image.getpixel((100, 100)) for image in results(result)]
    assert centres == [sampled(5, 0), sampled(5, 1), sampled(5, 2)]


async def test_comfyui_edit_repeats_the_encoded_source_for_the_batch(
    comfy: Callable[..., tuple[FakeComfyUI, str]], http: httpx.AsyncClient
) -> None:
    fake, url = comfy()

    result = await comfyui(http, url).edit(request(JobKind.EDIT, 3, seed=2), RecordingSink())

    graph = fake.prompts[0]["prompt"]
    assert graph["15"]["class_type"] == "RepeatLatentBatch" and graph["15"]["inputs"]["amount"] == 3
    assert graph["3"]["inputs"]["latent_image"] == ["15", 0]
    images = results(result)
    assert len(images) == 3 and len({image.tobytes() for image in images}) == 3


async def test_comfyui_region_edit_variations_each_keep_the_rest_of_the_picture(
    comfy: Callable[..., tuple[FakeComfyUI, str]], http: httpx.AsyncClient
) -> None:
    """The shipped inpaint repeats the source itself: its final composite needs the batch too
    (onto one source image, a batch would come out as one)."""
    fake, url = comfy()
    area = Image.new("L", (64, 48), 0)
    area.paste(255, (0, 0, 32, 48))  # the left half changes
    mask = from_area(area)
    original = decoded(source())

    result = await comfyui(http, url).edit(request(JobKind.EDIT, 2, seed=3, mask=mask), RecordingSink())

    graph = fake.prompts[0]["prompt"]
    assert graph["15"]["class_type"] == "RepeatImageBatch" and graph["15"]["inputs"]["amount"] == 2
    first, second = results(result)
    for image in (first, second):
        assert image.crop((32, 0, 64, 48)).tobytes() == original.crop((32, 0, 64, 48)).tobytes()
    assert first.crop((0, 0, 32, 48)).tobytes() != second.crop((0, 0, 32, 48)).tobytes()


async def test_comfyui_workflow_without_a_batch_mark_runs_once_per_variation_seed_after_seed(
    comfy: Callable[..., tuple[FakeComfyUI, str]],
    http: httpx.AsyncClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = json.loads((SHIPPED / "generate.json").read_text())
    graph["5"]["_meta"]["title"] = "imgedit:size"  # a user's workflow, made before imgedit:batch
    (tmp_path / "plain.json").write_text(json.dumps(graph))
    fake, url = comfy()
    provider = comfyui(http, url, workflow_folder=tmp_path)
    sink = RecordingSink()
    caplog.set_level(logging.INFO, logger="imgedit.providers.comfyui")

    result = await provider.generate(request(JobKind.GENERATE, 3, seed=40, variant="plain"), sink)
    await provider.generate(request(JobKind.GENERATE, 2, seed=1, variant="plain"), RecordingSink())

    seeds = [p["prompt"]["3"]["inputs"]["seed"] for p in fake.prompts[:3]]
    batches = {p["prompt"]["5"]["inputs"]["batch_size"] for p in fake.prompts}
    assert seeds == [40, 41, 42] and batches == {1}
    assert len({p["prompt_id"] for p in fake.prompts}) == 5
    assert [image.getpixel((10, 10)) for image in results(result)] == [sampled(40), sampled(41), sampled(42)]
    assert result.metadata["seeds"] == "40,41,42"
    fractions = [fraction for fraction, _ in sink.updates]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(message and message.startswith("Variation 3 of 3: Step") for _, message in sink.updates)
    said = [r for r in caplog.records if "has no imgedit:batch" in r.getMessage()]
    assert len(said) == 1  # once, not per job


async def test_comfyui_batch_that_comes_out_short_fails_and_says_so(
    comfy: Callable[..., tuple[FakeComfyUI, str]], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A user's edit that composites the batch onto the one source: ComfyUI cuts it to one."""
    graph = json.loads((SHIPPED / "edit.json").read_text())
    graph["16"] = {
        "class_type": "ImageCompositeMasked",
        "inputs": {"destination": ["10", 0], "source": ["8", 0], "x": 0, "y": 0, "resize_source": True},
        "_meta": {"title": "Paste onto the source"},
    }
    graph["9"]["inputs"]["images"] = ["16", 0]
    (tmp_path / "pasted.json").write_text(json.dumps(graph))
    _, url = comfy()

    with pytest.raises(ProviderFailed, match=r"returned 1 image of the 3 asked for"):
        await comfyui(http, url, workflow_folder=tmp_path).edit(
            request(JobKind.EDIT, 3, variant="pasted"), RecordingSink()
        )


async def test_comfyui_count_1_sends_the_workflow_as_before(
    comfy: Callable[..., tuple[FakeComfyUI, str]], http: httpx.AsyncClient
) -> None:
    fake, url = comfy()
    provider = comfyui(http, url)

    generated = await provider.generate(request(JobKind.GENERATE, 1, seed=9), RecordingSink())
    await provider.edit(request(JobKind.EDIT, 1, seed=9), RecordingSink())

    generate, edit = (p["prompt"] for p in fake.prompts)
    expected = load_workflows()["generate"].fill(prompt="a red fox", seed=9, steps=12, size=(512, 512))
    assert generate == expected and generate["5"]["inputs"]["batch_size"] == 1
    assert edit["15"]["inputs"]["amount"] == 1
    assert generated.more == () and "seeds" not in generated.metadata


async def test_comfyui_refuses_variations_of_a_workflow_that_cannot_vary(
    comfy: Callable[..., tuple[FakeComfyUI, str]], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    graph = json.loads((SHIPPED / "generate.json").read_text())
    graph["5"]["_meta"]["title"] = "imgedit:size"
    graph["3"]["_meta"]["title"] = "KSampler imgedit:steps"
    (tmp_path / "fixed.json").write_text(json.dumps(graph))
    fake, url = comfy()

    with pytest.raises(InvalidRequest, match="neither imgedit:batch nor imgedit:seed"):
        await comfyui(http, url, workflow_folder=tmp_path).generate(
            request(JobKind.GENERATE, 2, variant="fixed"), RecordingSink()
        )
    assert fake.prompts == []


def test_the_batch_mark_fills_batch_size_or_amount() -> None:
    workflows = load_workflows()
    assert workflows["generate"].marks["batch"].inputs == ("batch_size",)
    assert workflows["edit"].marks["batch"].inputs == ("amount",)
    assert workflows["inpaint"].marks["batch"].inputs == ("amount",)
    assert workflows["edit"].fill(prompt="x", batch=4)["15"]["inputs"]["amount"] == 4
