"""The OpenAI provider against a fake of the Images API served on a real loopback socket.

The production ``OpenAIProvider`` runs unchanged with a real ``httpx.AsyncClient``; only its
base URL points at ``tests.fake_openai``, which parses the multipart / JSON bodies and answers
in the real wire format (JSON bodies, SSE streams, OpenAI error shapes).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from PIL import Image

from imgedit.errors import (
    ImgEditError,
    InvalidRequest,
    ProviderAuthFailed,
    ProviderError,
    ProviderFailed,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from imgedit.models import JobKind, Quality
from imgedit.providers.base import Provider, ProviderRequest
from imgedit.providers.openai import OpenAIProvider, generation_size
from imgedit.providers.sse import SseEvent, SseParser
from imgedit.retry import RetryPolicy, call_with_retries
from tests.fake_openai import (
    SIZES,
    CutStream,
    FakeOpenAI,
    Hang,
    Malformed,
    Status,
    StreamError,
    conflict,
    free_size_problem,
    insufficient_quota,
    make_app,
    moderation,
    prompt_colour,
    rate_limited,
)
from tests.fakes import eventually
from tests.loopback import free_port, serve

T = TypeVar("T")

KEY = "sk-test-fake-openai-key"
WRONG_KEY = "sk-wrong-0123456789abcdef"


# -- helpers --------------------------------------------------------------------------------


@dataclass
class RecordingSink:
    """A ProgressSink that keeps everything it is told."""

    progress_calls: list[tuple[float, str | None, bool]] = field(default_factory=list)
    previews: list[bytes] = field(default_factory=list)
    first_preview: asyncio.Event = field(default_factory=asyncio.Event)

    def progress(
        self, fraction: float, message: str | None = None, *, eta_s: float | None = None, exact: bool = True
    ) -> None:
        self.progress_calls.append((fraction, message, exact))

    def preview(self, image: bytes) -> None:
        self.previews.append(image)
        self.first_preview.set()

    @property
    def messages(self) -> list[str | None]:
        return [message for _, message, _ in self.progress_calls]

    @property
    def milestones(self) -> list[float]:
        return [f for f, m, _ in self.progress_calls if m and m.startswith("Partial image")]


def source_image(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A picture where every pixel differs from its neighbours, so a pixel check means something."""
    width, height = size
    red = Image.linear_gradient("L").rotate(90).resize(size)
    green = Image.linear_gradient("L").resize(size)
    blue = Image.new("L", size, 40)
    image = Image.merge("RGB", (red, green, blue))
    image.putpixel((width - 1, height - 1), (250, 5, 128))
    return image


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def edit_request(quality: Quality = Quality.MEDIUM, image: bytes | None = None) -> ProviderRequest:
    return ProviderRequest(
        kind=JobKind.EDIT,
        prompt="invert the colours",
        quality=quality,
        image=encoded(source_image()) if image is None else image,
    )


def generate_request(
    prompt: str = "a teal lighthouse", quality: Quality = Quality.LOW, size: tuple[int, int] | None = None
) -> ProviderRequest:
    return ProviderRequest(kind=JobKind.GENERATE, prompt=prompt, quality=quality, size=size)


@dataclass
class Fake:
    state: FakeOpenAI
    base_url: str
    client: httpx.AsyncClient

    def provider(self, **options: object) -> OpenAIProvider:
        kwargs: dict[str, object] = {"api_key": KEY, "base_url": self.base_url, "partial_images": 0}
        kwargs.update(options)
        return OpenAIProvider(client=self.client, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def fake_server() -> Iterator[tuple[FakeOpenAI, str]]:
    state = FakeOpenAI(api_key=KEY)
    try:
        with serve(make_app(state)) as server:
            yield state, server + "/v1"
    finally:
        state.gate.set()  # a stream still waiting on it must end for the server to stop


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(20.0)) as http:
        yield http


@pytest.fixture
async def fake(fake_server: tuple[FakeOpenAI, str], client: httpx.AsyncClient) -> Fake:
    state, base_url = fake_server
    return Fake(state, base_url, client)


def error_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    for link in error_chain(exc):
        for secret in secrets:
            assert secret not in str(link), f"{type(link).__name__} leaks a key: {link}"
            assert secret not in repr(link.args)


# -- requests as sent -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fidelity_sent"),
    [
        ("gpt-image-1.5", "high"),
        ("gpt-image-1", "high"),
        ("gpt-image-1.5-2025-12-16", "high"),
        ("gpt-image-1-mini", None),
        ("gpt-image-2", None),  # the real API answers 400 invalid_input_fidelity_model
        ("gpt-image-2-2026-04-21", None),
    ],
)
async def test_an_edit_sends_the_documented_multipart_fields_and_returns_the_inverted_image(
    fake: Fake, model: str, fidelity_sent: str | None
) -> None:
    provider = fake.provider(model=model)
    sink = RecordingSink()
    source = source_image()

    result = await provider.edit(edit_request(Quality.HIGH, encoded(source)), sink)

    sent = fake.state.last
    assert sent.outcome == "ok"
    assert sent.path == "/v1/images/edits"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"].startswith("multipart/form-data")
    assert sent.fields == {
        "prompt": "invert the colours",
        "model": model,
        "quality": "high",
        "size": "auto",
        "output_format": "png",
        "n": "1",
        **({"input_fidelity": fidelity_sent} if fidelity_sent else {}),
    }
    [upload] = sent.uploads
    assert (upload.field, upload.filename, upload.content_type) == ("image", "image.png", "image/png")
    assert (upload.format, upload.size) == ("PNG", source.size)

    assert result.format == "PNG"
    assert result.metadata["model"] == model
    image = decoded(result.image).convert("RGB")
    assert image.size == source.size
    for xy in [(0, 0), (63, 0), (0, 47), (31, 23), (63, 47)]:
        expected = tuple(255 - channel for channel in source.getpixel(xy))  # type: ignore[union-attr]
        assert image.getpixel(xy) == expected, xy

    messages = sink.messages
    assert messages[0] == "Sending to OpenAI-compatible server " + fake.base_url.split("//")[1].split("/")[0]
    assert any(m and m.endswith("is drawing") for m in messages)
    assert all(not exact for _, _, exact in sink.progress_calls)
    assert sink.previews == []


async def test_the_fake_refuses_input_fidelity_for_a_mini_model_like_the_real_api(fake: Fake) -> None:
    # Guards the test above: if the fake accepted it, "absent for minis" would prove nothing.
    response = await fake.client.post(
        fake.base_url + "/images/edits",
        headers={"Authorization": f"Bearer {KEY}"},
        data={"prompt": "p", "model": "gpt-image-1-mini", "input_fidelity": "high"},
        files={"image": ("image.png", encoded(source_image()), "image/png")},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input_fidelity"


async def test_input_fidelity_can_be_switched_off(fake: Fake) -> None:
    await fake.provider(input_fidelity=None).edit(edit_request(), RecordingSink())
    assert not fake.state.last.has("input_fidelity")


@pytest.mark.parametrize(
    ("fmt", "filename", "content_type"),
    [
        ("JPEG", "image.jpg", "image/jpeg"),
        ("WEBP", "image.webp", "image/webp"),
        ("GIF", "image.png", "image/png"),
    ],
)
async def test_the_upload_is_labelled_by_its_real_format(
    fake: Fake, fmt: str, filename: str, content_type: str
) -> None:
    data = encoded(source_image(), fmt)
    result = await fake.provider().edit(edit_request(image=data), RecordingSink())
    [upload] = fake.state.last.uploads
    assert (upload.filename, upload.content_type) == (filename, content_type)
    assert upload.size == (64, 48)
    assert decoded(result.image).size == (64, 48)


async def test_a_generation_sends_json_and_maps_the_size_to_the_nearest_aspect(fake: Fake) -> None:
    provider = fake.provider(model="gpt-image-1")
    result = await provider.generate(
        generate_request(quality=Quality.MEDIUM, size=(1600, 900)), RecordingSink()
    )

    sent = fake.state.last
    assert sent.path == "/v1/images/generations"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {
        "model": "gpt-image-1",
        "prompt": "a teal lighthouse",
        "quality": "medium",
        "size": "1536x1024",
        "output_format": "png",
        "n": 1,
    }
    image = decoded(result.image).convert("RGB")
    assert image.size == (1536, 1024)
    assert image.getpixel((0, 0)) == prompt_colour("a teal lighthouse")
    assert result.metadata["size"] == "1536x1024"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (None, "auto"),
        ((512, 512), "1024x1024"),
        ((1200, 1000), "1024x1024"),
        ((1920, 1080), "1536x1024"),
        ((3000, 1000), "1536x1024"),
        ((1080, 1920), "1024x1536"),
        ((768, 1024), "1024x1536"),
    ],
)
def test_generation_size_mapping(size: tuple[int, int] | None, expected: str) -> None:
    assert generation_size(size) == expected


@pytest.mark.parametrize("quality", list(Quality))
async def test_quality_passes_through(fake: Fake, quality: Quality) -> None:
    await fake.provider().generate(generate_request(quality=quality, size=(1024, 1536)), RecordingSink())
    assert fake.state.last.param("quality") == quality.value
    assert fake.state.last.param("size") == "1024x1536"


# -- streaming ------------------------------------------------------------------------------


async def test_a_streamed_edit_shows_each_partial_image_then_returns_the_result(fake: Fake) -> None:
    sink = RecordingSink()
    source = source_image()
    result = await fake.provider(partial_images=2).edit(edit_request(image=encoded(source)), sink)

    assert fake.state.last.fields["stream"] == "true"
    assert fake.state.last.fields["partial_images"] == "2"
    assert fake.state.last.headers["accept"] == "text/event-stream"
    assert len(sink.previews) == 2
    previews = [decoded(p).convert("RGB") for p in sink.previews]
    assert all(p.size == source.size for p in previews)
    final = decoded(result.image).convert("RGB")
    # Progressively less blurred: each preview is closer to the final image than the last.
    distances = [sum(abs(a - b) for a, b in zip(p.tobytes(), final.tobytes(), strict=True)) for p in previews]
    assert distances[0] > distances[1] > 0
    assert final.getpixel((63, 47)) == (5, 250, 127)

    assert sink.milestones == pytest.approx([1 / 3, 2 / 3])
    partial_calls = [(f, m, e) for f, m, e in sink.progress_calls if m and m.startswith("Partial")]
    assert [m for _, m, _ in partial_calls] == ["Partial image 1 of 2", "Partial image 2 of 2"]
    assert all(not exact for _, _, exact in partial_calls)
    fractions = [f for f, _, _ in sink.progress_calls]
    assert fractions == sorted(fractions)
    assert result.metadata["output_tokens"] == "1056"


async def test_a_streamed_generation_uses_json_and_image_generation_events(fake: Fake) -> None:
    sink = RecordingSink()
    result = await fake.provider(partial_images=3).generate(
        generate_request("a red kite", Quality.HIGH, (1024, 1024)), sink
    )
    sent = fake.state.last
    assert sent.json is not None
    assert sent.json["stream"] is True and sent.json["partial_images"] == 3
    assert sent.json["size"] == "1024x1024" and sent.json["quality"] == "high"
    assert len(sink.previews) == 3
    assert sink.milestones == pytest.approx([1 / 4, 2 / 4, 3 / 4])
    assert decoded(result.image).convert("RGB").getpixel((0, 0)) == prompt_colour("a red kite")
    assert result.metadata["output_tokens"] == "4160"


async def test_the_stream_reader_copes_with_crlf_comments_and_multiline_data(fake: Fake) -> None:
    fake.state.sse_newline = "\r\n"
    fake.state.sse_comments = True
    fake.state.sse_multiline = True
    sink = RecordingSink()
    result = await fake.provider(partial_images=2).edit(edit_request(), sink)
    assert len(sink.previews) == 2
    assert decoded(result.image).size == (64, 48)


def test_the_sse_parser_follows_the_event_stream_rules() -> None:
    parser = SseParser()
    lines = [": hello", "event: a", "data: one", "data:two", "id: 7", "", "", "data: x\r", "\r"]
    events = [event for line in lines if (event := parser.feed(line)) is not None]
    assert events == [SseEvent("a", "one\ntwo"), SseEvent("message", "x")]
    parser.feed("data: tail")
    assert parser.finish() == SseEvent("message", "tail")
    assert parser.finish() is None


# -- errors over real HTTP ------------------------------------------------------------------


async def test_a_wrong_key_asks_to_check_it_and_is_not_retried(fake: Fake) -> None:
    provider = fake.provider(api_key=WRONG_KEY)
    with pytest.raises(ProviderAuthFailed) as caught:
        await provider.edit(edit_request(), RecordingSink())
    assert "check your API key" in str(caught.value)
    assert "Incorrect API key provided" in str(caught.value)
    assert not caught.value.retryable
    assert_no_secret(caught.value, WRONG_KEY, KEY)
    assert fake.state.last.outcome == "auth"


async def test_moderation_is_rejected_with_the_servers_message(fake: Fake) -> None:
    fake.state.script(moderation("Your request was rejected by the safety system."))
    with pytest.raises(ProviderRejected) as caught:
        await fake.provider().edit(edit_request(), RecordingSink())
    assert "Your request was rejected by the safety system." in str(caught.value)
    assert "safety system" in str(caught.value)
    assert not caught.value.retryable
    assert not isinstance(caught.value, ProviderAuthFailed)


async def test_a_503_is_retryable_and_keeps_retry_after(fake: Fake) -> None:
    fake.state.script(Status(503, "The engine is currently overloaded.", headers={"Retry-After": "7"}))
    provider = fake.provider(partial_images=2)
    with pytest.raises(ProviderFailed) as caught:
        await provider.generate(generate_request(), RecordingSink())
    assert caught.value.retryable
    assert caught.value.retry_after == 7.0
    assert "503" in str(caught.value) and "overloaded" in str(caught.value)
    # The script is used up: the next call succeeds.
    result = await provider.generate(generate_request(), RecordingSink())
    assert decoded(result.image).size == (1024, 1024)


async def test_a_429_is_rate_limited_with_retry_after(fake: Fake) -> None:
    fake.state.script(rate_limited("3"))
    with pytest.raises(ProviderRateLimited) as caught:
        await fake.provider().edit(edit_request(), RecordingSink())
    assert caught.value.retryable and caught.value.retry_after == 3.0


@pytest.mark.parametrize("abrupt", [False, True], ids=["stream-ends", "connection-dropped"])
async def test_a_stream_cut_after_one_partial_is_a_retryable_failure(fake: Fake, abrupt: bool) -> None:
    fake.state.script(CutStream(after_partials=1, abrupt=abrupt))
    sink = RecordingSink()
    with pytest.raises(ProviderFailed) as caught:
        await fake.provider(partial_images=2).edit(edit_request(), sink)
    assert caught.value.retryable
    assert len(sink.previews) == 1
    if abrupt:
        assert "broke off" in str(caught.value)
    else:
        assert "the stream ended before the image was complete" in str(caught.value)


async def test_a_json_body_cut_off_is_a_retryable_failure(fake: Fake) -> None:
    fake.state.script(CutStream(abrupt=True))
    with pytest.raises(ProviderFailed) as caught:
        await fake.provider().edit(edit_request(), RecordingSink())
    assert caught.value.retryable


@pytest.mark.parametrize("partial_images", [0, 2])
async def test_a_malformed_body_is_a_retryable_failure(fake: Fake, partial_images: int) -> None:
    fake.state.script(Malformed())
    with pytest.raises(ProviderFailed) as caught:
        await fake.provider(partial_images=partial_images).edit(edit_request(), RecordingSink())
    assert caught.value.retryable
    assert "not valid JSON" in str(caught.value)


async def test_a_body_without_an_image_is_a_retryable_failure(fake: Fake) -> None:
    fake.state.script(Malformed(json.dumps({"created": 1, "data": [{"url": "https://example.com/a.png"}]})))
    with pytest.raises(ProviderFailed, match="no image data"):
        await fake.provider().generate(generate_request(), RecordingSink())


async def test_an_error_event_in_the_stream_is_mapped(fake: Fake) -> None:
    fake.state.script(
        StreamError(after_partials=1, code="moderation_blocked", message="The image was flagged."),
        StreamError(after_partials=0, code="server_error", message="Something broke."),
    )
    provider = fake.provider(partial_images=2)
    with pytest.raises(ProviderRejected, match=r"The image was flagged\.") as rejected:
        await provider.edit(edit_request(), RecordingSink())
    assert not rejected.value.retryable
    assert "safety system" in str(rejected.value)
    with pytest.raises(ProviderFailed, match=r"Something broke\.") as failed:
        await provider.generate(generate_request(), RecordingSink())
    assert failed.value.retryable


async def test_a_refused_connection_is_unavailable() -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        provider = OpenAIProvider(client=client, api_key=KEY, base_url=f"http://127.0.0.1:{free_port()}/v1")
        with pytest.raises(ProviderUnavailable) as caught:
            await provider.generate(generate_request(), RecordingSink())
    assert caught.value.retryable
    assert "Could not connect" in str(caught.value)
    assert_no_secret(caught.value, KEY)


async def test_an_invalid_request_is_refused_before_sending(fake: Fake) -> None:
    provider = fake.provider()
    with pytest.raises(InvalidRequest):
        await provider.edit(
            ProviderRequest(kind=JobKind.EDIT, prompt="x", quality=Quality.LOW), RecordingSink()
        )
    with pytest.raises(InvalidRequest):
        await provider.generate(generate_request(prompt="   "), RecordingSink())
    with pytest.raises(InvalidRequest):
        await provider.edit(edit_request(image=b"not an image at all"), RecordingSink())
    assert fake.state.requests == []


async def test_every_outcome_gives_the_connection_back(fake_server: tuple[FakeOpenAI, str]) -> None:
    # With a single pooled connection, any response left open would starve the next call.
    state, base_url = fake_server
    state.script(
        StreamError(after_partials=1, code="server_error"),
        CutStream(after_partials=1),
        Malformed(),
        Status(500),
    )
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, pool=2.0), limits=limits) as client:
        provider = OpenAIProvider(client=client, api_key=KEY, base_url=base_url, partial_images=2)
        for _ in range(4):
            with pytest.raises(ProviderFailed):
                await provider.edit(edit_request(), RecordingSink())
        for _ in range(2):  # the result arrives before the stream's end; the rest is not waited for
            await provider.edit(edit_request(), RecordingSink())
    assert [r.outcome for r in state.requests] == [
        "StreamError",
        "CutStream",
        "Malformed",
        "Status",
        "ok",
        "ok",
    ]


# -- cancellation ---------------------------------------------------------------------------


async def test_cancelling_during_a_stream_ends_promptly_and_closes_the_connection(fake: Fake) -> None:
    fake.state.gate.clear()
    sink = RecordingSink()
    task = asyncio.create_task(fake.provider(partial_images=2).edit(edit_request(), sink))
    await asyncio.wait_for(sink.first_preview.wait(), timeout=15)
    assert not task.done()

    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done, "the provider did not stop within 5 s of being cancelled"
    assert task.cancelled()
    await eventually(fake.state.disconnected.is_set, within=10, message="the server to see the disconnect")
    assert len(sink.previews) == 1


# -- secrets, labels, priors ----------------------------------------------------------------


async def test_the_key_never_appears_in_errors_repr_or_label(fake: Fake) -> None:
    fake.state.script(
        Status(500, "boom"),
        moderation(),
        rate_limited(),
        CutStream(abrupt=True),
        Malformed(),
        StreamError(code="server_error"),
        Status(
            400, "Invalid value for 'size'.", error_code="invalid_value", error_type="invalid_request_error"
        ),
    )
    provider = fake.provider(partial_images=1)
    errors: list[ImgEditError] = []
    for _ in range(7):
        with pytest.raises(ProviderError) as caught:
            await provider.edit(edit_request(), RecordingSink())
        errors.append(caught.value)
    with pytest.raises(ProviderAuthFailed) as auth:
        await fake.provider(api_key=KEY + "x").edit(edit_request(), RecordingSink())
    errors.append(auth.value)
    assert len({type(e) for e in errors}) >= 4
    for error in errors:
        assert_no_secret(error, KEY)
    assert KEY not in repr(provider)
    assert KEY not in provider.label
    assert KEY not in provider.describe(JobKind.EDIT) + provider.describe(JobKind.GENERATE)


async def test_a_key_that_cannot_be_a_header_is_refused_without_echoing_it(client: httpx.AsyncClient) -> None:
    bad_key = "sk-secret\nInjected: yes"
    with pytest.raises(ValueError) as caught:
        OpenAIProvider(client=client, api_key=bad_key)
    assert "secret" not in str(caught.value)


async def test_labels_name_the_model_or_the_compatible_host_without_credentials(
    client: httpx.AsyncClient,
) -> None:
    official = OpenAIProvider(client=client, api_key=KEY)
    assert official.label == "OpenAI · gpt-image-1.5"
    assert isinstance(official, Provider)
    assert official.capabilities.stream_previews and not official.capabilities.real_progress
    proxy = OpenAIProvider(
        client=client, api_key=KEY, base_url="https://user:hunter2@proxy.example:8443/v1", partial_images=0
    )
    assert proxy.label.startswith("OpenAI-compatible · proxy.example:8443")
    assert "hunter2" not in proxy.label + repr(proxy)
    assert not proxy.capabilities.stream_previews


async def test_eta_priors_follow_the_output_token_counts(client: httpx.AsyncClient) -> None:
    provider = OpenAIProvider(client=client, api_key=KEY)
    gen = {q: provider.expected_seconds(JobKind.GENERATE, q) for q in Quality}
    edit = {q: provider.expected_seconds(JobKind.EDIT, q) for q in Quality}
    assert gen[Quality.LOW] < gen[Quality.MEDIUM] < gen[Quality.HIGH]
    assert (gen[Quality.HIGH] - 8) / (gen[Quality.LOW] - 8) == pytest.approx(4160 / 272)
    assert (gen[Quality.MEDIUM] - 8) / (gen[Quality.LOW] - 8) == pytest.approx(1056 / 272)
    assert gen[Quality.LOW] == pytest.approx(13, abs=0.5)
    assert gen[Quality.MEDIUM] == pytest.approx(27, abs=0.5)
    assert gen[Quality.HIGH] == pytest.approx(83, abs=0.5)
    assert all(edit[q] == pytest.approx(gen[q] + 4) for q in Quality)


# -- as the official SDK and the real server behave (issue 10) ------------------------------
# Sources: openai/openai-openapi openapi.yaml (CreateImageEditRequest, CreateImageRequest,
# ImagesResponse, Image*PartialImageEvent / *CompletedEvent, InputFidelity) and
# openai/openai-python src/openai/_base_client.py (_should_retry, _parse_retry_after_header),
# _streaming.py (an event whose data carries ``error`` raises, whatever its name).

SPEC_SIZES = {"1024x1024", "1536x1024", "1024x1536"}


@dataclass
class Attempts:
    """What ``call_with_retries`` did: the waits it would have slept (recorded, not slept)."""

    waits: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


async def with_retries(call: Callable[[], Awaitable[T]], attempts: Attempts) -> T:
    """The retry loop every job runs through, with the real policy; only the sleep is recorded."""
    return await call_with_retries(call, RetryPolicy(max_attempts=3), sleep=attempts.sleep)


async def post_edit(fake: Fake, fields: dict[str, str], files: list[tuple[str, Any]]) -> httpx.Response:
    return await fake.client.post(
        fake.base_url + "/images/edits",
        headers={"Authorization": f"Bearer {KEY}"},
        data={"prompt": "p", **fields},
        files=files,
    )


def png_part(name: str = "image", size: tuple[int, int] = (64, 48)) -> tuple[str, Any]:
    return (name, ("image.png", encoded(source_image(size)), "image/png"))


# The fake first: it must refuse and answer what the real server refuses and answers, or the
# client tests below would prove nothing.


async def test_the_fake_refuses_input_fidelity_for_gpt_image_2_as_the_real_api_does(fake: Fake) -> None:
    response = await post_edit(fake, {"model": "gpt-image-2", "input_fidelity": "high"}, [png_part()])
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("input_fidelity", "invalid_input_fidelity_model")
    assert error["message"] == "The model 'gpt-image-2' does not support the 'input_fidelity' parameter."
    accepted = await post_edit(fake, {"model": "gpt-image-1.5", "input_fidelity": "high"}, [png_part()])
    assert accepted.status_code == 200


async def test_the_fake_takes_several_images_as_image_brackets_like_the_sdk_sends(fake: Fake) -> None:
    response = await post_edit(
        fake, {"model": "gpt-image-1.5"}, [png_part("image[]", (64, 48)), png_part("image[]", (30, 30))]
    )
    assert response.status_code == 200, response.text
    assert [(u.field, u.size) for u in fake.state.last.uploads] == [
        ("image[]", (64, 48)),
        ("image[]", (30, 30)),
    ]
    # The first image is the one edited.
    assert decoded(base64.b64decode(response.json()["data"][0]["b64_json"])).size == (64, 48)


async def test_the_fake_names_only_the_specs_sizes_never_the_sources_own(fake: Fake) -> None:
    # A 64x48 source edited with size=auto: the answer names the standard size of that aspect.
    response = await post_edit(fake, {"model": "gpt-image-1.5", "size": "auto"}, [png_part(size=(64, 48))])
    assert response.json()["size"] == "1536x1024"
    portrait = await post_edit(fake, {"model": "gpt-image-1.5"}, [png_part(size=(40, 64))])
    assert portrait.json()["size"] == "1024x1536"
    # And every event of a stream does the same.
    events = await sse_events(
        fake,
        {"model": "gpt-image-1.5", "stream": "true", "partial_images": "2"},
        [png_part(size=(64, 48))],
    )
    assert [e["type"] for e in events] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    assert {e["size"] for e in events} == {"1536x1024"}


async def sse_events(
    fake: Fake, fields: dict[str, str], files: list[tuple[str, Any]]
) -> list[dict[str, Any]]:
    response = await post_edit(fake, fields, files)
    assert response.headers["content-type"].startswith("text/event-stream")
    parser = SseParser()
    events = [e for line in response.text.splitlines() if (e := parser.feed(line)) is not None]
    return [json.loads(e.data) for e in events]


@pytest.mark.parametrize(
    ("model", "size", "accepted"),
    [
        ("gpt-image-1.5", "1536x864", False),
        ("gpt-image-2", "1536x864", True),
        ("gpt-image-2-2026-04-21", "2560x1440", True),
        ("gpt-image-2", "1530x864", False),  # not divisible by 16
        ("gpt-image-2", "3840x1024", False),  # wider than 3:1
        ("gpt-image-2", "4096x2304", False),  # over 3840 px
        ("gpt-image-2", "512x512", False),  # too few pixels
    ],
)
async def test_the_fake_takes_any_width_x_height_only_from_models_that_do(
    fake: Fake, model: str, size: str, accepted: bool
) -> None:
    response = await fake.client.post(
        fake.base_url + "/images/generations",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": model, "prompt": "a kite", "size": size, "quality": "low"},
    )
    assert response.status_code == (200 if accepted else 400), response.text
    if accepted:
        assert response.json()["size"] == size
        width, height = map(int, size.split("x"))
        assert decoded(base64.b64decode(response.json()["data"][0]["b64_json"])).size == (width, height)
    else:
        assert response.json()["error"]["param"] == "size"


# The client.


async def test_a_data_only_error_event_fails_the_job_at_once_whatever_its_event_name(fake: Fake) -> None:
    fake.state.script(StreamError(after_partials=1, code="moderation_blocked", data_only=True))
    attempts = Attempts()
    provider = fake.provider(partial_images=2)
    with pytest.raises(ProviderRejected) as caught:
        await with_retries(lambda: provider.edit(edit_request(), RecordingSink()), attempts)
    assert "safety system" in str(caught.value)
    assert "Your request was rejected by the safety system." in str(caught.value)
    assert not caught.value.retryable
    assert len(fake.state.requests) == 1, "a blocked image was asked for again"
    assert attempts.waits == []


async def test_x_should_retry_false_is_obeyed_before_the_status_rules(fake: Fake) -> None:
    fake.state.script(Status(500, "The server had an error.", headers={"x-should-retry": "false"}))
    attempts = Attempts()
    provider = fake.provider()
    with pytest.raises(ProviderError) as caught:
        await with_retries(lambda: provider.edit(edit_request(), RecordingSink()), attempts)
    assert "500" in str(caught.value) and "The server had an error." in str(caught.value)
    assert not caught.value.retryable
    assert len(fake.state.requests) == 1 and attempts.waits == []


async def test_x_should_retry_true_is_obeyed_before_the_status_rules(fake: Fake) -> None:
    fake.state.script(
        Status(
            400, "Please try again.", error_type="invalid_request_error", headers={"x-should-retry": "true"}
        )
    )
    attempts = Attempts()
    provider = fake.provider()
    result = await with_retries(lambda: provider.edit(edit_request(), RecordingSink()), attempts)
    assert decoded(result.image).size == (64, 48)
    assert [r.outcome for r in fake.state.requests] == ["Status", "ok"]
    assert len(attempts.waits) == 1


async def test_retry_after_ms_is_preferred_to_retry_after(fake: Fake) -> None:
    fake.state.script(rate_limited("30", retry_after_ms="1500"))
    provider = fake.provider()
    with pytest.raises(ProviderRateLimited) as caught:
        await provider.edit(edit_request(), RecordingSink())
    assert caught.value.retry_after == pytest.approx(1.5)
    # Through the retry loop: the wait follows the 1.5 s, not the 30 s.
    fake.state.script(rate_limited("30", retry_after_ms="1500"))
    attempts = Attempts()
    await with_retries(lambda: provider.edit(edit_request(), RecordingSink()), attempts)
    [wait] = attempts.waits
    assert 1.5 <= wait < 30


async def test_a_409_is_retried_like_the_sdk_does(fake: Fake) -> None:
    fake.state.script(conflict(headers={"Retry-After": "2"}))
    attempts = Attempts()
    provider = fake.provider(partial_images=2)
    result = await with_retries(lambda: provider.generate(generate_request(), RecordingSink()), attempts)
    assert decoded(result.image).size == (1024, 1024)
    assert [r.outcome for r in fake.state.requests] == ["Status", "ok"]
    [wait] = attempts.waits
    assert wait >= 2.0


class ToLoopback(httpx.AsyncBaseTransport):
    """Sends every request to the loopback fake instead of its own host, over a real socket: so a
    provider can run with OpenAI's own base URL (and say "OpenAI", not "OpenAI-compatible")."""

    def __init__(self, base_url: str) -> None:
        self._target = httpx.URL(base_url)
        self._transport = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._target.scheme, host=self._target.host, port=self._target.port
        )
        request.headers["host"] = request.url.netloc.decode()
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()


@pytest.mark.parametrize("official", [True, False], ids=["api.openai.com", "compatible-server"])
async def test_no_quota_left_fails_at_once_and_sends_the_user_to_billing(fake: Fake, official: bool) -> None:
    fake.state.script(insufficient_quota())
    attempts = Attempts()
    async with httpx.AsyncClient(transport=ToLoopback(fake.base_url), timeout=20.0) as client:
        if official:
            provider = OpenAIProvider(client=client, api_key=KEY, partial_images=0)
            assert provider.label.startswith("OpenAI ·")
        else:
            provider = fake.provider()
        with pytest.raises(ProviderError) as caught:
            await with_retries(lambda: provider.edit(edit_request(), RecordingSink()), attempts)
    message = str(caught.value)
    assert "no quota left" in message and "billing" in message
    assert "You exceeded your current quota" in message
    if official:
        assert message.startswith("Your OpenAI account has no quota left")
        assert "https://platform.openai.com/settings/organization/billing" in message
    assert "rate limited" not in message
    assert not caught.value.retryable
    assert not isinstance(caught.value, ProviderRateLimited)
    assert len(fake.state.requests) == 1 and attempts.waits == []
    assert_no_secret(caught.value, KEY)


async def test_a_source_of_exactly_50_mb_is_refused_before_sending(fake: Fake) -> None:
    # "less than 50MB" (CreateImageEditRequest.image): 50 MB itself is too large.
    png_signature = encoded(source_image())[:16]
    exactly = png_signature + b"\0" * (50 * 2**20 - len(png_signature))
    with pytest.raises(InvalidRequest, match="50 MB"):
        await fake.provider().edit(edit_request(image=exactly), RecordingSink())
    assert fake.state.requests == []


async def test_a_call_without_partial_images_may_stay_silent_as_long_as_the_sdk_allows(
    fake_server: tuple[FakeOpenAI, str],
) -> None:
    # Without partial images the whole drawing passes before the first byte: the client's read
    # timeout (0.3 s here, 300 s in the app) must not cut it short; the SDK waits 600 s.
    state, base_url = fake_server
    state.script(Hang(1.0), Hang(1.0))
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=0.3)) as client:
        silent = OpenAIProvider(client=client, api_key=KEY, base_url=base_url, partial_images=0)
        assert silent.read_timeout == 600.0
        result = await silent.edit(edit_request(), RecordingSink())
        assert decoded(result.image).size == (64, 48)
        # A stream sends an event per partial image, so there the client's read timeout stands.
        streamed = OpenAIProvider(client=client, api_key=KEY, base_url=base_url, partial_images=2)
        with pytest.raises(ProviderUnavailable, match="did not answer in time"):
            await streamed.edit(edit_request(), RecordingSink())
    assert [r.outcome for r in state.requests] == ["Hang", "Hang"]


async def test_gpt_image_2_generates_at_the_asked_width_x_height(fake: Fake) -> None:
    provider = fake.provider(model="gpt-image-2")
    result = await provider.generate(generate_request(size=(1600, 900)), RecordingSink())
    sent = fake.state.last
    assert sent.outcome == "ok"
    assert sent.json is not None and sent.json["size"] not in SIZES
    width, height = map(int, sent.json["size"].split("x"))
    assert width / height == pytest.approx(16 / 9, rel=0.02)
    assert decoded(result.image).size == (width, height)
    assert result.metadata["size"] == sent.json["size"]
    # What the dialog tells the user matches: the size asked for, not the nearest of three.
    assert "at the size asked for" in provider.describe(JobKind.GENERATE)
    assert "square, landscape or portrait" in fake.provider(model="gpt-image-1.5").describe(JobKind.GENERATE)


@pytest.mark.parametrize(
    "size",
    [(1600, 900), (1920, 1080), (1080, 1920), (512, 512), (100, 3000), (8000, 1000), (5000, 5000), (1, 1)],
)
def test_sizes_for_gpt_image_2_are_ones_it_takes_and_keep_the_aspect(size: tuple[int, int]) -> None:
    for model in ("gpt-image-2", "gpt-image-2-2026-04-21"):
        chosen = generation_size(size, model=model)
        assert free_size_problem(chosen) is None, chosen
    width, height = map(int, generation_size(size, model="gpt-image-2").split("x"))
    asked = min(max(size[0] / size[1], 1 / 3), 3)
    assert width / height == pytest.approx(asked, rel=0.05)
    # Models without free sizes keep to the three standard ones.
    assert generation_size(size, model="gpt-image-1.5") in SPEC_SIZES
