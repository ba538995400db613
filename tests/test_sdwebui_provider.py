"""The Stable Diffusion WebUI provider against fake A1111 servers over real loopback sockets.

The provider is the production code with only its URLs pointing at ``tests.fake_sdwebui``;
the fake records what arrived, and gates let a test stop a job mid-sampling to look at it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import io
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageOps

from imgedit.errors import ProviderAuthFailed, ProviderFailed, ProviderRejected, ProviderUnavailable
from imgedit.models import JobKind, Quality
from imgedit.providers import Provider
from imgedit.providers.base import ProviderRequest
from imgedit.providers.sdwebui import OVERHEAD_SECONDS, QUALITY_SPECS, SdWebUiProvider
from imgedit.retry import RetryPolicy, call_with_retries
from tests import loopback
from tests.fake_sdwebui import IMG2IMG, INTERRUPT, PROGRESS, TASK_PROGRESS, TXT2IMG, FakeWebUI
from tests.fakes import eventually
from tests.loopback import free_port, serve, serve_elsewhere

WAIT = 10.0
StartServer = Callable[..., tuple[FakeWebUI, str]]


@dataclass
class RecordingSink:
    updates: list[tuple[float, str | None, float | None, bool]] = field(default_factory=list)
    previews: list[bytes] = field(default_factory=list)

    def progress(
        self, fraction: float, message: str | None = None, *, eta_s: float | None = None, exact: bool = True
    ) -> None:
        self.updates.append((fraction, message, eta_s, exact))

    def preview(self, image: bytes) -> None:
        self.previews.append(image)

    @property
    def messages(self) -> list[str | None]:
        return [message for _, message, _, _ in self.updates]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def webui() -> Iterator[StartServer]:
    """Starts fake servers on loopback; at the end lets their jobs finish, then stops them."""
    fakes: list[FakeWebUI] = []
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> tuple[FakeWebUI, str]:
            fake = FakeWebUI(**options)
            fakes.append(fake)
            return fake, stack.enter_context(serve(fake.app()))

        yield start
        deadline = time.monotonic() + WAIT
        for fake in fakes:
            fake.resume()
            while not fake.idle() and time.monotonic() < deadline:
                time.sleep(0.01)  # bounded wait for jobs orphaned by a cancel to run out


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(WAIT)) as http:
        yield http


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    image = Image.new("RGB", size)
    image.putdata(
        [(x * 255 // size[0], y * 255 // size[1], 90) for y in range(size[1]) for x in range(size[0])]
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def edit(prompt: str = "a watercolour harbour", quality: Quality = Quality.LOW, **kw: Any) -> ProviderRequest:
    return ProviderRequest(
        kind=JobKind.EDIT, prompt=prompt, quality=quality, image=kw.pop("image", png()), **kw
    )


def gen(prompt: str = "a red fox", quality: Quality = Quality.LOW, **kw: Any) -> ProviderRequest:
    return ProviderRequest(kind=JobKind.GENERATE, prompt=prompt, quality=quality, **kw)


def provider(client: httpx.AsyncClient, *urls: str, **options: Any) -> SdWebUiProvider:
    return SdWebUiProvider(client=client, urls=list(urls), **{"poll_interval": 0.02, **options})


async def wait_thread_event(event: Any) -> None:
    assert await asyncio.to_thread(event.wait, WAIT), "the fake server never got there"


def assert_real_progress(sink: RecordingSink, steps: int) -> None:
    exact = [(f, m, eta) for f, m, eta, is_exact in sink.updates if is_exact]
    fractions = [f for f, _, _ in exact]
    assert fractions == sorted(fractions) and all(0.0 <= f <= 1.0 for f in fractions)
    assert any(0.0 < f < 1.0 for f in fractions)
    assert exact[-1][:2] == (1.0, "Done")
    assert any(eta is not None and eta >= 0 for _, _, eta in exact)
    step_messages = [m for _, m, _ in exact if m and m.startswith("Step")]
    assert step_messages and all(re.fullmatch(rf"Step \d+ of {steps}", m) for m in step_messages)
    assert sink.previews and all(p.startswith(b"\x89PNG") for p in sink.previews)


def waiting_behind_another(sink: RecordingSink) -> bool:
    return any(m and m.startswith("Waiting for another job on the server") for m in sink.messages)


def waits_for_a_server(sink: RecordingSink) -> Callable[[], bool]:
    return lambda: "Waiting for a free server" in sink.messages


async def run_gated(
    fake: FakeWebUI, work: Callable[[RecordingSink], Any], step: int, steps: int
) -> tuple[Any, RecordingSink]:
    """Run ``work`` with the fake paused at ``step`` until the provider has reported that step."""
    sink = RecordingSink()
    fake.pause_at(step)
    task = asyncio.create_task(work(sink))
    await wait_thread_event(fake.paused)
    await eventually(lambda: f"Step {step} of {steps}" in sink.messages and sink.previews, message="a report")
    fake.resume()
    return await asyncio.wait_for(task, WAIT), sink


# -- img2img / txt2img ---------------------------------------------------------------------------


async def test_img2img_sends_the_a1111_fields_and_reports_real_progress(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    source = png((64, 48))
    sd = provider(client, url)
    # img2img samples int(12 × 0.55) + 1 = 7 steps, as A1111's setup_img2img_steps does
    result, sink = await run_gated(fake, lambda s: sd.edit(edit(image=source), s), step=4, steps=7)

    (payload,) = fake.received
    assert base64.b64decode(payload["init_images"][0]) == source
    assert re.fullmatch(r"imgedit-[0-9a-f]{32}", payload.pop("force_task_id"))
    assert {k: v for k, v in payload.items() if k != "init_images"} == {
        "prompt": "a watercolour harbour",
        "negative_prompt": "",
        "denoising_strength": 0.55,
        "steps": 12,
        "width": 512,
        "height": 384,
        "cfg_scale": 7,
        "sampler_name": "Euler a",
        "seed": -1,
        "batch_size": 1,
        "n_iter": 1,
        "send_images": True,
        "save_images": False,
    }
    image = Image.open(io.BytesIO(result.image)).convert("RGB")
    expected = ImageOps.invert(Image.open(io.BytesIO(source)).convert("RGB").resize((512, 384)))
    assert image.size == (512, 384) and ImageChops.difference(image, expected).getbbox() is None
    assert result.metadata["size"] == "512x384" and result.metadata["seed"] == "1234"
    assert_real_progress(sink, steps=7)


@pytest.mark.parametrize(
    ("quality", "source", "size", "steps"),
    [
        (Quality.LOW, (300, 1000), (152, 512), 12),
        (Quality.MEDIUM, (300, 1000), (232, 768), 24),
        (Quality.HIGH, (1000, 999), (1024, 1024), 40),
    ],
)
async def test_edits_keep_the_aspect_ratio_on_the_latent_grid(
    webui: StartServer,
    client: httpx.AsyncClient,
    quality: Quality,
    source: tuple[int, int],
    size: tuple[int, int],
    steps: int,
) -> None:
    fake, url = webui(step_seconds=0.001)
    result = await provider(client, url).edit(edit(quality=quality, image=png(source)), RecordingSink())
    (payload,) = fake.received
    assert (payload["width"], payload["height"], payload["steps"]) == (*size, steps)
    assert Image.open(io.BytesIO(result.image)).size == size


async def test_txt2img_sends_the_a1111_fields_and_reports_real_progress(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    sd = provider(client, url)
    request = gen("a red fox in snow", size=(300, 200), seed=42)
    result, sink = await run_gated(fake, lambda s: sd.generate(request, s), step=6, steps=12)

    (payload,) = fake.received
    assert re.fullmatch(r"imgedit-[0-9a-f]{32}", payload.pop("force_task_id"))
    assert payload == {
        "prompt": "a red fox in snow",
        "negative_prompt": "",
        "steps": 12,
        "width": 512,
        "height": 344,
        "cfg_scale": 7,
        "sampler_name": "Euler a",
        "seed": 42,
        "batch_size": 1,
        "n_iter": 1,
        "send_images": True,
        "save_images": False,
    }
    image = Image.open(io.BytesIO(result.image)).convert("RGB")
    assert image.size == (512, 344) and image.getpixel((2, 2)) == (255, 0, 0)
    assert result.metadata["seed"] == "42"
    assert_real_progress(sink, steps=12)


@pytest.mark.parametrize(("quality", "side", "steps"), [(Quality.MEDIUM, 768, 24), (Quality.HIGH, 1024, 40)])
async def test_generation_without_a_size_is_a_square_of_the_qualitys_side(
    webui: StartServer, client: httpx.AsyncClient, quality: Quality, side: int, steps: int
) -> None:
    fake, url = webui(step_seconds=0.001)
    await provider(client, url).generate(gen(quality=quality), RecordingSink())
    (payload,) = fake.received
    assert (payload["width"], payload["height"], payload["steps"]) == (side, side, steps)


async def test_label_capabilities_and_priors(client: httpx.AsyncClient) -> None:
    one = SdWebUiProvider(client=client, urls=["http://gpu:7860"])
    two = SdWebUiProvider(client=client, urls=["http://gpu-a:7860", "http://gpu-b:7860/"])
    assert isinstance(one, Provider)
    assert one.label == "Stable Diffusion WebUI" and two.label == "Stable Diffusion WebUI · 2 servers"
    caps = one.capabilities
    assert caps.edit and caps.generate and caps.stream_previews and caps.real_progress and caps.cancel_remote
    for kind in JobKind:
        priors = [one.expected_seconds(kind, q) for q in (Quality.LOW, Quality.MEDIUM, Quality.HIGH)]
        assert priors == sorted(priors) and priors[0] > 3 and len(set(priors)) == 3
        assert one.describe(kind)
    # img2img runs int(steps × denoising) + 1 steps, so an edit is expected to take less time.
    for quality in Quality:
        steps = QUALITY_SPECS[quality].steps
        ratio = (one.expected_seconds(JobKind.EDIT, quality) - OVERHEAD_SECONDS) / (
            one.expected_seconds(JobKind.GENERATE, quality) - OVERHEAD_SECONDS
        )
        assert ratio == pytest.approx((int(steps * 0.55) + 1) / steps)


# -- cancel --------------------------------------------------------------------------------------


@pytest.mark.parametrize("poll_interval", [0.02, 60.0], ids=["seen-by-poller", "checked-at-cancel"])
async def test_cancelling_a_running_job_interrupts_it_once(
    webui: StartServer, client: httpx.AsyncClient, poll_interval: float
) -> None:
    fake, url = webui()
    sink = RecordingSink()
    fake.pause_at(5)
    task = asyncio.create_task(provider(client, url, poll_interval=poll_interval).edit(edit(), sink))
    await wait_thread_event(fake.paused)
    if poll_interval < 1:
        await eventually(lambda: "Step 5 of 7" in sink.messages, message="step 5 reported")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)

    (job,) = fake.jobs
    await wait_thread_event(job.finished)
    assert [i.task for i in fake.interrupts] == [job.task_id] == [fake.received[0]["force_task_id"]]
    assert job.interrupted and job.steps_done == 5 < job.steps


async def test_a_job_cancelled_while_queued_is_stopped_the_moment_it_starts_and_the_next_shows_its_own_progress(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui(now=frozen_clock())
    foreign = fake.start_foreign_job()
    await wait_thread_event(foreign.started)
    sd = provider(client, url)
    sink = RecordingSink()
    task = asyncio.create_task(sd.generate(gen("cancelled while queued"), sink))
    await eventually(lambda: len(fake.queued_tasks()) == 1, message="our request queued on the server")
    await eventually(lambda: waiting_behind_another(sink), message="a poll")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert fake.interrupts == [], "the foreign job runs on"

    fake.pause_at(3, job=2)  # the next job of ours stops there, so its progress can be looked at
    next_sink = RecordingSink()
    after = asyncio.create_task(sd.generate(gen("the next job"), next_sink))
    await eventually(lambda: len(fake.queued_tasks()) == 2, message="the next job queued behind")
    foreign.finish()
    await wait_thread_event(foreign.done)
    assert foreign.record is not None and not foreign.record.interrupted

    await wait_thread_event(fake.paused)
    cancelled, following = fake.jobs[1:]
    assert cancelled.task_id == fake.received[0]["force_task_id"] and cancelled.interrupted
    assert cancelled.steps_done < cancelled.steps, "stopped as soon as it started"
    assert [i.task for i in fake.interrupts] == [cancelled.task_id]
    assert not any(f > 0 for f, _, _, exact in sink.updates if exact), "foreign progress was taken as ours"

    await eventually(lambda: "Step 3 of 12" in next_sink.messages, message="the next job's own progress")
    fake.resume()
    result = await asyncio.wait_for(after, WAIT)
    assert result.image.startswith(b"\x89PNG") and not following.interrupted
    assert following.timestamp == cancelled.timestamp, "all begun in the same second"
    assert [i.task for i in fake.interrupts] == [cancelled.task_id]


# -- ownership: task ids, not one-second stamps ----------------------------------------------


def frozen_clock() -> Callable[[], datetime.datetime]:
    """Every job begins in the same second, as back-to-back jobs often do on a fast GPU."""
    moment = datetime.datetime(2026, 12, 4, 3, 0, 0)
    return lambda: moment


def ticking_clock() -> Callable[[], datetime.datetime]:
    """Each reading is one second later: every job has a stamp of its own."""
    start = datetime.datetime(2026, 12, 4, 3, 0, 0)
    count = iter(range(1_000_000))
    return lambda: start + datetime.timedelta(seconds=next(count))


async def test_two_jobs_begun_in_the_same_second_each_show_their_own_progress(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui(now=frozen_clock())
    sd = provider(client, url)
    _, first = await run_gated(fake, lambda s: sd.generate(gen("first"), s), step=3, steps=12)
    _, second = await run_gated(fake, lambda s: sd.edit(edit(), s), step=5, steps=7)
    assert fake.jobs[0].timestamp == fake.jobs[1].timestamp
    assert_real_progress(first, steps=12)
    assert_real_progress(second, steps=7)


async def test_cancelling_a_job_begun_in_the_same_second_as_the_last_interrupts_it(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui(now=frozen_clock())
    sd = provider(client, url)
    await sd.generate(gen("before"), RecordingSink())
    sink = RecordingSink()
    fake.pause_at(4)
    task = asyncio.create_task(sd.generate(gen("cancelled"), sink))
    await wait_thread_event(fake.paused)
    await eventually(lambda: "Step 4 of 12" in sink.messages, message="step 4 reported")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    first, second = fake.jobs
    await wait_thread_event(second.finished)
    assert first.timestamp == second.timestamp
    assert [i.task for i in fake.interrupts] == [second.task_id]
    assert second.interrupted and second.steps_done == 4 and not first.interrupted


async def test_cancel_while_our_answer_is_in_flight_never_interrupts_the_next_clients_job(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui(now=frozen_clock())
    fake.hold_answers()  # A1111 encodes the answer after releasing its queue lock
    task = asyncio.create_task(provider(client, url).generate(gen("ours"), RecordingSink()))
    await eventually(lambda: fake.answers_held == 1, message="our job done, its answer on its way")

    fake.pause_at(2)
    async with httpx.AsyncClient(timeout=httpx.Timeout(WAIT)) as someone_else:
        theirs = asyncio.create_task(
            someone_else.post(url + TXT2IMG, json={"prompt": "theirs", "steps": 6, "width": 64, "height": 64})
        )
        await wait_thread_event(fake.paused)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        assert fake.interrupts == []
        fake.resume()
        answer = await asyncio.wait_for(theirs, WAIT)
    ours, their_job = fake.jobs
    assert answer.status_code == 200 and ours.timestamp == their_job.timestamp
    assert not their_job.interrupted and their_job.steps_done == their_job.steps


async def test_a_job_interrupted_by_someone_else_fails_instead_of_keeping_the_half_image(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    sink = RecordingSink()
    fake.pause_at(3)
    task = asyncio.create_task(provider(client, url).generate(gen(), sink))
    await wait_thread_event(fake.paused)
    await eventually(lambda: "Step 3 of 12" in sink.messages, message="step 3 reported")
    async with httpx.AsyncClient() as someone_else:
        assert (await someone_else.post(url + INTERRUPT)).status_code == 200
    with pytest.raises(ProviderFailed, match="interrupted") as caught:
        await asyncio.wait_for(task, WAIT)
    assert "after step 3 of 12" in str(caught.value) and caught.value.retryable
    (job,) = fake.jobs
    assert job.interrupted and job.steps_done == 3, "the server did answer 200 with a half-finished image"


async def test_first_messages_never_show_the_last_jobs_step_total(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui(now=ticking_clock())
    sd = provider(client, url)
    await sd.generate(gen("12 steps"), RecordingSink())
    sink = RecordingSink()
    fake.pause_at(0)  # begun; A1111 keeps the last job's sampling_steps until sampling starts
    task = asyncio.create_task(sd.edit(edit(), sink))
    await wait_thread_event(fake.paused)
    polls = len(fake.requests)
    await eventually(lambda: len(fake.requests) >= polls + 6, message="a few polls while it starts")
    fake.resume()
    await asyncio.wait_for(task, WAIT)
    shown = [m for m in sink.messages if m and m.startswith("Step")]
    assert not any(m.endswith("of 12") for m in shown), shown
    assert all(re.fullmatch(r"Step [1-7] of 7", m) for m in shown), shown


async def test_the_health_probe_and_step_reads_ask_for_no_preview(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    _, sink = await run_gated(fake, lambda s: provider(client, url).generate(gen(), s), step=4, steps=12)
    assert fake.progress_queries and all(fake.progress_queries), "skip_current_image=true"
    assert sink.previews, "previews come from /internal/progress"
    previews = [q["id_live_preview"] for q in fake.task_queries]
    assert previews[0] == -1 and previews == sorted(previews), "each preview is asked for once"


async def test_a_preview_of_more_than_a_megabyte_is_shown(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    side = 1024
    noise = Image.frombytes("RGB", (side, side), random.Random(3).randbytes(side * side * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG", compress_level=0)
    sd = provider(client, url)
    # HIGH: 1024 px, int(40 × 0.55) + 1 = 23 steps; near the end the preview is almost pure noise
    _, sink = await run_gated(
        fake, lambda s: sd.edit(edit(quality=Quality.HIGH, image=buffer.getvalue()), s), step=22, steps=23
    )
    assert max(map(len, sink.previews)) > 1024 * 1024, "a data: URI longer than http.LONG_STRING"


# -- errors A1111 answers for a request that will never work ------------------------------------


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        ("truncated source", "Invalid encoded image"),
        (
            {"error": "NansException", "detail": "", "body": "", "errors": "A tensor with NaNs was produced"},
            "NaNs",
        ),
        (
            {"error": "OutOfMemoryError", "detail": "", "body": "", "errors": "CUDA out of memory."},
            "out of memory",
        ),
        (  # torch before 1.13 raised a RuntimeError with these words for the same thing
            {
                "error": "RuntimeError",
                "detail": "",
                "body": "",
                "errors": "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)",
            },
            "RuntimeError: CUDA out of memory",
        ),
        (  # Forge's exception handler says "message" where A1111 says "errors"
            {
                "error": "NansException",
                "detail": "",
                "body": "",
                "message": "A tensor with NaNs was produced",
            },
            "NansException: A tensor with NaNs",
        ),
    ],
    ids=["invalid-image", "nan", "out-of-memory", "old-torch-out-of-memory", "forge-nan"],
)
async def test_deterministic_500s_fail_at_once(
    webui: StartServer, client: httpx.AsyncClient, break_it: Any, expected: str
) -> None:
    fake, url = webui(step_seconds=0.001)
    sd = provider(client, url)
    request = edit(image=png()[:120]) if break_it == "truncated source" else edit()
    if isinstance(break_it, dict):
        fake.fail_next(3, status=500, body=break_it)
    with pytest.raises(ProviderFailed, match="500") as caught:
        await call_with_retries(
            lambda: sd.edit(request, RecordingSink()), RetryPolicy(max_attempts=3), sleep=no_wait
        )
    assert expected in str(caught.value) and not caught.value.retryable
    assert fake.work_requests == 1


async def test_fastapis_list_shaped_422_reads_as_a_sentence(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    detail = [{"type": "greater_than", "loc": ["body", "steps"], "msg": "Input should be greater than 0"}]
    fake.fail_next(1, status=422, body={"detail": detail})
    with pytest.raises(ProviderRejected) as caught:
        await provider(client, url).generate(gen(), RecordingSink())
    assert str(caught.value).endswith("refused the request (422): steps: Input should be greater than 0")


# -- servers without /internal/progress (started with --nowebui): followed by stamp ----------


async def test_without_internal_progress_a_job_with_a_new_stamp_is_followed_and_cancelled(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui(now=ticking_clock(), internal_progress=False)
    sd = provider(client, url)
    await sd.generate(gen("before"), RecordingSink())
    _, sink = await run_gated(fake, lambda s: sd.generate(gen(), s), step=4, steps=12)
    assert_real_progress(sink, steps=12)

    sink = RecordingSink()
    fake.pause_at(5)
    task = asyncio.create_task(sd.generate(gen("cancelled"), sink))
    await wait_thread_event(fake.paused)
    await eventually(lambda: "Step 5 of 12" in sink.messages, message="step 5 reported")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    job = fake.jobs[-1]
    await wait_thread_event(job.finished)
    assert [i.job_timestamp for i in fake.interrupts] == [job.timestamp] and job.interrupted


async def test_without_internal_progress_an_unchanged_stamp_is_unknown_not_foreign(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui(now=frozen_clock(), internal_progress=False)
    sd = provider(client, url)
    await sd.generate(gen("before"), RecordingSink())
    sink = RecordingSink()
    fake.pause_at(4)
    task = asyncio.create_task(sd.generate(gen("same second"), sink))
    await wait_thread_event(fake.paused)
    polls = len(fake.progress_queries)
    await eventually(lambda: len(fake.progress_queries) >= polls + 3, message="a few polls")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert not waiting_behind_another(sink), "ours, begun in the same second, is not someone else's"
    assert "Waiting for the server" in sink.messages
    assert fake.interrupts == [], "not known to be ours: never interrupted"


async def test_without_internal_progress_a_job_interrupted_by_someone_else_fails(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui(now=ticking_clock(), internal_progress=False)
    fake.pause_at(3)
    task = asyncio.create_task(provider(client, url).generate(gen(), RecordingSink()))
    await wait_thread_event(fake.paused)
    async with httpx.AsyncClient() as someone_else:
        await someone_else.post(url + INTERRUPT)
    with pytest.raises(ProviderFailed, match="interrupted"):
        await asyncio.wait_for(task, WAIT)


# -- the pool ------------------------------------------------------------------------------------


async def test_two_servers_take_two_jobs_at_once(webui: StartServer, client: httpx.AsyncClient) -> None:
    (a, url_a), (b, url_b) = webui(), webui()
    a.pause_at(2)
    b.pause_at(2)
    sd = provider(client, url_a, url_b)
    tasks = [asyncio.create_task(sd.generate(gen(f"job {n}"), RecordingSink())) for n in range(2)]
    await wait_thread_event(a.paused)
    await wait_thread_event(b.paused)
    assert (a.work_requests, b.work_requests) == (1, 1)
    a.resume()
    b.resume()
    results = await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    assert all(r.image.startswith(b"\x89PNG") for r in results)
    assert {a.received[0]["prompt"], b.received[0]["prompt"]} == {"job 0", "job 1"}


async def test_one_server_runs_one_job_at_a_time_first_come_first_served(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    fake.pause_at(2)
    sd = provider(client, url)
    first = asyncio.create_task(sd.generate(gen("first"), RecordingSink()))
    await wait_thread_event(fake.paused)
    queued: list[asyncio.Task[Any]] = []
    for name in ("second", "third"):
        sink = RecordingSink()
        queued.append(asyncio.create_task(sd.generate(gen(name), sink)))
        await eventually(waits_for_a_server(sink), message=f"{name} waits")
    assert fake.work_requests == 1
    fake.resume()
    await asyncio.wait_for(asyncio.gather(first, *queued), WAIT)
    assert [p["prompt"] for p in fake.received] == ["first", "second", "third"]
    assert fake.max_in_flight == 1


async def test_a_job_cancelled_while_waiting_keeps_no_server(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    fake.pause_at(2)
    sd = provider(client, url)
    first = asyncio.create_task(sd.generate(gen("first"), RecordingSink()))
    await wait_thread_event(fake.paused)
    sink = RecordingSink()
    waiting = asyncio.create_task(sd.generate(gen("cancelled"), sink))
    await eventually(waits_for_a_server(sink), message="the second job waits")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    fake.resume()
    await asyncio.wait_for(first, WAIT)
    await asyncio.wait_for(sd.generate(gen("after"), RecordingSink()), WAIT)
    assert [p["prompt"] for p in fake.received] == ["first", "after"]
    assert fake.interrupts == []


async def test_a_dead_server_is_skipped_and_jobs_go_to_the_live_one(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui(step_seconds=0.001)
    sd = provider(client, f"http://127.0.0.1:{free_port()}", url)
    for n in range(3):
        await sd.generate(gen(f"job {n}"), RecordingSink())
    assert [p["prompt"] for p in fake.received] == ["job 0", "job 1", "job 2"]


async def test_all_servers_down_is_unavailable(client: httpx.AsyncClient) -> None:
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    with pytest.raises(ProviderUnavailable) as caught:
        await provider(client, *dead).edit(edit(), RecordingSink())
    message = str(caught.value)
    assert message.startswith("No Stable Diffusion WebUI server answers: ")
    assert all(url in message for url in dead) and caught.value.retryable


async def test_a_downed_server_is_used_again_after_its_cooldown(
    webui: StartServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, live_url = webui(step_seconds=0.001)
    port = free_port()
    clock = FakeClock()
    sd = provider(client, f"http://127.0.0.1:{port}", live_url, clock=clock)

    await sd.generate(gen("t=0, refused: rests 10 s"), RecordingSink())
    clock.now += 11
    await sd.generate(gen("t=11, refused again: rests 20 s"), RecordingSink())
    assert live.work_requests == 2

    monkeypatch.setattr(loopback, "free_port", lambda: port)  # the server comes back on its old port
    revived, revived_url = webui(step_seconds=0.001)
    assert revived_url == f"http://127.0.0.1:{port}"
    clock.now += 19
    await sd.generate(gen("t=30, still resting"), RecordingSink())
    assert revived.requests == [] and live.work_requests == 3
    clock.now += 2
    await sd.generate(gen("t=32, back"), RecordingSink())
    assert [p["prompt"] for p in revived.received] == ["t=32, back"] and live.work_requests == 3


# -- auth and errors -----------------------------------------------------------------------------

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize("where", ["argument", "url"])
async def test_basic_auth_is_sent_and_never_shown(
    webui: StartServer, client: httpx.AsyncClient, where: str
) -> None:
    fake, url = webui(step_seconds=0.001, auth=("alice", SECRET))
    if where == "url":
        sd = provider(client, url.replace("http://", f"http://alice:{SECRET}@"))
    else:
        sd = provider(client, url, auth=("alice", SECRET))
    await sd.edit(edit(), RecordingSink())
    assert fake.work_requests == 1 and fake.auth_users and set(fake.auth_users) == {"alice"}
    assert SECRET not in sd.label + repr(sd) and url in repr(sd)


@pytest.mark.parametrize("where", ["argument", "url"])
async def test_wrong_credentials_fail_as_auth_and_are_never_shown(
    webui: StartServer, client: httpx.AsyncClient, where: str
) -> None:
    fake, url = webui(auth=("alice", SECRET))
    wrong = "hunter2-wrong"
    if where == "url":
        sd = provider(client, url.replace("http://", f"http://alice:{wrong}@"))
    else:
        sd = provider(client, url, auth=("alice", wrong))
    with pytest.raises(ProviderAuthFailed) as caught:
        await sd.generate(gen(), RecordingSink())
    shown = str(caught.value) + repr(caught.value) + sd.label + repr(sd)
    assert "(401)" in shown and url in shown
    assert wrong not in shown and "alice" not in shown
    assert fake.work_requests == 0


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (
            # A passing trouble (out of memory is not: test_deterministic_500s_fail_at_once).
            {"status": 500, "body": {"error": "OSError", "errors": "[Errno 24] Too many open files"}},
            "Too many open files",
        ),
        ({"status": 200, "body": "<html>busy</html>"}, "not valid JSON"),
        ({"status": 200, "body": {"images": [], "parameters": {}, "info": "{}"}}, "sent no image data"),
        ({"drop": True}, "broke off"),
    ],
    ids=["500", "not-json", "no-image", "dropped"],
)
async def test_server_failures_map_through_http_and_do_not_rest_the_server(
    webui: StartServer, client: httpx.AsyncClient, failure: dict[str, Any], expected: str
) -> None:
    (a, url_a), (b, url_b) = webui(step_seconds=0.001), webui(step_seconds=0.001)
    sd = provider(client, url_a, url_b)
    a.fail_next(1, **failure)
    with pytest.raises(ProviderFailed) as caught:
        await sd.edit(edit(), RecordingSink())
    assert expected in str(caught.value) and caught.value.retryable
    await sd.edit(edit(), RecordingSink())
    assert a.work_requests == 2 and b.work_requests == 0, "a server that answered is not rested"


async def test_failed_progress_reads_do_not_fail_the_job(
    webui: StartServer, client: httpx.AsyncClient
) -> None:
    fake, url = webui()
    sink = RecordingSink()
    fake.pause_at(4)
    task = asyncio.create_task(provider(client, url).generate(gen(), sink))
    await wait_thread_event(fake.paused)
    await eventually(lambda: "Step 4 of 12" in sink.messages, message="step 4 reported")
    fake.fail_next(1, status=500, path=TASK_PROGRESS)
    fake.fail_next(2, status=500, path=PROGRESS)
    fake.fail_next(1, drop=True, path=PROGRESS)
    fake.fail_next(1, status=200, body="<html>", path=PROGRESS)
    await eventually(lambda: fake.pending_failures == 0, message="the polls to hit every failure")
    fake.resume()
    result = await asyncio.wait_for(task, WAIT)
    assert result.image.startswith(b"\x89PNG") and sink.updates[-1][:2] == (1.0, "Done")


# -- read timeouts: a busy server, not a dead one ------------------------------------------------

SHORT_READ = 0.3
"""A read timeout far below the fake's paused job, far above the time the fake needs to start it."""


@contextlib.asynccontextmanager
async def impatient_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(WAIT, read=SHORT_READ)) as http:
        yield http


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


async def test_a_read_timeout_interrupts_our_job_before_the_retry_sends_it_again(webui: StartServer) -> None:
    fake, url = webui()
    fake.pause_at(2)  # every job renders until it is interrupted, far past the read timeout
    async with impatient_client() as http:
        sd = provider(http, url)
        with pytest.raises(ProviderUnavailable, match="did not answer in time"):
            await call_with_retries(
                lambda: sd.edit(edit(), RecordingSink()), RetryPolicy(max_attempts=3), sleep=no_wait
            )

    assert len(fake.jobs) == 3, "one render per attempt"
    for job in fake.jobs:
        await wait_thread_event(job.finished)
    assert all(job.interrupted and job.steps_done < job.steps for job in fake.jobs)
    assert [i.job_timestamp for i in fake.interrupts] == [job.timestamp for job in fake.jobs]
    sent = [path for method, path in fake.requests if path in (IMG2IMG, INTERRUPT)]
    assert sent == [IMG2IMG, INTERRUPT] * 3, "each render is stopped before the next is sent"


async def test_a_read_timeout_does_not_rest_the_busy_server(webui: StartServer) -> None:
    (busy, busy_url), (spare, spare_url) = webui(), webui(step_seconds=0.001)
    busy.pause_at(2)
    async with impatient_client() as http:
        sd = provider(http, busy_url, spare_url)
        for _ in range(2):  # a rested server would hand the second job to the spare
            with pytest.raises(ProviderUnavailable, match="did not answer in time"):
                await sd.edit(edit(), RecordingSink())
    assert busy.work_requests == 2 and spare.work_requests == 0, "a server that was only slow is not rested"
    assert len(busy.interrupts) == 2


# -- large payloads stay off the event loop -----------------------------------------------------


@pytest.fixture(scope="module")
def large_png() -> bytes:
    """A 30 MB PNG (noise does not compress): 40 MB once base64-encoded."""
    side = 3200
    noise = Image.frombytes("RGB", (side, side), random.Random(7).randbytes(side * side * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


async def test_a_30_mb_source_and_a_40_mb_answer_never_stall_the_event_loop(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, large_png: bytes, tmp_path: Path
) -> None:
    (tmp_path / "answer.png").write_bytes(large_png)
    setup = (
        "from tests.fake_sdwebui import FakeWebUI\n"
        "fake = FakeWebUI(step_seconds=0.001)\n"
        f"fake.result_image = open({str(tmp_path / 'answer.png')!r}, 'rb').read()"  # 40 MB of base64 back
    )
    # In another process: the fake's own work on 40 MB would compete for this process's GIL.
    with serve_elsewhere(setup, "fake.app()") as url:
        loop = asyncio.get_running_loop()
        caplog.set_level(logging.WARNING, logger="asyncio")
        loop.slow_callback_duration = 0.05
        loop.set_debug(True)  # asyncio then logs "Executing <callback> took 0.145 seconds"
        try:
            result = await provider(client, url).edit(edit(image=large_png), RecordingSink())
        finally:
            loop.set_debug(False)
    assert result.image == large_png
    stalls = [r.getMessage() for r in caplog.records if r.name == "asyncio" and " took " in r.getMessage()]
    assert stalls == []
