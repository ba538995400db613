"""The OpenAI provider against a fake of the Images API served on a real loopback socket.

The production ``OpenAIProvider`` runs unchanged with a real ``httpx.AsyncClient``; only its
base URL points at ``tests.fake_openai``, which parses the multipart / JSON bodies and answers
in the real wire format (JSON bodies, SSE streams, OpenAI error shapes).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

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
from imgedit.providers.openai import OpenAIProvider, SseEvent, SseParser, generation_size
from tests.fake_openai import (
    CutStream,
    FakeOpenAI,
    Malformed,
    Status,
    StreamError,
    make_app,
    moderation,
    prompt_colour,
    rate_limited,
)
from tests.fakes import eventually
from tests.loopback import free_port, serve

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
    [("gpt-image-1.5", "high"), ("gpt-image-1", "high"), ("gpt-image-1-mini", None)],
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
