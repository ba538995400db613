"""A fake OpenAI Images API that speaks the real wire format, for ``tests.loopback.serve``.

It answers ``POST /v1/images/edits`` (multipart, parsed with ``request.form()``) and
``POST /v1/images/generations`` (JSON) the way the real API does: OpenAI-shaped 401/400 errors,
a JSON body ``{"created", "data": [{"b64_json"}], "usage"}``, or with ``stream=true`` an SSE
stream of ``image_edit.partial_image`` / ``image_generation.partial_image`` events and a final
``*.completed`` event. The images are real: an edit returns the source inverted at its own
size, its partial images are progressively less blurred versions of that; a generation is a
gradient whose colour depends on the prompt.

Tests configure and inspect a ``FakeOpenAI``; it is shared with the server thread, so it only
holds thread-safe things (a lock-guarded list and queue, ``threading.Event``s).

Usage::

    state = FakeOpenAI(api_key="sk-test", failures=[Status(503, headers={"Retry-After": "1"})])
    with serve(make_app(state)) as base:
        provider = OpenAIProvider(client=client, api_key="sk-test", base_url=base + "/v1")
        ...
    state.requests[0].fields["quality"]

Scripted failures (``state.failures``, served one per accepted request, in order, before the
fake succeeds again): ``Status`` (an error status with an OpenAI error body and headers),
``moderation()`` (the 400 ``moderation_blocked`` answer), ``rate_limited()`` (429, with
``Retry-After`` and optionally ``retry-after-ms``), ``insufficient_quota()`` (the 429 of an
account out of credit), ``conflict()`` (409), ``Malformed`` (a 200 whose body is not what the
API sends), ``CutStream`` (the stream stops after some partial images, cleanly or by dropping
the connection) and ``StreamError`` (an ``error`` event inside the stream; ``data_only=True``
sends it as a bare ``data:`` line carrying ``{"error": {...}}``, with no ``event:`` name and no
``type``). Any ``Status`` may carry ``x-should-retry`` in its headers.

As the OpenAPI spec (openai/openai-openapi) says: the ``size`` in a response or an event is one
of the standard sizes (for an edit with ``size=auto``, the one nearest the source's aspect; the
fake's image itself stays at the source's size to keep tests fast), or the ``WIDTHxHEIGHT`` asked
of a model that accepts any (``gpt-image-2``); ``image`` may also come as ``image[]`` parts (the
official SDK's name for a list of images, up to 16); ``input_fidelity`` is refused, as the real
API refuses it, for models that do not take it (``gpt-image-2``, ``gpt-image-1-mini``, ...).

A ``mask`` part (a region edit) is checked as the API checks it: a PNG (else 400
``invalid_mask_image_format``), with an alpha channel (else the 400 "Invalid mask image format -
mask image missing alpha channel"), the size of the first image (else a 400
``invalid_request_error``), less than 4 MB for dall-e-2 and 50 MB otherwise. The edit then changes
only the mask's fully transparent pixels (inverted there, the source everywhere else), so a test
sees where the mask took effect; the mask's bytes are kept in ``RecordedRequest.mask``.

``Hang(seconds)`` answers only after ``seconds`` (a server past the client's read timeout).

``n`` (results per request) as the spec says: an integer 1..10 (else 400 ``integer_below_min_value``
/ ``integer_above_max_value`` on ``n``), and only 1 for dall-e-3. Result i is the first result with
its red channel shifted by 40 × i (inside the mask only, for a region edit), so tests tell them
apart; ``data`` lists them in order. The spec gives stream events no field saying which of n
images they belong to, so the fake refuses ``stream`` with n > 1 rather than invent one.
``Short(returned)`` answers with only ``returned`` images, whatever ``n`` asked.

``FakeOpenAI(echo_key=True)``: every request is refused with the 401 an OpenAI-compatible server
sends for a wrong key, echoing the key it received *unmasked*:
``{"error": {"message": "Incorrect API key provided: <key>. You can find your API key at
https://platform.openai.com/account/api-keys.", "type": "invalid_request_error", "param": null,
"code": "invalid_api_key"}}``. For tests that a key coming back from a provider is redacted.

``state.gate`` (open by default): a stream waits on it after its first partial image, so a test
can look at the preview before the image completes. ``state.partial_sent`` is set when a first
partial image has been written; ``state.disconnected`` when a client went away mid-stream.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import io
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageOps, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

QUALITIES = ("low", "medium", "high", "auto")
SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")
STANDARD_SIZES = {1.0: "1024x1024", 1.5: "1536x1024", 2 / 3: "1024x1536"}
"""The sizes every GPT image model draws, by aspect ratio: what a response says for ``auto``."""
MAX_IMAGES = 16
# gpt-image-2 takes any WIDTHxHEIGHT within these limits (the spec's ``size`` description: edges
# divisible by 16, aspect between 1:3 and 3:1, at most 3840x2160; the pixel floor is the one
# OpenAI's image guide gives).
FREE_SIZE_STEP = 16
FREE_SIZE_MAX_EDGE = 3840
FREE_SIZE_MIN_PIXELS = 655_360
FREE_SIZE_MAX_PIXELS = 3840 * 2160
MASK_LIMIT = 50 * 1024 * 1024
DALL_E_2_LIMIT = 4 * 1024 * 1024
OUTPUT_FORMATS = ("png", "jpeg", "webp")
UPLOAD_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
# Output tokens per square image, as in OpenAI's pricing table; the 1536-px sizes cost 1.5x.
OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
EDIT_FIELDS = frozenset(
    {
        "image",
        "image[]",  # the SDK's multipart name for each of several images
        "prompt",
        "model",
        "quality",
        "size",
        "output_format",
        "output_compression",
        "n",
        "input_fidelity",
        "stream",
        "partial_images",
        "background",
        "mask",
        "user",
        "response_format",
    }
)
GENERATION_FIELDS = (EDIT_FIELDS - {"image", "image[]", "mask", "input_fidelity"}) | {"moderation", "style"}


def takes_input_fidelity(model: str) -> bool:
    """gpt-image-1 and gpt-image-1.5 (and their dated snapshots); not minis, not gpt-image-2."""
    base = model.rsplit("-", 3)[0] if _dated(model) else model
    return base in ("gpt-image-1", "gpt-image-1.5")


def takes_any_size(model: str) -> bool:
    """gpt-image-2 and its snapshots draw any WIDTHxHEIGHT within limits."""
    return model == "gpt-image-2" or (_dated(model) and model.rsplit("-", 3)[0] == "gpt-image-2")


def _dated(model: str) -> bool:
    parts = model.rsplit("-", 3)
    return len(parts) == 4 and all(p.isdigit() for p in parts[1:]) and len(parts[1]) == 4


def free_size_problem(size: str) -> str | None:
    """Why gpt-image-2 would refuse ``size`` (``WIDTHxHEIGHT``), or None if it takes it."""
    width_text, x, height_text = size.partition("x")
    if not (x and width_text.isdigit() and height_text.isdigit()):
        return f"Invalid size '{size}'. Expected 'auto' or WIDTHxHEIGHT, for example '1536x864'."
    width, height = int(width_text), int(height_text)
    if width % FREE_SIZE_STEP or height % FREE_SIZE_STEP:
        return f"Invalid size '{size}': width and height must both be divisible by {FREE_SIZE_STEP}."
    if height == 0 or not 1 / 3 <= width / height <= 3:
        return f"Invalid size '{size}': the aspect ratio must be between 1:3 and 3:1."
    if max(width, height) > FREE_SIZE_MAX_EDGE:
        return f"Invalid size '{size}': the longest edge may be at most {FREE_SIZE_MAX_EDGE} pixels."
    if not FREE_SIZE_MIN_PIXELS <= width * height <= FREE_SIZE_MAX_PIXELS:
        return (
            f"Invalid size '{size}': the image must have between {FREE_SIZE_MIN_PIXELS} and "
            f"{FREE_SIZE_MAX_PIXELS} pixels."
        )
    return None


# -- scripted failures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """Answer with ``code`` and an OpenAI error body, plus ``headers`` (e.g. Retry-After)."""

    code: int
    message: str = "The server had an error while processing your request."
    error_code: str | None = None
    error_type: str = "server_error"
    headers: Mapping[str, str] = field(default_factory=dict)


def moderation(
    message: str = "Your request was rejected by the safety system. safety_violations=[violence].",
) -> Status:
    """The 400 the API sends when its safety system blocks a prompt or an image."""
    return Status(400, message, error_code="moderation_blocked", error_type="image_generation_user_error")


def rate_limited(retry_after: str = "1", *, retry_after_ms: str | None = None) -> Status:
    """The 429 of a rate limit; ``retry_after_ms`` adds OpenAI's finer ``retry-after-ms`` header."""
    headers = {"Retry-After": retry_after}
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    return Status(
        429,
        "Rate limit reached for gpt-image-1.5 on images per minute. Please try again in 1s.",
        error_code="rate_limit_exceeded",
        error_type="requests",
        headers=headers,
    )


def insufficient_quota() -> Status:
    """The 429 of an account with no credit left: same status as a rate limit, other code."""
    return Status(
        429,
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        error_code="insufficient_quota",
        error_type="insufficient_quota",
    )


def conflict(headers: Mapping[str, str] | None = None) -> Status:
    """A 409, which the official SDK retries (its ``_should_retry``: "Retry on lock timeouts").

    The body's words are the fake's own; only the status and its meaning come from the SDK.
    """
    return Status(
        409,
        "Another request is being processed for this resource. Please try again.",
        error_type="conflict",
        headers=headers or {},
    )


@dataclass(frozen=True)
class Malformed:
    """A 200 whose body is broken: by default JSON cut off in the middle."""

    body: str = '{"created": 1713833628, "data": [{"b64_json": "iVBOR'
    content_type: str = "application/json"


@dataclass(frozen=True)
class CutStream:
    """Stop after ``after_partials`` partial images, with no ``completed`` event.

    ``abrupt``: drop the connection mid-response instead of ending the stream properly.
    For a request that did not ask to stream, the JSON body is cut off instead.
    """

    after_partials: int = 1
    abrupt: bool = False


@dataclass(frozen=True)
class StreamError:
    """An ``error`` event after ``after_partials`` partial images, then the stream ends.

    ``data_only``: no ``event:`` line and no ``type`` member, only ``data: {"error": {...}}``,
    which an SSE reader sees as a ``message`` event (the official SDK raises it all the same).
    """

    after_partials: int = 0
    code: str | None = "moderation_blocked"
    message: str = "Your request was rejected by the safety system."
    data_only: bool = False


@dataclass(frozen=True)
class Short:
    """Answer (successfully) with only ``returned`` images, whatever ``n`` asked for."""

    returned: int = 1


@dataclass(frozen=True)
class Hang:
    """Answer (successfully) only after ``seconds``: longer than the client's read timeout."""

    seconds: float = 1.0


Failure = Status | Malformed | CutStream | StreamError | Hang | Short


# -- the state tests configure and inspect ------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A file part as it arrived."""

    field: str
    filename: str | None
    content_type: str | None
    format: str | None
    """Pillow's name for the decoded format, ``None`` if it did not decode."""
    size: tuple[int, int] | None


@dataclass
class RecordedRequest:
    """One request to an image endpoint, recorded before it was judged."""

    path: str
    headers: dict[str, str]
    """Lower-case names."""
    fields: dict[str, str] = field(default_factory=dict)
    """Multipart text fields (edits)."""
    json: dict[str, Any] | None = None
    """The JSON body (generations)."""
    uploads: list[Upload] = field(default_factory=list)
    mask: bytes | None = None
    """The ``mask`` part's bytes, as they arrived (a region edit)."""
    outcome: str = "pending"
    """``ok``, ``auth``, ``invalid: <message>`` or the scripted failure's class name."""

    def param(self, name: str) -> Any:
        """A parameter however it was sent: a form field or a JSON member."""
        if self.json is not None:
            return self.json.get(name)
        return self.fields.get(name)

    def has(self, name: str) -> bool:
        return name in (self.json if self.json is not None else self.fields)


@dataclass
class FakeOpenAI:
    """What the fake accepts and does, and what it saw. Shared with the server thread."""

    api_key: str | None = "sk-test-fake-openai-key"
    """The only key accepted; ``None`` accepts any request, with or without a key."""
    failures: Sequence[Failure] = ()
    """Served in order, one per valid request, before the fake succeeds."""
    partial_delay: float = 0.0
    """Seconds of pretend drawing before each partial image."""
    gate: threading.Event = field(default_factory=threading.Event)
    """A stream waits here after its first partial image. Set (open) at construction."""
    gate_timeout: float = 30.0
    """A forgotten gate lets the stream go on after this long, so the server can shut down."""
    sse_newline: str = "\n"
    sse_comments: bool = False
    """Interleave ``: keep-alive`` comment lines, as proxies do."""
    sse_multiline: bool = False
    """Spread each event's JSON over several ``data:`` lines (legal SSE; the API sends one)."""
    echo_key: bool = False
    """Refuse every request with a 401 that repeats the key it received, unmasked."""
    partial_sent: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _queue: collections.deque[Failure] = field(default_factory=collections.deque, repr=False)
    _requests: list[RecordedRequest] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.gate.set()
        self._queue.extend(self.failures)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def last(self) -> RecordedRequest:
        with self._lock:
            return self._requests[-1]

    def script(self, *failures: Failure) -> None:
        """Queue more failures to serve before succeeding."""
        with self._lock:
            self._queue.extend(failures)

    def _record(self, recorded: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(recorded)

    def _next_failure(self) -> Failure | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None


# -- wire helpers ---------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.param, self.code, self.error_type = param, code, error_type


def error_body(message: str, error_type: str, param: str | None = None, code: str | None = None) -> Any:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _mask(key: str) -> str:
    # The real API echoes a masked key in its 401 message; never the key itself.
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "***"


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def prompt_colour(prompt: str) -> tuple[int, int, int]:
    """The colour a generation for ``prompt`` is drawn in (tests can predict it)."""
    digest = hashlib.sha256(prompt.encode()).digest()
    return digest[0], digest[1], digest[2]


def generated_image(prompt: str, size: tuple[int, int]) -> Image.Image:
    """A left-to-right gradient from the prompt's colour to black, with a white disc."""
    width, height = size
    colour = prompt_colour(prompt)
    ramp = Image.linear_gradient("L").rotate(-90).resize((width, height))  # 255 at the left edge
    image = Image.composite(Image.new("RGB", size, colour), Image.new("RGB", size, (0, 0, 0)), ramp)
    radius = min(width, height) // 6
    ImageDraw.Draw(image).ellipse(
        (width // 2 - radius, height // 2 - radius, width // 2 + radius, height // 2 + radius), fill="white"
    )
    return image


def variation(image: Image.Image, index: int) -> Image.Image:
    """Result ``index`` of a request for several: the first with its red channel shifted by
    40 × ``index`` (the first itself for index 0)."""
    if index == 0:
        return image
    red, green, blue = image.convert("RGB").split()
    return Image.merge("RGB", (red.point(lambda v: (v + 40 * index) % 256), green, blue))


def _partials(final: Image.Image, count: int) -> list[bytes]:
    """``count`` previews, the first the blurriest, converging on ``final``."""
    longest = max(final.size)
    return [
        _png(final.filter(ImageFilter.GaussianBlur(longest / 12 * (count - i) / count))) for i in range(count)
    ]


def _output_tokens(quality: str, size: str) -> int:
    tokens = OUTPUT_TOKENS.get(quality, OUTPUT_TOKENS["medium"])
    return int(tokens * 1.5) if size in ("1536x1024", "1024x1536") else tokens


def _size_tuple(size: str) -> tuple[int, int]:
    width, _, height = (size if size != "auto" else "1024x1024").partition("x")
    return int(width), int(height)


class _EventStream(StreamingResponse):
    """A streamed response whose chunks may include ``None``: drop the connection right there."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes | None],
        *,
        media_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # StreamingResponse's own iterator stays empty; it still listens for the client leaving.
        super().__init__([], media_type=media_type, headers=headers)
        self.chunks = chunks

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.chunks:
            if chunk is None:
                return  # the response stays incomplete, so uvicorn closes the connection
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


# -- the endpoints --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """A validated request: what to draw and how to answer."""

    prefix: str  # image_edit | image_generation
    finals: list[Image.Image]
    """Every result asked for (``n``), in order."""
    quality: str
    size: str
    output_format: str
    stream: bool
    partial_images: int
    input_tokens: int

    @property
    def final(self) -> Image.Image:
        return self.finals[0]


MAX_N = 10
"""The spec's ``n``: the number of images to generate, 1 to 10."""


def _check_n(params: Mapping[str, Any], model: str, *, multipart: bool) -> int:
    raw = params.get("n", "1" if multipart else 1)
    if multipart:
        n = int(raw) if isinstance(raw, str) and raw.strip().lstrip("-").isdigit() else None
    else:
        n = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if n is None:
        raise _Invalid(
            f"Invalid type for 'n': expected an integer, but got {raw!r} instead.", "n", "invalid_type"
        )
    most = 1 if model == "dall-e-3" or model.startswith("dall-e-3-") else MAX_N
    if n < 1:
        raise _Invalid(
            f"Invalid 'n': integer below minimum value. Expected a value >= 1, but got {n} instead.",
            "n",
            "integer_below_min_value",
        )
    if n > most:
        raise _Invalid(
            f"Invalid 'n': integer above maximum value. Expected a value <= {most}, but got {n} instead.",
            "n",
            "integer_above_max_value",
        )
    return n


def _check_common(params: Mapping[str, Any], *, multipart: bool) -> tuple[str, str, str, str, bool, int, int]:
    prompt = params.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _Invalid("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise _Invalid("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    quality = params.get("quality", "auto")
    if quality not in QUALITIES:
        raise _Invalid(
            f"Invalid value: '{quality}'. Supported values are: 'low', 'medium', 'high', and 'auto'.",
            "quality",
            "invalid_value",
        )
    size = params.get("size", "auto")
    if size not in SIZES:
        problem = free_size_problem(size) if isinstance(size, str) and takes_any_size(model) else None
        if problem is not None:
            raise _Invalid(problem, "size", "invalid_value")
        if not takes_any_size(model):
            raise _Invalid(
                f"Invalid value: '{size}'. Supported values are: {', '.join(repr(s) for s in SIZES)}.",
                "size",
                "invalid_value",
            )
    output_format = params.get("output_format", "png")
    if output_format not in OUTPUT_FORMATS:
        raise _Invalid(f"Invalid value: '{output_format}'.", "output_format", "invalid_value")
    n = _check_n(params, model, multipart=multipart)
    stream = params.get("stream", "false" if multipart else False)
    if multipart:
        if stream not in ("true", "false"):
            raise _Invalid(f"Invalid value for 'stream': {stream!r}.", "stream")
        streaming = stream == "true"
    else:
        if not isinstance(stream, bool):
            raise _Invalid(f"Invalid type for 'stream': expected a boolean, got {stream!r}.", "stream")
        streaming = stream
    partial = params.get("partial_images", "0" if multipart else 0)
    try:
        partial_images = int(partial) if multipart else partial
    except ValueError:
        partial_images = -1
    if (
        not isinstance(partial_images, int)
        or isinstance(partial_images, bool)
        or not 0 <= partial_images <= 3
    ):
        raise _Invalid(f"Invalid value for 'partial_images': {partial!r}; expected 0 to 3.", "partial_images")
    if partial_images and not streaming:
        raise _Invalid("'partial_images' is only supported with 'stream': true.", "partial_images")
    if streaming and n > 1:
        raise _Invalid(f"This fake does not stream {n} images: the spec's events name no image.", "stream")
    return prompt, model, quality, size, streaming, partial_images, n


async def _edit_job(request: Request, recorded: RecordedRequest) -> _Job:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise _Invalid("Edits take multipart/form-data.")
    images: list[tuple[Upload, Image.Image | None]] = []
    masks: list[tuple[Upload, Image.Image | None]] = []
    async with request.form() as form:  # closes the spooled upload files
        for name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                recorded.fields[name] = value
                continue
            data = await value.read()
            decoded: Image.Image | None
            try:
                decoded = Image.open(io.BytesIO(data))
                decoded.load()
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                decoded = None
            upload = Upload(
                field=name,
                filename=value.filename,
                content_type=value.content_type,
                format=decoded.format if decoded else None,
                size=decoded.size if decoded else None,
            )
            recorded.uploads.append(upload)
            if name in ("image", "image[]"):
                images.append((upload, decoded))
            elif name == "mask":
                recorded.mask = data
                masks.append((upload, decoded))
    unknown = sorted(({*recorded.fields, *(u.field for u in recorded.uploads)}) - EDIT_FIELDS)
    if unknown:
        raise _Invalid(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    if not images:
        raise _Invalid("Missing required parameter: 'image'.", "image", "missing_required_parameter")
    if len(images) > MAX_IMAGES:
        raise _Invalid(f"Too many images: at most {MAX_IMAGES} may be given.", "image")
    for number, (upload, decoded) in enumerate(images, start=1):
        if upload.content_type not in UPLOAD_TYPES:
            raise _Invalid(
                f"Invalid file '{upload.field}': unsupported mimetype ('{upload.content_type}'). Supported "
                "file formats are 'image/jpeg', 'image/png', and 'image/webp'.",
                "image",
                "unsupported_file",
            )
        if decoded is None or decoded.format != UPLOAD_TYPES[upload.content_type]:
            raise _Invalid(
                f"Invalid image file or mode for image {number}, please check your image file.", "image"
            )
    source = images[0][1]
    assert source is not None  # checked above
    prompt, model, quality, size, streaming, partial_images, n = _check_common(
        recorded.fields, multipart=True
    )
    area = _mask_area(masks, source, model, len(recorded.mask or b""))
    fidelity = recorded.fields.get("input_fidelity")
    if fidelity is not None:
        if not takes_input_fidelity(model):
            # The real answer, e.g. for gpt-image-2 (seen in public bug reports of 2026-04/05).
            raise _Invalid(
                f"The model '{model}' does not support the 'input_fidelity' parameter.",
                "input_fidelity",
                "invalid_input_fidelity_model",
                "image_generation_user_error",
            )
        if fidelity not in ("high", "low"):
            raise _Invalid(f"Invalid value: '{fidelity}'.", "input_fidelity", "invalid_value")
    finals = []
    for index in range(n):
        final = variation(ImageOps.invert(source.convert("RGB")), index)
        if area is not None:
            final = Image.composite(final, source.convert("RGB"), area)
        if size != "auto":
            final = final.resize(_size_tuple(size))
        finals.append(final)
    return _Job(
        "image_edit",
        finals,
        quality,
        size,
        recorded.fields.get("output_format", "png"),
        streaming,
        partial_images,
        input_tokens=len(prompt.split()) + 194,
    )


def _mask_area(
    masks: list[tuple[Upload, Image.Image | None]], source: Image.Image, model: str, length: int
) -> Image.Image | None:
    """The area a ``mask`` part lets the edit change ('L', 255 where fully transparent), after
    the API's checks; None without a mask."""
    if not masks:
        return None
    if len(masks) > 1:
        raise _Invalid("Only one mask may be given.", "mask")
    upload, decoded = masks[0]
    limit = DALL_E_2_LIMIT if model.startswith("dall-e-2") else MASK_LIMIT
    if length >= limit:
        raise _Invalid(
            f"Invalid mask image: the file must be less than {limit // 2**20} MB.",
            "mask",
            "image_too_large",
        )
    if upload.content_type != "image/png" or decoded is None or decoded.format != "PNG":
        raise _Invalid(
            "Invalid mask image format - mask must be a PNG image.",
            "mask",
            "invalid_mask_image_format",
            "image_generation_user_error",
        )
    if "A" not in decoded.getbands() and "transparency" not in decoded.info:
        # The real message (seen in public reports of 2025-07), with its type and code.
        raise _Invalid(
            "Invalid mask image format - mask image missing alpha channel",
            "mask",
            "invalid_mask_image_format",
            "image_generation_user_error",
        )
    if decoded.size != source.size:
        raise _Invalid(
            f"Invalid mask image: the mask is {decoded.width}x{decoded.height} but the image is "
            f"{source.width}x{source.height}; they must have the same dimensions.",
            "mask",
            "invalid_mask_image_format",
        )
    alpha = decoded.convert("RGBA").getchannel("A")
    return alpha.point(lambda v: 255 if v == 0 else 0)


async def _generation_job(request: Request, recorded: RecordedRequest) -> _Job:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise _Invalid(f"We could not parse the JSON body of your request. ({exc})") from exc
    if not isinstance(body, dict):
        raise _Invalid("The JSON body must be an object.")
    recorded.json = body
    unknown = sorted(set(body) - GENERATION_FIELDS)
    if unknown:
        raise _Invalid(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    prompt, _model, quality, size, streaming, partial_images, n = _check_common(body, multipart=False)
    final = generated_image(prompt, _size_tuple(size))
    return _Job(
        "image_generation",
        [variation(final, index) for index in range(n)],
        quality,
        size,
        body.get("output_format", "png"),
        streaming,
        partial_images,
        input_tokens=len(prompt.split()),
    )


def _auth_error(state: FakeOpenAI, request: Request) -> Response | None:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if state.echo_key:
        message = (
            f"Incorrect API key provided: {key}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return JSONResponse(error_body(message, "invalid_request_error", None, "invalid_api_key"), 401)
    if state.api_key is None:
        return None
    if scheme.lower() != "bearer" or not key:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        return JSONResponse(error_body(message, "invalid_request_error"), status_code=401)
    if key != state.api_key:
        message = (
            f"Incorrect API key provided: {_mask(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return JSONResponse(error_body(message, "invalid_request_error", None, "invalid_api_key"), 401)
    return None


def _event(state: FakeOpenAI, payload: Mapping[str, Any]) -> bytes:
    """One SSE event, named by the payload's ``type``; a payload without one gets no name."""
    nl = state.sse_newline
    text = json.dumps(payload, indent=1) if state.sse_multiline else json.dumps(payload)
    data = "".join(f"data: {line}{nl}" for line in text.split("\n"))
    comment = f": keep-alive{nl}" if state.sse_comments else ""
    name = f"event: {payload['type']}{nl}" if "type" in payload else ""
    return f"{comment}{name}{data}{nl}".encode()


def _usage(job: _Job) -> dict[str, Any]:
    output = _output_tokens(job.quality if job.quality != "auto" else "medium", job.size) * len(job.finals)
    image_tokens = 323 if job.prefix == "image_edit" else 0
    return {
        "total_tokens": job.input_tokens + image_tokens + output,
        "input_tokens": job.input_tokens + image_tokens,
        "output_tokens": output,
        "input_tokens_details": {"text_tokens": job.input_tokens, "image_tokens": image_tokens},
    }


def described_size(requested: str, drawn: tuple[int, int]) -> str:
    """The ``size`` a response names: the one asked for, or for ``auto`` the standard size whose
    aspect is nearest the drawing's (never the drawing's own size: the spec lists the values)."""
    if requested != "auto":
        return requested
    aspect = math.log(drawn[0] / drawn[1])
    return min(STANDARD_SIZES.items(), key=lambda pair: abs(math.log(pair[0]) - aspect))[1]


def _described(job: _Job) -> dict[str, Any]:
    return {
        "size": described_size(job.size, job.final.size),
        "quality": job.quality if job.quality != "auto" else "medium",
        "background": "opaque",
        "output_format": job.output_format,
    }


async def _wait_for_gate(state: FakeOpenAI) -> None:
    # Short waits in a worker thread: a long one would outlive a client that disconnects.
    deadline = time.monotonic() + state.gate_timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(state.gate.wait, 0.05):
            return


async def _events(state: FakeOpenAI, job: _Job, failure: Failure | None) -> AsyncIterator[bytes | None]:
    stop_after = failure.after_partials if isinstance(failure, CutStream | StreamError) else None
    try:
        partials = _partials(job.final, job.partial_images)
        for index, partial in enumerate(partials):
            if index == stop_after:
                break
            if state.partial_delay:
                await asyncio.sleep(state.partial_delay)  # pretend to draw
            yield _event(
                state,
                {
                    "type": f"{job.prefix}.partial_image",
                    "b64_json": _b64(partial),
                    "partial_image_index": index,
                    "created_at": int(time.time()),
                    **_described(job),
                },
            )
            if index == 0:
                state.partial_sent.set()
                await _wait_for_gate(state)
        if isinstance(failure, StreamError):
            error = {
                "type": "image_generation_user_error",
                "code": failure.code,
                "message": failure.message,
                "param": None,
            }
            yield _event(state, {"error": error} if failure.data_only else {"type": "error", "error": error})
            return
        if isinstance(failure, CutStream):
            if failure.abrupt:
                yield None
            return
        yield _event(
            state,
            {
                "type": f"{job.prefix}.completed",
                "b64_json": _b64(_png(job.final)),
                "created_at": int(time.time()),
                **_described(job),
                "usage": _usage(job),
            },
        )
    except asyncio.CancelledError:
        # Starlette cancels the stream when the client disconnects.
        state.disconnected.set()
        raise


async def _cut_json(body: str) -> AsyncIterator[bytes | None]:
    yield body[: len(body) // 2].encode()
    yield None


def _answer(state: FakeOpenAI, job: _Job, failure: Failure | None) -> Response:
    if isinstance(failure, Status):
        return JSONResponse(
            error_body(failure.message, failure.error_type, None, failure.error_code),
            status_code=failure.code,
            headers=dict(failure.headers),
        )
    if isinstance(failure, Malformed):
        return Response(failure.body, media_type=failure.content_type)
    if job.stream:
        return _EventStream(
            _events(state, job, failure),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    returned = job.finals[: failure.returned] if isinstance(failure, Short) else job.finals
    body = json.dumps(
        {
            "created": int(time.time()),
            "data": [{"b64_json": _b64(_png(final))} for final in returned],
            **_described(job),
            "usage": _usage(job),
        }
    )
    if isinstance(failure, CutStream | StreamError):
        return _EventStream(_cut_json(body), media_type="application/json")
    return Response(body, media_type="application/json")


def make_app(state: FakeOpenAI) -> Starlette:
    """The fake API, rooted so that the provider's base URL is ``<server>/v1``."""

    async def images(request: Request) -> Response:
        recorded = RecordedRequest(path=request.url.path, headers=dict(request.headers))
        state._record(recorded)
        denied = _auth_error(state, request)
        if denied is not None:
            recorded.outcome = "auth"
            return denied
        try:
            if request.url.path.endswith("/edits"):
                job = await _edit_job(request, recorded)
            else:
                job = await _generation_job(request, recorded)
        except _Invalid as exc:
            recorded.outcome = f"invalid: {exc}"
            return JSONResponse(error_body(str(exc), exc.error_type, exc.param, exc.code), 400)
        failure = state._next_failure()
        recorded.outcome = type(failure).__name__ if failure else "ok"
        if isinstance(failure, Hang):
            await asyncio.sleep(failure.seconds)
            failure = None
        return _answer(state, job, failure)

    async def model(request: Request) -> Response:
        """``GET /v1/models/{model}`` (the status line's probe), as the real API answers it. Not
        kept in ``requests``: those are the image calls the tests look at."""
        denied = _auth_error(state, request)
        if denied is not None:
            return denied
        name = request.path_params["model"]
        if not name.startswith(IMAGE_MODEL_PREFIXES):
            message = f"The model '{name}' does not exist or you do not have access to it."
            return JSONResponse(error_body(message, "invalid_request_error", None, "model_not_found"), 404)
        return JSONResponse({"id": name, "object": "model", "created": 1745000000, "owned_by": "system"})

    return Starlette(
        routes=[
            Route("/v1/images/edits", images, methods=["POST"]),
            Route("/v1/images/generations", images, methods=["POST"]),
            Route("/v1/models/{model}", model, methods=["GET"]),
        ]
    )


IMAGE_MODEL_PREFIXES = ("gpt-image-", "dall-e-")
"""The models this fake knows (with their dated versions); any other is not found, as there."""


@contextlib.contextmanager
def serve_openai(api_key: str) -> Iterator[tuple[FakeOpenAI, str]]:
    """This fake on loopback (``tests.loopback.serve``) taking ``api_key``; gives it and its API
    base (".../v1"). At the end a held answer is let go before the server stops."""
    from tests.loopback import serve

    state = FakeOpenAI(api_key=api_key)
    try:
        with serve(make_app(state)) as server:
            yield state, server + "/v1"
    finally:
        state.gate.set()
