"""Advanced settings (negative prompt, seed, steps, guidance, strength) on SD WebUI and ComfyUI.

Over real loopback HTTP against the fakes (``tests.fake_sdwebui``, ``tests.fake_comfyui``): what
each server received is read back from the fake, and the progress the provider reported is what a
person sees under the card.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from imgedit.errors import ProviderRejected
from imgedit.models import JobKind, Quality
from imgedit.providers.base import ADVANCED, ProviderRequest
from imgedit.providers.comfyui import STEPS as COMFY_STEPS
from imgedit.providers.comfyui import ComfyUIProvider
from imgedit.providers.comfyui_workflow import SHIPPED, load_workflows, parse_workflow
from imgedit.providers.openai import OpenAIProvider
from imgedit.providers.sdwebui import QUALITY_SPECS, SdWebUiProvider, img2img_steps
from tests.fake_comfyui import FakeComfyUI, StartServer, comfy_servers
from tests.fake_sdwebui import IMG2IMG, TXT2IMG, FakeWebUI
from tests.fakes import RecordingSink, eventually
from tests.loopback import serve

WAIT = 10.0
ADVANCED_FIELDS = ("negative_prompt", "seed", "steps", "cfg_scale", "denoising_strength")


@pytest.fixture
def webui() -> Iterator[Callable[..., tuple[FakeWebUI, str]]]:
    with contextlib.ExitStack() as stack:
        fakes: list[FakeWebUI] = []

        def start(**options: Any) -> tuple[FakeWebUI, str]:
            fake = FakeWebUI(**options)
            fakes.append(fake)
            return fake, stack.enter_context(serve(fake.app()))

        yield start
        for fake in fakes:
            fake.resume()


@pytest.fixture
def comfy() -> Iterator[StartServer]:
    """Starts fake ComfyUI servers on loopback; at the end lets held prompts go, then stops them."""
    with comfy_servers() as start:
        yield start


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(WAIT)) as http:
        yield http


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def sd(client: httpx.AsyncClient, url: str) -> SdWebUiProvider:
    return SdWebUiProvider(client=client, urls=[url], poll_interval=0.02)


def comfyui(client: httpx.AsyncClient, url: str, **options: Any) -> ComfyUIProvider:
    options = {"poll_interval": 0.01, "reconnect_window": 10.0, "quiet_check": 5.0, **options}
    return ComfyUIProvider(client=client, urls=[url], **options)


def edit(**advanced: Any) -> ProviderRequest:
    return ProviderRequest(
        kind=JobKind.EDIT, prompt="a harbour", quality=Quality.LOW, image=png(), **advanced
    )


def gen(**advanced: Any) -> ProviderRequest:
    return ProviderRequest(kind=JobKind.GENERATE, prompt="a red fox", quality=Quality.LOW, **advanced)


# -- what each provider offers ---------------------------------------------------------------------


def test_sd_takes_every_advanced_setting_and_openai_none(client: httpx.AsyncClient) -> None:
    assert SdWebUiProvider.capabilities.advanced == frozenset(ADVANCED)
    openai = OpenAIProvider(client=client, api_key="sk-test", base_url="http://127.0.0.1:9/v1")
    assert openai.capabilities.advanced == frozenset()


def test_comfyui_offers_what_its_default_workflows_mark(client: httpx.AsyncClient) -> None:
    shipped = comfyui(client, "http://127.0.0.1:9")
    assert shipped.capabilities.advanced == frozenset(ADVANCED)

    plain = {}
    for name in ("edit", "generate"):
        graph = json.loads((SHIPPED / f"{name}.json").read_text())
        graph["7"]["_meta"]["title"] = "Negative prompt"
        graph["3"]["_meta"]["title"] = graph["3"]["_meta"]["title"].replace(" imgedit:cfg", "")
        plain[name] = parse_workflow(name, json.dumps(graph), f"{name}.json")
    older = comfyui(client, "http://127.0.0.1:9", workflows=plain)
    assert older.capabilities.advanced == {"seed", "steps", "strength"}


def test_the_shipped_workflows_mark_the_negative_prompt_and_the_guidance() -> None:
    workflows = load_workflows()
    for name in ("edit", "generate", "inpaint"):
        workflow = workflows[name]
        assert workflow.marks["negative"].node == "7" and workflow.marks["negative"].inputs == ("text",)
        assert workflow.marks["cfg"].node == workflow.sampler_node and workflow.marks["cfg"].inputs == (
            "cfg",
        )
        graph = workflow.fill(prompt="p", negative="no text", cfg=4.5)
        assert graph["7"]["inputs"]["text"] == "no text" and graph["3"]["inputs"]["cfg"] == 4.5
        assert graph["6"]["inputs"]["text"] == "p"  # the positive prompt is another node


# -- SD WebUI ------------------------------------------------------------------------------------------


async def test_sd_txt2img_sends_each_setting_under_a1111s_name_and_type(
    webui: Callable[..., tuple[FakeWebUI, str]], client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    sink = RecordingSink()
    fake.pause_at(4)
    task = asyncio.create_task(
        sd(client, url).generate(
            gen(negative_prompt="blurry, text", seed=424242, steps=9, guidance=5.5), sink
        )
    )
    assert await asyncio.to_thread(fake.paused.wait, WAIT)
    await eventually(lambda: "Step 4 of 9" in sink.steps, message="step 4 of 9 reported")
    fake.resume()
    result = await asyncio.wait_for(task, WAIT)

    sent = fake.received[-1]
    assert sent["negative_prompt"] == "blurry, text"
    assert sent["seed"] == 424242 and type(sent["seed"]) is int
    assert sent["steps"] == 9 and type(sent["steps"]) is int
    assert sent["cfg_scale"] == 5.5 and type(sent["cfg_scale"]) is float
    assert "denoising_strength" not in sent  # txt2img: no source to keep
    assert fake.jobs[-1].steps == 9
    assert result.metadata["seed"] == "424242" and result.metadata["steps"] == "9"
    assert all(re.fullmatch(r"Step [1-9] of 9", m) for m in sink.steps), sink.steps


async def test_sd_img2img_sends_the_strength_and_whole_number_guidance_as_numbers(
    webui: Callable[..., tuple[FakeWebUI, str]], client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    sink = RecordingSink()
    await sd(client, url).edit(edit(strength=0.8, steps=10, guidance=7.0, seed=3), sink)

    (sent,) = [payload for payload in fake.received if "init_images" in payload]
    assert sent["denoising_strength"] == 0.8 and type(sent["denoising_strength"]) is float
    assert sent["cfg_scale"] == 7.0 and type(sent["cfg_scale"]) is float
    assert sent["steps"] == 10 and sent["seed"] == 3
    runs = img2img_steps(10, 0.8)
    assert runs == 9 and fake.jobs[-1].steps == runs
    assert all(re.fullmatch(rf"Step \d of {runs}", m) for m in sink.steps), sink.steps  # when seen


async def test_sd_a_custom_step_count_shows_in_the_progress(
    webui: Callable[..., tuple[FakeWebUI, str]], client: httpx.AsyncClient
) -> None:
    """Paused at step 3 of an img2img of 10 steps at strength 0.8: the card says "Step 3 of 9"."""
    fake, url = webui()
    sink = RecordingSink()
    fake.pause_at(3)
    task = asyncio.create_task(sd(client, url).edit(edit(steps=10, strength=0.8), sink))
    assert await asyncio.to_thread(fake.paused.wait, WAIT)
    await eventually(lambda: "Step 3 of 9" in sink.steps, message="step 3 of 9 reported")
    fake.resume()
    await asyncio.wait_for(task, WAIT)
    assert sink.updates[-1] == (1.0, "Done")


async def test_sd_without_advanced_settings_sends_what_it_always_sent(
    webui: Callable[..., tuple[FakeWebUI, str]], client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    provider = sd(client, url)
    await provider.edit(edit(), RecordingSink())
    await provider.edit(
        edit(negative_prompt="", seed=None, steps=None, guidance=None, strength=None), RecordingSink()
    )
    await provider.generate(gen(), RecordingSink())

    plain, explicit, generated = fake.received
    expected = {
        "negative_prompt": "",
        "seed": -1,
        "steps": QUALITY_SPECS[Quality.LOW].steps,
        "cfg_scale": 7,
        "denoising_strength": 0.55,
    }
    assert {key: plain[key] for key in ADVANCED_FIELDS} == expected
    assert {k: v for k, v in plain.items() if k != "force_task_id"} == {
        k: v for k, v in explicit.items() if k != "force_task_id"
    }
    assert {key: generated.get(key) for key in ADVANCED_FIELDS} == {**expected, "denoising_strength": None}
    assert fake.jobs[0].steps == img2img_steps(QUALITY_SPECS[Quality.LOW].steps, 0.55)


async def test_the_fake_a1111_refuses_wrong_types_like_fastapi(
    webui: Callable[..., tuple[FakeWebUI, str]], client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    base = {"prompt": "x", "steps": 4, "width": 64, "height": 64}
    wrong = {"negative_prompt": 5, "seed": "7", "cfg_scale": "high", "denoising_strength": True}
    answer = await client.post(url + TXT2IMG, json={**base, **wrong})
    assert answer.status_code == 422
    problems = {tuple(p["loc"]): p["msg"] for p in answer.json()["detail"]}
    assert problems == {
        ("body", "negative_prompt"): "Input should be a valid string",
        ("body", "seed"): "Input should be a valid integer",
        ("body", "cfg_scale"): "Input should be a valid number",
        ("body", "denoising_strength"): "Input should be a valid number",
    }
    assert fake.jobs == []

    fine = {"negative_prompt": "", "seed": 9, "cfg_scale": 6, "denoising_strength": 0.5}
    answer = await client.post(url + IMG2IMG, json={**base, **fine, "init_images": [_b64(png())]})
    assert answer.status_code == 200
    assert json.loads(answer.json()["info"])["seed"] == 9
    assert fake.received[-1]["cfg_scale"] == 6 and fake.jobs[-1].steps == img2img_steps(4, 0.5)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- ComfyUI -----------------------------------------------------------------------------------------


async def test_comfyui_fills_the_marked_inputs_of_a_generation(
    comfy: Callable[..., tuple[FakeComfyUI, str]], client: httpx.AsyncClient
) -> None:
    fake, url = comfy()
    sink = RecordingSink()
    result = await comfyui(client, url).generate(
        gen(negative_prompt="lowres, text", seed=77, steps=7, guidance=4.5), sink
    )

    graph = fake.prompts[-1]["prompt"]
    assert graph["7"]["inputs"]["text"] == "lowres, text"  # the node marked imgedit:negative
    assert graph["6"]["inputs"]["text"] == "a red fox"
    sampler = graph["3"]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"]) == (77, 7, 4.5)
    assert type(sampler["cfg"]) is float and sampler["denoise"] == 1.0  # a generation's own
    assert result.metadata["seed"] == "77" and result.metadata["steps"] == "7"
    assert "Step 7 of 7" in sink.steps and all(m.endswith(" of 7") for m in sink.steps), sink.steps


async def test_comfyui_fills_the_strength_of_an_edit(
    comfy: Callable[..., tuple[FakeComfyUI, str]], client: httpx.AsyncClient
) -> None:
    fake, url = comfy()
    await comfyui(client, url).edit(edit(strength=0.8, steps=5, negative_prompt="people"), RecordingSink())

    graph = fake.prompts[-1]["prompt"]
    assert graph["3"]["inputs"]["denoise"] == 0.8 and graph["3"]["inputs"]["steps"] == 5
    assert graph["7"]["inputs"]["text"] == "people"
    assert graph["3"]["inputs"]["cfg"] == 7.0  # no guidance given: the workflow's own


async def test_comfyui_ignores_a_setting_its_workflow_has_no_mark_for_and_says_so(
    comfy: Callable[..., tuple[FakeComfyUI, str]], client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    graph = json.loads((SHIPPED / "edit.json").read_text())
    graph["7"]["_meta"]["title"] = "Negative prompt"
    graph["3"]["_meta"]["title"] = "KSampler imgedit:seed imgedit:steps"
    workflows = {
        **load_workflows(),
        "plain-edit": parse_workflow("plain-edit", json.dumps(graph), "plain-edit.json"),
    }
    fake, url = comfy()
    provider = comfyui(client, url, workflows=workflows)

    with caplog.at_level(logging.INFO, logger="imgedit.providers.comfyui"):
        await provider.edit(
            edit(negative_prompt="people", guidance=3.0, strength=0.9, steps=6, variant="plain-edit"),
            RecordingSink(),
        )

    sent = fake.prompts[-1]["prompt"]
    assert sent["7"]["inputs"]["text"] == "blurry, low quality, watermark, text"  # the file's own
    assert sent["3"]["inputs"]["cfg"] == 7.0 and sent["3"]["inputs"]["denoise"] == 0.55
    assert sent["3"]["inputs"]["steps"] == 6  # a mark it has is still filled
    said = [r.getMessage() for r in caplog.records if "has no mark for" in r.getMessage()]
    assert said == [
        "ComfyUI workflow plain-edit has no mark for guidance (imgedit:cfg), "
        "negative_prompt (imgedit:negative), strength (imgedit:denoise); its own values are used"
    ]


async def test_comfyui_without_advanced_settings_sends_what_it_always_sent(
    comfy: Callable[..., tuple[FakeComfyUI, str]], client: httpx.AsyncClient
) -> None:
    fake, url = comfy()
    provider = comfyui(client, url)
    await provider.edit(edit(seed=5), RecordingSink())
    await provider.edit(
        edit(seed=5, negative_prompt="", steps=None, guidance=None, strength=None), RecordingSink()
    )
    await provider.generate(gen(seed=5), RecordingSink())

    plain, explicit, generated = (p["prompt"] for p in fake.prompts)
    assert plain == explicit
    shipped = json.loads((SHIPPED / "edit.json").read_text())
    assert plain["7"]["inputs"]["text"] == shipped["7"]["inputs"]["text"]
    sampler = plain["3"]["inputs"]
    assert (sampler["steps"], sampler["cfg"], sampler["denoise"]) == (COMFY_STEPS[Quality.LOW], 7.0, 0.55)
    assert generated["7"]["inputs"]["text"] == shipped["7"]["inputs"]["text"]
    assert generated["3"]["inputs"]["cfg"] == 7.0


async def test_the_fake_comfyui_checks_the_sampler_values_like_comfyui(
    comfy: Callable[..., tuple[FakeComfyUI, str]], client: httpx.AsyncClient
) -> None:
    """A guidance out of KSampler's range is refused at validation, naming the node and input."""
    _, url = comfy()
    with pytest.raises(ProviderRejected) as caught:
        await comfyui(client, url).generate(gen(guidance=150.0), RecordingSink())
    assert "node 3 (KSampler): Value 150.0 bigger than max of 100.0: cfg" in str(caught.value)

    graph = load_workflows()["generate"].fill(prompt="x", seed=1, steps=2, size=(64, 64))
    graph["3"]["inputs"]["cfg"] = "high"
    answer = await client.post(url + "/prompt", json={"prompt": graph, "client_id": "someone"})
    assert answer.status_code == 400
    (error,) = answer.json()["node_errors"]["3"]["errors"]
    assert error["type"] == "invalid_input_type" and error["extra_info"]["input_name"] == "cfg"
