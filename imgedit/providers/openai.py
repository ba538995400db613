"""The OpenAI Images API provider (and any server that speaks the same wire format).

Owns ``OpenAIProvider``: edits go to ``/images/edits`` as multipart form data, generations to
``/images/generations`` as JSON, both streamed as server-sent events when partial images are
wanted, so each partial becomes a live preview and a progress milestone. It also owns the small
SSE reader those streams need and the ETA priors derived from OpenAI's token counts. Variations
ask for ``n`` images in one call (not dall-e-3, which takes only 1); such a call is not streamed
(``_streams`` says why) and its ``data`` gives the results in order.

HTTP outcomes are mapped to the error tree by ``imgedit.providers.http``'s table, adjusted here
(``_error_from_response``) to judge them as the official SDK does (``openai-python``
``_base_client._should_retry``): a 429 ``insufficient_quota`` (no credit left) fails at once
with a pointer to billing; then the server's ``x-should-retry`` decides; then 408 / 409 / 429 /
5xx are retried, waiting ``retry-after-ms`` if given, else ``Retry-After``. Inside a stream, an
event whose data carries ``error`` is an error whatever its event name (the SDK's
``_streaming.py``). The API key goes into the Authorization header and nowhere else: not into
messages, labels, logs or ``repr``. Must not import nicegui.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from imgedit import cpu
from imgedit.errors import (
    InvalidRequest,
    ProviderError,
    ProviderFailed,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from imgedit.imaging import media_type, open_image, sniff_format
from imgedit.models import JobKind, Quality
from imgedit.providers.base import (
    Capabilities,
    ProgressSink,
    ProviderRequest,
    ProviderResult,
    ServerHealth,
    fewer_results,
)
from imgedit.providers.http import (
    MAX_MESSAGE,
    decode_image,
    error_from_response,
    off_loop,
    parse_json,
    parse_retry_after,
    public_url,
    read_chunks,
    send,
    server_message,
)
from imgedit.providers.region import checked_mask
from imgedit.providers.sse import SseEvent, sse_events

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-image-1.5"
MAX_PARTIAL_IMAGES = 3  # the API accepts 0..3
MAX_VARIATIONS = 4
"""Results one request asks for at most (``n``; the API takes 1..10, the dialog offers 1..4)."""
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""OpenAI's per-image limit for GPT image models: an image must be *less* than this."""
DALL_E_2_MAX_BYTES = 4 * 1024 * 1024
"""dall-e-2's limit for the image and the mask (the spec's ``mask``: "less than 4MB")."""
SDK_READ_TIMEOUT = 600.0
"""The official SDK's DEFAULT_TIMEOUT: how long a call without partial images may stay silent
(the whole drawing happens before the first byte of the answer)."""
BILLING_URL = "https://platform.openai.com/settings/organization/billing"

# Output tokens per image, from OpenAI's image-generation pricing table for GPT image models
# (1024x1024: low 272, medium 1056, high 4160; the 1536-px sizes cost 1.5x). Drawing time grows
# with the tokens, so seconds ≈ fixed overhead + tokens x per-token time; the two constants are
# fitted by eye to observed gpt-image-1 latencies and only seed the ETA until real jobs are timed.
OUTPUT_TOKENS: dict[Quality, int] = {Quality.LOW: 272, Quality.MEDIUM: 1056, Quality.HIGH: 4160}
LARGE_SIZE_TOKEN_FACTOR = 1.5
SECONDS_OVERHEAD = 8.0
SECONDS_PER_TOKEN = 0.018
EDIT_EXTRA_SECONDS = 4.0  # uploading the source and the model reading it

# The generation sizes GPT image models offer, keyed by aspect ratio (width / height).
_SIZES_BY_ASPECT: tuple[tuple[float, str], ...] = (
    (1.0, "1024x1024"),
    (1.5, "1536x1024"),
    (2 / 3, "1024x1536"),
)

# gpt-image-2 draws any WIDTHxHEIGHT within these limits (the spec's ``size``: edges divisible by
# 16, aspect between 1:3 and 3:1, at most 3840x2160; the pixel floor is from OpenAI's image guide).
_FREE_STEP = 16
_FREE_MAX_EDGE = 3840
_FREE_MIN_PIXELS = 655_360
_FREE_MAX_PIXELS = 3840 * 2160
_FREE_MAX_ASPECT = 3.0

_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")  # gpt-image-2-2026-04-21 is gpt-image-2

# Error codes inside a stream that mean "this request will never work", as opposed to a hiccup.
_REJECTION_CODES = frozenset(
    {"moderation_blocked", "content_policy_violation", "invalid_request_error", "invalid_value"}
)

_UPLOAD_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})  # what GPT image models accept as input


def upload_limit(model: str) -> int:
    """Bytes an uploaded image or mask must stay *below* for ``model``."""
    return DALL_E_2_MAX_BYTES if _model_family(model) == "dall-e-2" else MAX_UPLOAD_BYTES


def _model_family(model: str) -> str:
    """The model without a dated snapshot suffix: ``gpt-image-2-2026-04-21`` → ``gpt-image-2``."""
    return _SNAPSHOT.sub("", model.strip().lower())


def most_results(model: str) -> int:
    """How many results one request to ``model`` may ask for: dall-e-3 takes only ``n=1`` (the
    spec's ``n``: "For dall-e-3, only n=1 is supported"); the others up to 10, of which we use 4."""
    return 1 if _model_family(model) == "dall-e-3" else MAX_VARIATIONS


def supports_input_fidelity(model: str) -> bool:
    """True for the models that take ``input_fidelity``: gpt-image-1 and gpt-image-1.5 (the spec's
    InputFidelity). Not gpt-image-1-mini, and not gpt-image-2, which answers 400
    ``invalid_input_fidelity_model`` (it always works at high fidelity)."""
    return _model_family(model) in ("gpt-image-1", "gpt-image-1.5")


def accepts_any_size(model: str) -> bool:
    """True for the models that draw any ``WIDTHxHEIGHT`` within limits: gpt-image-2."""
    return _model_family(model) == "gpt-image-2"


def generation_size(size: tuple[int, int] | None, model: str = DEFAULT_MODEL) -> str:
    """What to ask ``model`` for: ``auto`` when no size is asked; for a model that draws any size
    (gpt-image-2), the size nearest ``size`` that it accepts; else the standard size whose aspect
    ratio is nearest."""
    if size is None:
        return "auto"
    width, height = size
    if width < 1 or height < 1:
        raise InvalidRequest(f"The image size {width}x{height} is not possible.")
    if accepts_any_size(model):
        return _free_size(width, height)
    # Distance in log space, so 2:1 is as far from 1:1 as 1:2 is.
    aspect = math.log(width / height)
    return min(_SIZES_BY_ASPECT, key=lambda pair: abs(math.log(pair[0]) - aspect))[1]


def _free_size(width: int, height: int) -> str:
    """The accepted ``WIDTHxHEIGHT`` nearest in aspect, then in area, to ``width`` x ``height``."""
    aspect = min(max(width / height, 1 / _FREE_MAX_ASPECT), _FREE_MAX_ASPECT)
    pixels = min(max(width * height, _FREE_MIN_PIXELS), _FREE_MAX_PIXELS)
    ideal_w = math.sqrt(pixels * aspect)
    ideal_h = ideal_w / aspect
    shrink = min(1.0, _FREE_MAX_EDGE / max(ideal_w, ideal_h))
    ideal_w, ideal_h = ideal_w * shrink, ideal_h * shrink
    base_w, base_h = int(ideal_w // _FREE_STEP), int(ideal_h // _FREE_STEP)
    candidates = [
        (w * _FREE_STEP, h * _FREE_STEP)
        for w in range(max(1, base_w - 2), base_w + 4)
        for h in range(max(1, base_h - 2), base_h + 4)
    ]

    def fits(pair: tuple[int, int]) -> bool:
        w, h = pair
        return (
            max(w, h) <= _FREE_MAX_EDGE
            and _FREE_MIN_PIXELS <= w * h <= _FREE_MAX_PIXELS
            and 1 / _FREE_MAX_ASPECT <= w / h <= _FREE_MAX_ASPECT
        )

    def distance(pair: tuple[int, int]) -> tuple[float, float]:
        w, h = pair
        return abs(math.log(w / h / aspect)), abs(math.log(w * h / (ideal_w * ideal_h)))

    chosen_w, chosen_h = min(filter(fits, candidates), key=distance)
    return f"{chosen_w}x{chosen_h}"


def _upload_type(data: bytes) -> tuple[str, str] | None:
    """(file name, content type) for the formats the API accepts, sniffed from the bytes."""
    format = sniff_format(data)
    if format not in _UPLOAD_FORMATS:
        return None
    return f"image.{'jpg' if format == 'JPEG' else format.lower()}", media_type(format)


def _result_format(data: bytes) -> str:
    return sniff_format(data) or "PNG"


def _to_png(data: bytes) -> bytes:
    """Re-encode a source the API would refuse (GIF, BMP, ...) as PNG."""
    try:
        with open_image(data) as image:
            image.load()
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            return buffer.getvalue()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidRequest(f"The source image could not be read: {exc}") from exc


HEALTH_TIMEOUT = httpx.Timeout(5.0)
"""The status line's probe: a server slower than this to answer counts as down."""


class OpenAIProvider:
    """Edits and generates with OpenAI's GPT image models over HTTP.

    Usage: ``OpenAIProvider(client=http, api_key=key)``; the client's timeouts apply, except
    that a call without partial images may stay silent for ``read_timeout`` (the SDK's 600 s)
    or the client's read timeout, whichever is longer.
    """

    name = "openai"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        partial_images: int = 2,
        input_fidelity: str | None = "high",
        read_timeout: float = SDK_READ_TIMEOUT,
    ) -> None:
        if not 0 <= partial_images <= MAX_PARTIAL_IMAGES:
            raise ValueError(f"partial_images must be 0..{MAX_PARTIAL_IMAGES}, not {partial_images}")
        key = api_key.strip()
        # httpx would put a bad header value, key included, into its exception message.
        if any(not ("!" <= char <= "~") for char in key):
            raise ValueError("the OpenAI API key contains characters that cannot go into an HTTP header")
        self._client = client
        self._api_key = key
        self._base_url = base_url.rstrip("/")
        self.model = model
        self.partial_images = partial_images
        self.input_fidelity = input_fidelity
        self.read_timeout = read_timeout
        host = urlsplit(public_url(self._base_url)).netloc
        if host == urlsplit(DEFAULT_BASE_URL).netloc:
            self._who = "OpenAI"
            self.label = f"OpenAI · {model}"
        else:
            self._who = f"OpenAI-compatible server {host}"
            self.label = f"OpenAI-compatible · {host} · {model}"
        self.capabilities = Capabilities(
            edit=True,
            generate=True,
            stream_previews=partial_images > 0,
            real_progress=False,
            mask=True,
            variations=most_results(model),
        )

    def __repr__(self) -> str:
        return f"OpenAIProvider(base_url={public_url(self._base_url)!r}, model={self.model!r})"

    async def health(self) -> list[ServerHealth]:
        """Whether the server answers and this key may use the model: ``GET /models/{model}``,
        which costs no credit. Down with the reason (key refused, model unknown, no answer)."""
        headers = self._headers()
        headers["Accept"] = "application/json"
        request = self._client.build_request(
            "GET", f"{self._base_url}/models/{self.model}", headers=headers, timeout=HEALTH_TIMEOUT
        )
        try:
            await send(self._client, request, self._who, errors=self._error_from_response)
        except ProviderError as exc:
            return [ServerHealth(self.label, "down", str(exc))]
        return [ServerHealth(self.label, "up")]

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        seconds = SECONDS_OVERHEAD + OUTPUT_TOKENS[quality] * SECONDS_PER_TOKEN
        return seconds + EDIT_EXTRA_SECONDS if kind is JobKind.EDIT else seconds

    def describe(self, kind: JobKind) -> str:
        if kind is JobKind.EDIT:
            return (
                f"Describe the change in plain words (“make it a watercolour”, “add a red hat”); "
                f"{self.model} redraws the whole picture from it, keeping the composition."
            )
        if accepts_any_size(self.model):
            return (
                f"Describe the picture in plain words: subject, style, lighting; {self.model} draws it "
                "at the size asked for, rounded to what it can draw (edges in steps of 16 px, "
                "at most 3840 px, no wider than 3:1)."
            )
        return (
            f"Describe the picture in plain words: subject, style, lighting; {self.model} draws it "
            "square, landscape or portrait, whichever is nearest the size asked for."
        )

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        if request.image is None:
            raise InvalidRequest("An edit needs a source image.")
        self._check_prompt(request.prompt)
        self._check_count(request.count)
        image = request.image
        if request.mask is not None:
            # The API refuses a mask whose size differs from the image's (400): say it here, free.
            checked_mask(image, request.mask)
        upload = _upload_type(image)
        if upload is None:
            image = await cpu.run(_to_png, image)  # same pixels, same size: the mask still fits
            upload = ("image.png", "image/png")
        limit = upload_limit(self.model)
        if len(image) >= limit:
            raise InvalidRequest(
                f"The source image is {len(image) / 2**20:.1f} MB; {self._who} accepts images of less "
                f"than {limit // 2**20} MB."
            )
        files = {"image": (upload[0], image, upload[1])}
        if request.mask is not None:
            if len(request.mask) >= limit:
                raise InvalidRequest(
                    f"The selected area's mask is {len(request.mask) / 2**20:.1f} MB; {self._who} "
                    f"accepts masks of less than {limit // 2**20} MB."
                )
            # The kept form is the API's own: a PNG with alpha, transparent where the edit applies.
            files["mask"] = ("mask.png", request.mask, "image/png")
        form = {
            "prompt": request.prompt,
            "model": self.model,
            "quality": request.quality.value,
            "size": "auto",  # keeps the source's orientation
            "output_format": "png",
            "n": str(request.count),
        }
        if self.input_fidelity and supports_input_fidelity(self.model):
            form["input_fidelity"] = self.input_fidelity
        streaming = self._streams(request.count)
        if streaming:
            form |= {"stream": "true", "partial_images": str(self.partial_images)}
        http_request = self._client.build_request(
            "POST",
            f"{self._base_url}/images/edits",
            headers=self._headers(streaming),
            data=form,
            files=files,
        )
        return await self._run(http_request, sink, size="auto", count=request.count, streaming=streaming)

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        self._check_prompt(request.prompt)
        self._check_count(request.count)
        size = generation_size(request.size, self.model)
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            "quality": request.quality.value,
            "size": size,
            "output_format": "png",
            "n": request.count,
        }
        streaming = self._streams(request.count)
        if streaming:
            body |= {"stream": True, "partial_images": self.partial_images}
        http_request = self._client.build_request(
            "POST", f"{self._base_url}/images/generations", headers=self._headers(streaming), json=body
        )
        return await self._run(http_request, sink, size=size, count=request.count, streaming=streaming)

    # -- one call ----------------------------------------------------------------------------

    def _streams(self, count: int) -> bool:
        """Whether a request for ``count`` results is streamed. Only a single result is: the spec's
        stream events carry ``partial_image_index`` (which preview of the image) but nothing that
        says which of n images a partial or a ``completed`` event belongs to, so with n > 1 the
        answer is the plain JSON body, whose ``data`` lists every image in order."""
        return self.partial_images > 0 and count == 1

    def _check_count(self, count: int) -> None:
        most = self.capabilities.variations
        if not 1 <= count <= most:
            raise InvalidRequest(
                f"{self._who} with {self.model} can make 1 to {most} images at once, not {count}."
            )

    def _headers(self, streaming: bool | None = None) -> dict[str, str]:
        streams = bool(self.partial_images) if streaming is None else streaming
        headers = {"Accept": "text/event-stream" if streams else "application/json"}
        if self._api_key:  # an OpenAI-compatible server on the LAN may need none
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _timeout(self, streaming: bool) -> dict[str, float | None]:
        """The request's timeouts: the client's, with the SDK's long read for a silent call."""
        timeout = self._client.timeout.as_dict()
        read = timeout.get("read")
        if not streaming and read is not None:
            timeout["read"] = max(read, self.read_timeout)
        return timeout

    def _check_prompt(self, prompt: str) -> None:
        if not prompt.strip():
            raise InvalidRequest(f"{self._who} needs a prompt that says what to draw.")

    async def _run(
        self, request: httpx.Request, sink: ProgressSink, *, size: str, count: int = 1, streaming: bool
    ) -> ProviderResult:
        drawing = f"{self._who} is drawing"
        said_drawing = False

        async def trace(event_name: str, info: dict[str, Any]) -> None:
            # The upload is done: from here on the wait is the model's, not the network's.
            nonlocal said_drawing
            if event_name.endswith("send_request_body.complete") and not said_drawing:
                said_drawing = True
                sink.progress(0.0, drawing, exact=False)

        request.extensions = {**request.extensions, "trace": trace, "timeout": self._timeout(streaming)}
        sink.progress(0.0, f"Sending to {self._who}", exact=False)
        # Always streamed, so a server that ignores ``stream`` and answers JSON still works.
        response = await send(self._client, request, self._who, stream=True, errors=self._error_from_response)
        try:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                if not said_drawing:
                    sink.progress(0.0, drawing, exact=False)
                image, details = await self._read_stream(response, sink)
                images = [image]
            else:
                what = "the image" if count == 1 else f"{count} images"
                sink.progress(0.0, f"Receiving {what} from {self._who}", exact=False)
                images, details = await self._read_json(response, count)
        finally:
            await response.aclose()
        if len(images) < count:
            raise ProviderFailed(fewer_results(self._who, len(images), count))
        metadata = {"model": self.model, "size": str(details.get("size") or size)}
        usage = details.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
            metadata["output_tokens"] = str(usage["output_tokens"])
        first, *more = images[:count]
        return ProviderResult(image=first, format=_result_format(first), metadata=metadata, more=tuple(more))

    async def _read_json(self, response: httpx.Response, count: int) -> tuple[list[bytes], dict[str, Any]]:
        chunks = await read_chunks(response, self._who)
        return await asyncio.to_thread(self._json_answer, chunks, count)

    def _json_answer(self, chunks: list[bytes], count: int) -> tuple[list[bytes], dict[str, Any]]:
        """Parsing and decoding large images: run off the loop. The first ``count`` of ``data``, in
        order (fewer if fewer came; none of the extras a server may add)."""
        body = parse_json(b"".join(chunks), self._who)
        items = body.get("data") if isinstance(body, dict) else None
        items = items[:count] if isinstance(items, list) and items else [None]
        images = [
            decode_image(item.get("b64_json") if isinstance(item, dict) else None, self._who)
            for item in items
        ]
        return images, body if isinstance(body, dict) else {}

    async def _read_stream(
        self, response: httpx.Response, sink: ProgressSink
    ) -> tuple[bytes, dict[str, Any]]:
        async for event in sse_events(response, self._who):
            done = await self._handle(event, sink)
            if done is not None:
                return done
        raise ProviderFailed(f"{self._who} stopped sending: the stream ended before the image was complete.")

    async def _handle(self, event: SseEvent, sink: ProgressSink) -> tuple[bytes, dict[str, Any]] | None:
        """Act on one event; return the image and the event's fields once it is complete.

        Matched on the suffix: edits send ``image_edit.*``, generations ``image_generation.*``.
        An event carrying a large image is parsed and decoded in a worker thread.
        """
        if len(event.data) < 16 and event.data.strip() == "[DONE]":
            return None
        payload, image = await off_loop(len(event.data), self._parse_event, event)
        kind = str(payload.get("type") or event.event)
        # As the SDK: data carrying ``error`` is an error whatever the event's name, even with
        # none (a bare ``data:`` line is a ``message`` event).
        if payload.get("error") or kind == "error" or event.event == "error":
            raise self._stream_error(payload)
        if kind.endswith(".partial_image"):
            if image is not None:
                self._partial(payload, image, sink)
            return None
        if kind.endswith(".completed"):
            if isinstance(image, ProviderFailed):
                raise image
            return image, payload
        return None  # event types added later are not ours to fail on

    def _parse_event(self, event: SseEvent) -> tuple[dict[str, Any], Any]:
        """The event's fields and its image: bytes, a ProviderFailed saying why not, or None."""
        try:
            payload = parse_json(event.data, self._who)
        except ProviderFailed as exc:
            raise ProviderFailed(f"{self._who} sent a stream event that is not valid JSON.") from exc
        if not isinstance(payload, dict):
            raise ProviderFailed(f"{self._who} sent a stream event of an unexpected shape.")
        kind = str(payload.get("type") or event.event)
        if not kind.endswith((".partial_image", ".completed")):
            return payload, None
        try:
            return payload, decode_image(payload.get("b64_json"), self._who)
        except ProviderFailed as exc:
            return payload, exc

    def _partial(self, payload: dict[str, Any], image: bytes | ProviderFailed, sink: ProgressSink) -> None:
        if isinstance(image, ProviderFailed):
            return  # a broken preview is no reason to lose the final image
        sink.preview(image)
        total = max(self.partial_images, 1)
        raw_index = payload.get("partial_image_index")
        index = raw_index if isinstance(raw_index, int) and raw_index >= 0 else 0
        shown = min(index + 1, total)
        sink.progress(shown / (total + 1), f"Partial image {shown} of {total}", exact=False)

    def _stream_error(self, payload: dict[str, Any]) -> ProviderError:
        """The error tree for an ``error`` event: ``{"error": {"message", "code", ...}}`` or flat."""
        nested = payload.get("error")
        error = nested if isinstance(nested, dict) else payload
        message = str(error.get("message") or "no details given").strip()
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
        code = str(error.get("code") or "")
        error_type = str(error.get("type") or "")
        result: ProviderError
        if code == "insufficient_quota":
            result = self._no_quota(message)
        elif code == "moderation_blocked":
            result = ProviderRejected(f"{self._who}'s safety system blocked this image: {message}")
        elif code == "rate_limit_exceeded":
            result = ProviderRateLimited(f"{self._who} is busy or rate limited: {message}")
        elif code in _REJECTION_CODES or error_type == "invalid_request_error":
            result = ProviderRejected(f"{self._who} refused the request: {message}")
        else:
            result = ProviderFailed(f"{self._who} failed while drawing: {message}")
        # Inside a 200 stream: no HTTP status of its own, but the server's code is known.
        result.provider, result.code = self.name, code or error_type or None
        return result

    def _error_from_response(self, response: httpx.Response, label: str) -> ProviderError:
        """A failed answer judged as the official SDK judges it (``_base_client._should_retry``).

        In order: a 429 ``insufficient_quota`` is no rate limit but an empty account, so it fails
        at once; then the server's ``x-should-retry`` (``true`` / ``false``) decides; then the
        status (408, 409, 429 and 5xx are retried). The wait is ``retry-after-ms`` if given, else
        ``Retry-After``.
        """
        status = response.status_code
        message, code = server_message(response)
        if code == "insufficient_quota" and status not in (401, 403):
            quota = self._no_quota(message)
            quota.provider, quota.status, quota.code = self.name, status, code
            return quota
        if status == 409:  # the SDK retries it: "lock timeouts"
            error: ProviderError = ProviderUnavailable(f"{label} reported a conflict (409): {message}")
        else:
            error = error_from_response(response, label)
        should_retry = response.headers.get("x-should-retry")
        if should_retry in ("true", "false"):
            error.retryable = should_retry == "true"
        if error.retryable:
            error.retry_after = retry_after(response.headers)
        error.provider, error.status, error.code = self.name, status, code
        return error

    def _no_quota(self, message: str) -> ProviderRejected:
        if self._who == "OpenAI":
            return ProviderRejected(
                f"Your OpenAI account has no quota left: add credit or raise the limit at {BILLING_URL}, "
                f"then try again. (OpenAI said: {message})"
            )
        return ProviderRejected(
            f"{self._who} says the account has no quota left: check its billing, then try again. ({message})"
        )


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, as the SDK reads them: ``retry-after-ms`` (OpenAI's, finer) if it is a
    number, else ``Retry-After`` (seconds or an HTTP date)."""
    try:
        seconds = float(headers.get("retry-after-ms", "")) / 1000
    except ValueError:
        return parse_retry_after(headers.get("retry-after"))
    return max(0.0, seconds) if math.isfinite(seconds) else None
