"""The ComfyUI provider against a fake ComfyUI over real loopback HTTP and websockets.

The provider is the production code with only its URLs pointing at ``tests.fake_comfyui``, which
runs the shipped workflow files (or a test's own) node by node, with Pillow as its "model". A
second, foreign client on the same fake stands for another user of the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from nicegui import ui
from nicegui.testing import User
from PIL import Image

from imgedit.config import Settings
from imgedit.errors import ProviderFailed, ProviderRejected
from imgedit.models import JobKind, Quality
from imgedit.providers import Provider
from imgedit.providers.base import ProviderRequest
from imgedit.providers.comfyui import ComfyUIProvider
from imgedit.providers.comfyui_workflow import SHIPPED, WorkflowError, load_workflows, parse_workflow
from imgedit.services import build_providers
from tests.conftest import app_services
from tests.fake_comfyui import FakeComfyUI, StartServer, comfy_servers, serve_comfyui
from tests.fakes import eventually
from tests.loopback import free_port
from tests.test_gallery_ui import loading_cards, start_edit


@dataclass
class RecordingSink:
    updates: list[tuple[float, str | None, bool]] = field(default_factory=list)
    previews: list[bytes] = field(default_factory=list)

    def progress(
        self, fraction: float, message: str | None = None, *, eta_s: float | None = None, exact: bool = True
    ) -> None:
        self.updates.append((fraction, message, exact))

    def preview(self, image: bytes) -> None:
        self.previews.append(image)

    @property
    def messages(self) -> list[str | None]:
        return [message for _, message, _ in self.updates]


@pytest.fixture
def comfy() -> Iterator[StartServer]:
    """Starts fake ComfyUI servers on loopback; at the end lets held prompts go, then stops them."""
    with comfy_servers() as start:
        yield start


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def provider_for(http: httpx.AsyncClient, *urls: str, **options: Any) -> ComfyUIProvider:
    options = {"poll_interval": 0.01, "reconnect_window": 10.0, "quiet_check": 5.0, **options}
    return ComfyUIProvider(client=http, urls=list(urls), **options)


def png(size: tuple[int, int], colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def seed_colour(seed: int) -> tuple[int, int, int]:
    """The colour the fake's KSampler paints for ``seed``."""
    return (seed * 97) % 256, (seed * 57 + 80) % 256, (seed * 31 + 160) % 256


def our_prompt(fake: FakeComfyUI) -> str | None:
    return next((p["prompt_id"] for p in fake.prompts if p["client_id"] != ForeignClient.ID), None)


def generate_graph(prompt: str = "a lighthouse", seed: int = 1, steps: int = 12) -> dict[str, Any]:
    workflow = load_workflows()["generate"]
    return workflow.fill(prompt=prompt, seed=seed, steps=steps, size=(256, 256))


class ForeignClient:
    """Another user of the same ComfyUI: its own socket and client id, prompts posted by hand."""

    ID = "someone-else"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.events: list[dict[str, Any]] = []

    async def __aenter__(self) -> ForeignClient:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(f"{self.base_url}/ws", params={"clientId": self.ID})
        self._reader = asyncio.create_task(self._read())
        await eventually(lambda: any(e["type"] == "status" for e in self.events), message="its status")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._session.close()

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.events.append(json.loads(message.data))

    async def submit(self, http: httpx.AsyncClient, graph: dict[str, Any]) -> str:
        answer = await http.post(f"{self.base_url}/prompt", json={"prompt": graph, "client_id": self.ID})
        answer.raise_for_status()
        return str(answer.json()["prompt_id"])

    def prompt_ids(self) -> set[str]:
        return {str(e["data"]["prompt_id"]) for e in self.events if "prompt_id" in (e.get("data") or {})}


# -- running a workflow -------------------------------------------------------------------------


async def test_generation_runs_the_shipped_workflow_with_real_progress_and_previews(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    fake, url = comfy(preview_metadata=False)  # an older server: type-1 previews (format + JPEG)
    provider = provider_for(http, url)
    assert isinstance(provider, Provider)
    sink = RecordingSink()

    result = await provider.generate(
        ProviderRequest(
            kind=JobKind.GENERATE, prompt="a lighthouse at dusk", quality=Quality.LOW, size=(300, 200), seed=5
        ),
        sink,
    )

    with Image.open(io.BytesIO(result.image)) as image:
        assert result.format == "PNG"
        assert image.size == (512, 344)  # longest side 512 at low quality, on the 8-pixel grid
        assert image.convert("RGB").getpixel((10, 10)) == seed_colour(5)
    sent = fake.prompts[0]["prompt"]
    assert sent["6"]["inputs"]["text"] == "a lighthouse at dusk"
    assert (sent["3"]["inputs"]["seed"], sent["3"]["inputs"]["steps"]) == (5, 12)
    assert (sent["5"]["inputs"]["width"], sent["5"]["inputs"]["height"]) == (512, 344)
    assert result.metadata["workflow"] == "generate" and result.metadata["seed"] == "5"

    steps = [m for f, m, exact in sink.updates if exact and m and m.startswith("Step ")]
    assert steps == [f"Step {n} of 12" for n in range(1, 13)]
    assert "Running CheckpointLoaderSimple (node 1 of 7)" in sink.messages
    assert "Running SaveImage (node 7 of 7)" in sink.messages
    fractions = [f for f, _, _ in sink.updates]
    assert fractions == sorted(fractions)
    assert sink.updates[-1] == (1.0, "Done", True)
    assert all(f < 1.0 for f in fractions[:-1])
    assert len(sink.previews) == 12 and set(fake.preview_kinds) == {1}
    assert all(p.startswith(b"\xff\xd8") for p in sink.previews)  # JPEG, the 4-byte format cut off


async def test_edit_uploads_the_source_and_gets_previews_naming_its_prompt(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    fake, url = comfy(preview_format="PNG")
    provider = provider_for(http, url)
    sink = RecordingSink()
    source = png((200, 160), (200, 30, 30))

    result = await provider.edit(
        ProviderRequest(
            kind=JobKind.EDIT, prompt="a watercolour", quality=Quality.MEDIUM, image=source, seed=3
        ),
        sink,
    )

    assert len(fake.uploads) == 1
    sent = fake.prompts[0]["prompt"]
    assert sent["10"]["inputs"]["image"] == fake.uploads[0]  # the name the upload answered
    assert sent["3"]["inputs"]["denoise"] == 0.55 and sent["3"]["inputs"]["steps"] == 20
    with Image.open(io.BytesIO(result.image)) as image:
        assert image.size == (200, 160)
        expected = Image.blend(
            Image.new("RGB", (1, 1), (200, 30, 30)), Image.new("RGB", (1, 1), seed_colour(3)), 0.55
        )
        assert image.convert("RGB").getpixel((5, 5)) == expected.getpixel((0, 0))
    assert set(fake.preview_kinds) == {4}  # we asked for previews that name their prompt
    assert len(sink.previews) == 20 and all(p.startswith(b"\x89PNG") for p in sink.previews)
    assert sink.updates[-1] == (1.0, "Done", True)


async def test_a_repeated_job_runs_from_cached_nodes(comfy: StartServer, http: httpx.AsyncClient) -> None:
    """Same prompt and seed again: ComfyUI sends execution_cached and no executing or progress for
    those nodes; the job still finishes with the image."""
    fake, url = comfy()
    provider = provider_for(http, url)
    request = ProviderRequest(kind=JobKind.GENERATE, prompt="a fox", quality=Quality.LOW, seed=9)
    first = await provider.generate(request, RecordingSink())
    sink = RecordingSink()

    second = await provider.generate(request, sink)

    assert "execution_cached" in fake.messages_of(fake.prompts[1]["prompt_id"])
    assert not [m for m in sink.messages if m and m.startswith("Step ")]
    with Image.open(io.BytesIO(first.image)) as a, Image.open(io.BytesIO(second.image)) as b:
        assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
    assert sink.updates[-1] == (1.0, "Done", True)


async def test_editing_one_image_twice_reuses_its_upload(comfy: StartServer, http: httpx.AsyncClient) -> None:
    fake, url = comfy()
    provider = provider_for(http, url)
    source = png((96, 64))

    for seed in (1, 2):
        await provider.edit(
            ProviderRequest(kind=JobKind.EDIT, prompt="ink", quality=Quality.LOW, image=source, seed=seed),
            RecordingSink(),
        )

    assert len(set(fake.uploads)) == 1 and len(fake.uploads) == 2
    assert len(list(fake.dirs["input"].iterdir())) == 1
    second = fake.prompts[1]["prompt_id"]
    cached = next(
        data["nodes"]
        for event, data in fake.history[second]["status"]["messages"]
        if event == "execution_cached"
    )
    assert "10" in cached  # the same file: ComfyUI reuses its LoadImage


async def test_a_progress_bar_that_stops_one_short_still_finishes(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    _, url = comfy(stop_short=True)
    sink = RecordingSink()

    await provider_for(http, url).generate(
        ProviderRequest(kind=JobKind.GENERATE, prompt="a fox", quality=Quality.LOW, seed=1), sink
    )

    steps = [m for m in sink.messages if m and m.startswith("Step ")]
    assert steps[-1] == "Step 11 of 12"
    assert sink.updates[-1] == (1.0, "Done", True)


async def test_a_users_workflow_from_the_folder_runs_under_its_name(
    comfy: StartServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A workflow with a blur after decoding, a mark naming its input, chosen by file name."""
    graph = json.loads((SHIPPED / "edit.json").read_text())
    graph["12"] = {
        "class_type": "ImageBlur",
        "inputs": {"image": ["8", 0], "blur_radius": 2, "sigma": 1.0},
        "_meta": {"title": "Blur"},
    }
    graph["9"]["inputs"]["images"] = ["12", 0]
    graph["3"]["_meta"]["title"] = "imgedit:seed=seed imgedit:denoise"  # steps left as the file says
    (tmp_path / "soft-edit.json").write_text(json.dumps(graph))
    fake, url = comfy()
    provider = provider_for(http, url, workflow_folder=tmp_path)
    assert provider.workflows(JobKind.EDIT) == ["edit", "soft-edit"]
    assert provider.workflows(JobKind.GENERATE) == ["generate"]

    result = await provider.edit(
        ProviderRequest(kind=JobKind.EDIT, prompt="soft", quality=Quality.HIGH, image=png((64, 64)), seed=2),
        RecordingSink(),
        workflow="soft-edit",
    )

    sent = fake.prompts[0]["prompt"]
    assert sent["12"]["class_type"] == "ImageBlur" and sent["3"]["inputs"]["steps"] == 20
    assert result.metadata["workflow"] == "soft-edit" and "steps" not in result.metadata


# -- failures --------------------------------------------------------------------------------------


async def test_node_errors_are_shown_readably(comfy: StartServer, http: httpx.AsyncClient) -> None:
    fake, url = comfy(checkpoints=("sdxl_base.safetensors",))

    with pytest.raises(ProviderRejected) as caught:
        await provider_for(http, url).generate(
            ProviderRequest(kind=JobKind.GENERATE, prompt="a fox", quality=Quality.LOW), RecordingSink()
        )

    message = str(caught.value)
    assert message.startswith(
        f"ComfyUI at {url} refused the workflow “generate”: Prompt outputs failed validation"
    )
    assert (
        "node 4 (CheckpointLoaderSimple): Value not in list: "
        "ckpt_name: 'v1-5-pruned-emaonly.safetensors' not in ['sdxl_base.safetensors']"
    ) in message
    assert not caught.value.retryable
    assert (caught.value.status, caught.value.code, caught.value.provider) == (
        400,
        "prompt_outputs_failed_validation",
        "comfyui",
    )
    assert not fake.prompts and not fake.history


async def test_an_execution_error_after_a_200_fails_the_job_with_its_message(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    fake, url = comfy(fail_node="VAEDecode")
    sink = RecordingSink()

    with pytest.raises(ProviderFailed) as caught:
        await provider_for(http, url).generate(
            ProviderRequest(kind=JobKind.GENERATE, prompt="a fox", quality=Quality.LOW), sink
        )

    assert "node 8 (VAEDecode)" in str(caught.value)
    assert "Allocation on device 0 would exceed allowed memory. (out of memory)" in str(caught.value)
    assert caught.value.code == "torch.OutOfMemoryError" and not caught.value.retryable
    # The error event comes before the history entry is written.
    await eventually(lambda: fake.status_of(fake.prompts[0]["prompt_id"]) == "error", message="the history")
    assert [m for m in sink.messages if m and m.startswith("Step ")]  # it had sampled before failing


async def test_the_fake_answers_like_comfyui_where_it_is_awkward(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    fake, url = comfy()

    not_json = await http.post(f"{url}/prompt", content=b"prompt=please")
    ignored = await http.post(f"{url}/interrupt", json={"prompt_id": "not-running"})
    unknown = await http.get(f"{url}/history/never-seen")

    assert not_json.status_code == 500 and not_json.headers["content-type"].startswith("text/plain")
    assert ignored.status_code == 200 and fake.interrupts == ["not-running"]
    assert unknown.json() == {}


# -- cancelling ------------------------------------------------------------------------------------


async def test_cancel_while_pending_deletes_our_prompt_from_the_queue(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    fake, url = comfy()
    provider = provider_for(http, url)
    fake.hold()
    async with ForeignClient(url) as foreign:
        theirs = await foreign.submit(http, generate_graph())
        await eventually(lambda: fake.held == theirs, message="the foreign prompt to run")
        job = asyncio.create_task(
            provider.generate(
                ProviderRequest(kind=JobKind.GENERATE, prompt="mine", quality=Quality.LOW), RecordingSink()
            )
        )
        await eventually(lambda: our_prompt(fake) in fake.pending_ids(), message="our prompt to queue")
        ours = our_prompt(fake)

        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

        assert fake.deletes[:1] == [ours] and fake.pending_ids() == []
        assert fake.interrupts == []
        fake.release()
        await eventually(lambda: fake.status_of(theirs) == "success", message="the foreign prompt to finish")
        await provider.settled()
        assert ours not in fake.history
        assert foreign.prompt_ids() == {theirs}  # events go to the submitting client only


async def test_cancel_while_running_interrupts_only_our_prompt(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    fake, url = comfy()
    provider = provider_for(http, url)
    sink = RecordingSink()
    fake.hold()
    job = asyncio.create_task(
        provider.generate(ProviderRequest(kind=JobKind.GENERATE, prompt="mine", quality=Quality.LOW), sink)
    )
    await eventually(lambda: fake.held is not None and fake.held == our_prompt(fake), message="ours to run")
    ours = our_prompt(fake)
    async with ForeignClient(url) as foreign:
        theirs = await foreign.submit(http, generate_graph())
        await eventually(lambda: theirs in fake.pending_ids(), message="theirs to queue")

        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

        assert fake.interrupts[:1] == [ours] and fake.deletes == []
        fake.release()
        await eventually(lambda: fake.status_of(theirs) == "success", message="the foreign prompt to finish")
        await provider.settled()
        assert set(fake.interrupts) == {ours}  # sent again while it ran on, never for theirs
        assert fake.status_of(ours) == "error"
        assert "execution_interrupted" in fake.messages_of(ours)
        assert "execution_interrupted" not in fake.messages_of(theirs)
        assert foreign.prompt_ids() == {theirs}  # our interrupt's events went to us only


async def test_cancel_while_the_post_is_in_flight_stops_the_prompt_once_it_shows_up(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    """We chose the prompt id, so a prompt the server queues after we gave up is still found."""
    fake, url = comfy()
    provider = provider_for(http, url)
    fake.hold()
    fake.hold_posts()
    job = asyncio.create_task(
        provider.generate(
            ProviderRequest(kind=JobKind.GENERATE, prompt="mine", quality=Quality.LOW), RecordingSink()
        )
    )
    await eventually(lambda: fake.posts_waiting == 1, message="our POST to arrive")

    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert provider.stopping == 1  # watching for it
    fake.release_posts()
    await eventually(lambda: our_prompt(fake) is not None, message="ours to arrive")

    await eventually(lambda: our_prompt(fake) in fake.interrupts, message="the interrupt once it runs")
    fake.release()
    await provider.settled()
    assert "execution_interrupted" in fake.messages_of(str(our_prompt(fake)))


async def test_an_interrupt_lost_as_the_prompt_starts_is_sent_again(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    """ComfyUI lists a prompt as running before it starts it, and starting clears the interrupt
    flag: an interrupt sent in between is lost, so the watch sends it again while it runs."""
    fake, url = comfy()
    provider = provider_for(http, url)
    fake.hold()
    fake.hold_starts()
    job = asyncio.create_task(
        provider.generate(
            ProviderRequest(kind=JobKind.GENERATE, prompt="mine", quality=Quality.LOW), RecordingSink()
        )
    )
    await eventually(lambda: fake.starting is not None, message="ours taken off the queue")
    ours = fake.starting

    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert fake.interrupts[:1] == [ours]
    fake.release_starts()  # the flag is cleared: that interrupt is lost
    await eventually(lambda: fake.held == ours, message="ours to sample anyway")

    await eventually(lambda: len(fake.interrupts) >= 2, message="the interrupt sent again")
    fake.release()
    await provider.settled()
    assert set(fake.interrupts) == {ours}
    assert "execution_interrupted" in fake.messages_of(str(ours))


async def test_closing_the_provider_ends_its_watches(comfy: StartServer, http: httpx.AsyncClient) -> None:
    fake, url = comfy()
    provider = provider_for(http, url)
    fake.hold()
    fake.hold_posts()
    job = asyncio.create_task(
        provider.generate(
            ProviderRequest(kind=JobKind.GENERATE, prompt="mine", quality=Quality.LOW), RecordingSink()
        )
    )
    await eventually(lambda: fake.posts_waiting == 1, message="our POST to arrive")
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert provider.stopping == 1

    await provider.aclose()

    assert provider.stopping == 0
    fake.release_posts()


async def test_a_job_waiting_behind_other_prompts_says_so(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    fake, url = comfy()
    provider = provider_for(http, url)
    sink = RecordingSink()
    fake.hold()
    async with ForeignClient(url) as foreign:
        theirs = await foreign.submit(http, generate_graph())
        await eventually(lambda: fake.held == theirs, message="the foreign prompt to run")
        job = asyncio.create_task(
            provider.generate(
                ProviderRequest(kind=JobKind.GENERATE, prompt="mine", quality=Quality.LOW), sink
            )
        )
        await eventually(
            lambda: "Waiting in the server's queue (2 queued or running)" in sink.messages, message="the wait"
        )
        fake.release()
        await job
    assert sink.updates[-1] == (1.0, "Done", True)


# -- a dropped socket ------------------------------------------------------------------------------


async def test_a_dropped_socket_reconnects_and_reads_the_result_from_history(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    """The prompt finishes while the socket is down; nothing is replayed, so the history tells."""
    fake, url = comfy()
    provider = provider_for(http, url)
    fake.hold()
    job = asyncio.create_task(
        provider.generate(
            ProviderRequest(kind=JobKind.GENERATE, prompt="mine", quality=Quality.LOW, seed=4),
            RecordingSink(),
        )
    )
    await eventually(lambda: fake.held is not None, message="ours to run")
    ours = our_prompt(fake)

    fake.drop_clients(refuse=True)
    fake.release()
    await eventually(lambda: fake.status_of(ours) == "success", message="ours to finish unseen")
    fake.accept_clients()
    result = await asyncio.wait_for(job, 15)

    with Image.open(io.BytesIO(result.image)) as image:
        assert image.convert("RGB").getpixel((0, 0)) == seed_colour(4)
    client_ids = [sid for sid in fake.connections if sid != ForeignClient.ID]
    assert len(client_ids) >= 2 and len(set(client_ids)) == 1  # the same clientId again


async def test_a_socket_dropped_while_running_picks_up_the_running_prompt(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    """On reconnecting ComfyUI first names the running node without a prompt_id; the job goes on."""
    fake, url = comfy()
    provider = provider_for(http, url)
    sink = RecordingSink()
    fake.hold()
    job = asyncio.create_task(
        provider.generate(ProviderRequest(kind=JobKind.GENERATE, prompt="mine", quality=Quality.LOW), sink)
    )
    await eventually(lambda: fake.held is not None, message="ours to run")

    fake.drop_clients()
    await eventually(lambda: len(fake.connections) >= 2 and fake.notices, message="the reconnect")
    fake.release()
    await asyncio.wait_for(job, 15)

    steps = [m for m in sink.messages if m and m.startswith("Step ")]
    assert steps[-1] == "Step 12 of 12"  # the steps after the reconnect arrived on the new socket
    assert sink.updates[-1] == (1.0, "Done", True)


async def test_a_socket_the_server_forgot_is_noticed_by_its_silence(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    """ComfyUI can forget our client id while our socket stays open (an older socket with the
    same id closing late): no event comes, so after a quiet spell the queue and history tell."""
    fake, url = comfy()
    provider = provider_for(http, url, quiet_check=0.05)
    fake.hold()
    job = asyncio.create_task(
        provider.generate(
            ProviderRequest(kind=JobKind.GENERATE, prompt="mine", quality=Quality.LOW, seed=6),
            RecordingSink(),
        )
    )
    await eventually(lambda: fake.held is not None, message="ours to run")
    ours = fake.held

    fake.forget_clients()
    fake.release()
    result = await asyncio.wait_for(job, 15)

    assert fake.status_of(str(ours)) == "success"
    with Image.open(io.BytesIO(result.image)) as image:
        assert image.convert("RGB").getpixel((0, 0)) == seed_colour(6)
    assert len(fake.connections) == 1  # found without reconnecting


async def test_a_server_that_does_not_answer_is_skipped_for_one_that_does(
    comfy: StartServer, http: httpx.AsyncClient
) -> None:
    _, url = comfy()
    dead = f"http://127.0.0.1:{free_port()}"
    provider = provider_for(http, dead, url)

    result = await provider.generate(
        ProviderRequest(kind=JobKind.GENERATE, prompt="a fox", quality=Quality.LOW), RecordingSink()
    )

    assert result.metadata["server"] == url
    assert provider.label == "ComfyUI · 2 servers" and provider.capacity == 2


# -- workflows -----------------------------------------------------------------------------------


def test_the_shipped_workflows_are_marked() -> None:
    workflows = load_workflows()
    assert workflows["edit"].kind is JobKind.EDIT and workflows["generate"].kind is JobKind.GENERATE
    assert workflows["edit"].output_node == "9" and workflows["edit"].sampler_node == "3"
    marks = {"prompt", "negative", "size", "seed", "steps", "cfg", "output", "batch"}
    assert set(workflows["generate"].marks) == marks


def test_the_readme_example_workflow_is_accepted() -> None:
    """The example the README shows: a KSamplerAdvanced whose seed input is named in its mark."""
    example = SHIPPED / "examples" / "advanced-generate.json"
    workflow = parse_workflow(example.stem, example.read_text(), str(example))
    filled = workflow.fill(prompt="a fox", seed=11, steps=12, size=(640, 448))
    assert workflow.kind is JobKind.GENERATE and workflow.sampler_node == "5"
    assert (filled["5"]["inputs"]["noise_seed"], filled["5"]["inputs"]["steps"]) == (11, 12)
    assert (filled["4"]["inputs"]["width"], filled["4"]["inputs"]["height"]) == (640, 448)
    assert filled["2"]["inputs"]["text"] == "a fox" and filled["3"]["inputs"]["text"].startswith("lowres")
    assert "advanced-generate" not in load_workflows()  # an example, not offered unless copied


def test_a_workflow_lacking_a_mark_is_refused_with_its_name(tmp_path: Path) -> None:
    graph = json.loads((SHIPPED / "generate.json").read_text())
    graph["9"]["_meta"]["title"] = "Save Image"
    (tmp_path / "my-flow.json").write_text(json.dumps(graph))

    with pytest.raises(WorkflowError) as caught:
        load_workflows(tmp_path)

    assert str(tmp_path / "my-flow.json") in str(caught.value)
    assert "lacks the mark imgedit:output" in str(caught.value)


def test_start_up_refuses_a_workflow_folder_with_an_unmarked_workflow(tmp_path: Path) -> None:
    graph = json.loads((SHIPPED / "edit.json").read_text())
    graph["6"]["_meta"]["title"] = "Positive"
    (tmp_path / "portrait.json").write_text(json.dumps(graph))
    settings = Settings.from_args(
        [], {"IMGEDIT_COMFYUI_URLS": "http://127.0.0.1:8188", "IMGEDIT_COMFYUI_WORKFLOWS": str(tmp_path)}
    )

    with pytest.raises(SystemExit) as caught:
        build_providers(settings, httpx.AsyncClient())

    assert "portrait.json" in str(caught.value) and "imgedit:prompt" in str(caught.value)


def test_a_configured_comfyui_is_offered_with_the_shipped_workflows() -> None:
    settings = Settings.from_args([], {"IMGEDIT_COMFYUI_URLS": "http://127.0.0.1:8188"})
    providers = build_providers(settings, httpx.AsyncClient())
    assert [p.name for p in providers] == ["comfyui", "local"]


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda g: g["3"]["_meta"].update(title="imgedit:sed"), "unknown mark imgedit:sed"),
        (
            lambda g: g["7"]["_meta"].update(title="imgedit:prompt"),
            "imgedit:prompt marks both node 6 and node 7",
        ),
        (lambda g: g["8"]["_meta"].update(title="imgedit:denoise"), "which has no input “denoise”"),
        (lambda g: g["6"]["inputs"].update(text=["4", 1]), "comes from another node"),
        (lambda g: g.update(nodes=[], links=[]), "Export (API)"),
    ],
)
def test_a_badly_marked_workflow_says_what_is_wrong(
    change: Callable[[dict[str, Any]], object], complaint: str
) -> None:
    graph = json.loads((SHIPPED / "generate.json").read_text())
    change(graph)
    with pytest.raises(WorkflowError, match=re.escape(complaint)):
        parse_workflow("mine", json.dumps(graph), "mine.json")


# -- in the app ----------------------------------------------------------------------------------


@pytest.fixture
def comfyui_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeComfyUI]:
    """A fake ComfyUI the app is configured with, as a user would: IMGEDIT_COMFYUI_URLS."""
    fake = FakeComfyUI(step_seconds=0.01)
    fake.hold(after_steps=6)
    with serve_comfyui(fake) as base:
        monkeypatch.setenv("IMGEDIT_COMFYUI_URLS", base)
        yield fake
        fake.release()


def preview_of(card: ui.element) -> ui.element:
    return next(e for e in card.descendants() if e.props.get("alt") == "live preview")


async def test_an_edit_in_the_gallery_shows_comfyuis_steps_and_preview_then_lands(
    comfyui_app: FakeComfyUI, user: User
) -> None:
    await user.open("/")
    services = app_services()
    assert services.providers.default.name == "comfyui"
    source = services.store.list()[0]
    before = len(services.store)

    await start_edit(user, source.id, "oil painting")
    await eventually(lambda: comfyui_app.held is not None, message="sampling to reach step 6")

    (card,) = loading_cards(user)
    await user.should_see("Step 6 of 20", retries=40)
    await eventually(lambda: preview_of(card).visible, message="the live preview")
    comfyui_app.release()
    await eventually(lambda: len(services.store) == before + 1, message="the result")
    result = services.store.list()[0]
    assert result.provider == "comfyui" and result.parent_id == source.id
    assert (result.width, result.height) == (source.width, source.height)
    assert comfyui_app.interrupts == []


async def test_cancel_in_the_gallery_interrupts_our_comfyui_prompt_and_adds_nothing(
    comfyui_app: FakeComfyUI, user: User
) -> None:
    await user.open("/")
    services = app_services()
    before = len(services.store)

    await start_edit(user, services.store.list()[0].id, "oil painting")
    await user.should_see("Step 6 of 20", retries=40)
    await eventually(lambda: comfyui_app.held is not None, message="sampling held after step 6")
    ours = comfyui_app.held
    user.find(marker="cancel").click()

    await eventually(lambda: comfyui_app.interrupts[:1] == [ours], message="the interrupt")
    await eventually(lambda: services.registry.snapshots()[0].stage == "cancelled", message="cancelled")
    comfyui_app.release()
    await eventually(lambda: "execution_interrupted" in comfyui_app.messages_of(str(ours)), message="stopped")
    assert loading_cards(user) == []
    assert len(services.store) == before


@pytest.fixture
def comfyui_with_workflows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeComfyUI]:
    """The app configured with a fake ComfyUI and a folder holding one more edit workflow."""
    graph = json.loads((SHIPPED / "edit.json").read_text())
    graph["12"] = {
        "class_type": "ImageBlur",
        "inputs": {"image": ["8", 0], "blur_radius": 2, "sigma": 1.0},
        "_meta": {"title": "Blur"},
    }
    graph["9"]["inputs"]["images"] = ["12", 0]
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "soft-edit.json").write_text(json.dumps(graph))
    fake = FakeComfyUI(step_seconds=0.001)
    with serve_comfyui(fake) as base:
        monkeypatch.setenv("IMGEDIT_COMFYUI_URLS", base)
        monkeypatch.setenv("IMGEDIT_COMFYUI_WORKFLOWS", str(folder))
        yield fake


async def test_the_edit_dialog_offers_the_workflows_and_the_job_runs_the_one_chosen(
    comfyui_with_workflows: FakeComfyUI, user: User
) -> None:
    await user.open("/")
    services = app_services()
    source = services.store.list()[0]
    before = len(services.store)
    user.find(marker=f"image-{source.id}").click()
    user.find(marker="edit").click()
    (choice,) = user.find(marker="variant").elements
    assert choice.visible and choice.props["label"] == "Workflow"
    assert list(choice.options) == ["edit", "soft-edit"] and choice.value == "edit"  # the default first
    user.find(marker="prompt").type("soft light")
    user.find(marker="variant").click()
    user.find("soft-edit").click()
    user.find("Start Edit").click()

    await eventually(lambda: len(services.store) == before + 1, message="the result")
    (job,) = services.registry.snapshots()
    assert job.spec.variant == "soft-edit"
    sent = comfyui_with_workflows.prompts[0]["prompt"]
    assert sent["12"]["class_type"] == "ImageBlur", "the chosen workflow ran"

    # New image: one generate workflow only, so no choice is shown (the same dialog, reused).
    user.find(marker="new-image").click()
    await user.should_see("Describe the image")
    assert not choice.visible
