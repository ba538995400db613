"""The shared edge of the HTTP providers: httpx outcomes become the ImgEditError tree here.

    transport errors   timeout, connect, DNS        → ProviderUnavailable (retryable)
                       connection cut mid-response   → ProviderFailed (retryable)
    HTTP status        401 / 403                     → ProviderAuthFailed ("check your API key")
                       429                           → ProviderRateLimited (Retry-After kept)
                       408                           → ProviderUnavailable
                       other 4xx                     → ProviderRejected (server's message kept;
                                                       moderation_blocked says so)
                       5xx                           → ProviderFailed (Retry-After kept)
    bodies             not JSON / not an image       → ProviderFailed (retryable)

``never_arrived(error)`` / ``went_unanswered(error)`` tell a caller which side of the wire a
transport failure happened on: nothing reached the server, or the server may still be working.

Large bodies (a 30 MB source is 40 MB of base64) are built and read in slices, in a worker
thread: ``json_with_base64``, ``parse_json`` and ``decode_image`` never make one call that holds
the GIL for more than a few milliseconds, so the event loop keeps running while they work.

Nothing here logs a request header or a credential. Must not import nicegui.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from imgedit.errors import (
    ProviderAuthFailed,
    ProviderError,
    ProviderFailed,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from imgedit.imaging import sniff_format

T = TypeVar("T")

MAX_MESSAGE = 400
SLICE = 256 * 1024
"""Characters of base64 per call: about a millisecond of work, after which the loop may run."""
LONG_STRING = 1024 * 1024
"""A JSON string this long is an image, parsed apart from the rest of the body."""
OFF_LOOP = 256 * 1024
"""Bodies and images larger than this are handled in a worker thread."""
_UNANSWERED = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def server_message(response: httpx.Response) -> tuple[str, str | None]:
    """The server's own words and error code, from the common JSON shapes or the plain text."""
    text = response.text
    code: str | None = None
    message = text.strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # OpenAI: {"error": {"message", "type", "code", "param"}}
            message = str(error.get("message") or message)
            code = str(error["code"]) if error.get("code") else None
        elif isinstance(body.get("detail"), str):  # FastAPI / A1111: {"detail": "..."}
            message = body["detail"]
        elif isinstance(body.get("errors"), str):  # A1111 exceptions: {"error": "Type", "errors": "..."}
            message = f"{error}: {body['errors']}" if error else body["errors"]
        elif isinstance(error, str):
            message = error
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return message or response.reason_phrase, code


def error_from_response(response: httpx.Response, label: str) -> ProviderError:
    """The error for a failed answer (the table above), keeping its ``status`` and the server's ``code``."""
    message, code = server_message(response)
    error = _error_for_status(response, label, message, code)
    error.status, error.code = response.status_code, code
    return error


def _error_for_status(response: httpx.Response, label: str, message: str, code: str | None) -> ProviderError:
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status in (401, 403):
        return ProviderAuthFailed(
            f"{label} did not accept the credentials ({status}): check your API key. {message}"
        )
    if status == 429:
        return ProviderRateLimited(
            f"{label} is busy or rate limited (429): {message}", retry_after=retry_after
        )
    if status == 408:
        return ProviderUnavailable(f"{label} timed out (408): {message}", retry_after=retry_after)
    if status >= 500:
        return ProviderFailed(f"{label} had a server error ({status}): {message}", retry_after=retry_after)
    if code == "moderation_blocked":
        return ProviderRejected(f"{label}'s safety system blocked this request: {message}")
    return ProviderRejected(f"{label} refused the request ({status}): {message}")


def never_arrived(error: BaseException) -> bool:
    """True when ``error`` is a connection that could not be made: the server may be down, and
    it holds nothing we sent."""
    return isinstance(error.__cause__, httpx.ConnectError | httpx.ConnectTimeout | httpx.ProxyError)


def went_unanswered(error: BaseException) -> bool:
    """True when the request went out (at least in part) and no full answer came back: it timed
    out or the connection broke off. The server may still be working on it."""
    return isinstance(error.__cause__, _UNANSWERED)


def error_from_transport(exc: httpx.TransportError, label: str) -> ProviderError:
    if isinstance(exc, httpx.TimeoutException):
        return ProviderUnavailable(f"{label} did not answer in time ({type(exc).__name__}).")
    if isinstance(exc, httpx.ConnectError):
        return ProviderUnavailable(f"Could not connect to {label}: {exc or type(exc).__name__}.")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return ProviderFailed(f"The connection to {label} broke off: {exc or type(exc).__name__}.")
    return ProviderUnavailable(f"Could not reach {label}: {exc or type(exc).__name__}.")


ResponseErrors = Callable[[httpx.Response, str], ProviderError]
"""Maps a failed response (body read) and the server's label to the error to raise."""


async def send(
    client: httpx.AsyncClient,
    request: httpx.Request,
    label: str,
    *,
    stream: bool = False,
    errors: ResponseErrors = error_from_response,
) -> httpx.Response:
    """Send ``request``; return the response if it succeeded, else raise the mapped error.

    With ``stream=True`` the caller reads the body and must ``aclose()`` the response.
    ``errors`` maps a failed response: by default the table above; a provider whose server says
    more (OpenAI's ``x-should-retry``, ``retry-after-ms``) passes its own.
    """
    try:
        response = await client.send(request, stream=stream)
    except httpx.TransportError as exc:
        raise error_from_transport(exc, label) from exc
    if response.is_success:
        return response
    try:
        await response.aread()
    except httpx.TransportError as exc:
        raise error_from_transport(exc, label) from exc
    finally:
        await response.aclose()
    raise errors(response, label)


def json_body(response: httpx.Response, label: str) -> Any:
    return parse_json(response.content, label)


def parse_json(content: bytes | str, label: str) -> Any:
    """The parsed body; long escape-free strings (base64 images) come back as ``memoryview``s."""
    try:
        return loads_sliced(content.encode() if isinstance(content, str) else content)
    except (ValueError, RecursionError) as exc:
        raise ProviderFailed(f"{label} sent an answer that is not valid JSON.") from exc


async def off_loop(size: int, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker thread when ``size`` says the work is large, else here."""
    if size > OFF_LOOP:
        return await asyncio.to_thread(function, *args)
    return function(*args)


def decode_image(b64: object, label: str) -> bytes:
    """Bytes of a base64 image (``str``, or ASCII bytes from ``parse_json``), checked to look like
    an image file. A ``data:`` URL prefix is allowed."""
    if isinstance(b64, bytes):
        b64 = memoryview(b64)
    if not isinstance(b64, str | memoryview) or not len(b64):
        raise ProviderFailed(f"{label} sent no image data.")
    head = b64[:64] if isinstance(b64, str) else b64[:64].tobytes().decode("latin-1")
    if head.startswith("data:"):
        b64 = b64[head.find(",") + 1 :] if "," in head else b64[:0]
    try:
        data = b64decode_sliced(b64)
    except (binascii.Error, ValueError) as exc:
        raise ProviderFailed(f"{label} sent image data that is not valid base64.") from exc
    if not data or sniff_format(data) is None:
        raise ProviderFailed(f"{label} sent data that is not an image.")
    return data


async def read_chunks(response: httpx.Response, label: str) -> list[bytes]:
    """The body of a streamed response, unjoined (joining 40 MB is for a worker thread); closes it."""
    try:
        return [chunk async for chunk in response.aiter_bytes()]
    except httpx.TransportError as exc:
        raise error_from_transport(exc, label) from exc
    finally:
        await response.aclose()


def b64decode_sliced(text: str | bytes | memoryview) -> bytes:
    """``base64.b64decode(text, validate=True)``, one ``SLICE`` at a time."""
    parts: list[bytes] = []
    full = SLICE // 4 * 3
    for at in range(0, len(text), SLICE):
        part = base64.b64decode(text[at : at + SLICE], validate=True)
        if at + SLICE < len(text) and len(part) != full:
            raise binascii.Error("padding in the middle of the data")
        parts.append(part)
    return b"".join(parts)


def json_with_base64(payload: Mapping[str, Any], key: str, data: bytes) -> list[bytes]:
    """``json.dumps({key: [base64 of data], **payload}).encode()`` in parts, encoded one slice at a
    time and never joined: send them as they are (``content=`` an iterator, with Content-Length).

    Base64 needs no escaping in JSON, so the slices go between the quotes as they are.
    """
    view = memoryview(data)
    step = SLICE // 4 * 3
    rest = json.dumps(dict(payload)).encode()
    parts = [b"{" + json.dumps(key).encode() + b': ["']
    parts += (base64.b64encode(view[at : at + step]) for at in range(0, len(data), step))
    parts.append(b'"]' + (b", " + rest[1:] if payload else b"}"))
    return parts


def loads_sliced(content: bytes) -> Any:
    """``json.loads(content)``, but strings of ``LONG_STRING`` or more characters without escapes
    are cut out first and put back as ``memoryview``s of their bytes in ``content`` (no copy): the
    decoder would hold the GIL through them."""
    skeleton, cut = _cut_long_strings(content)
    parsed = json.loads(skeleton)
    return _put_back(parsed, cut) if cut else parsed


def _cut_long_strings(content: bytes) -> tuple[bytes, dict[str, memoryview]]:
    token = uuid.uuid4().hex
    view = memoryview(content)
    pieces: list[bytes] = []
    cut: dict[str, memoryview] = {}
    copied = at = 0
    while (start := content.find(b'"', at)) >= 0:  # outside strings, a quote can only open one
        end = start
        while True:
            end = content.find(b'"', end + 1)
            if end < 0:
                return content, {}  # unterminated: json.loads will say where
            slashes = 0
            while content[end - 1 - slashes] == 0x5C:  # backslash
                slashes += 1
            if slashes % 2 == 0:
                break
        if end - start > LONG_STRING and content.find(b"\\", start, end) < 0:
            placeholder = f"{token}:{len(cut)}"
            pieces += (content[copied : start + 1], placeholder.encode())
            cut[placeholder] = view[start + 1 : end]
            copied = end
        at = end + 1
    if not cut:
        return content, cut
    pieces.append(content[copied:])
    return b"".join(pieces), cut


def _put_back(value: Any, cut: dict[str, memoryview]) -> Any:
    if isinstance(value, str):
        return cut.get(value, value)
    if isinstance(value, list):
        return [_put_back(item, cut) for item in value]
    if isinstance(value, dict):
        return {_put_back(k, cut): _put_back(v, cut) for k, v in value.items()}
    return value


def public_url(url: str) -> str:
    """``url`` without any user:password part, fit for labels and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
