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

Nothing here logs a request header or a credential. Must not import nicegui.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import time
from collections.abc import Callable
from typing import Any
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

MAX_MESSAGE = 400
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
    status = response.status_code
    message, code = server_message(response)
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


async def send(
    client: httpx.AsyncClient, request: httpx.Request, label: str, *, stream: bool = False
) -> httpx.Response:
    """Send ``request``; return the response if it succeeded, else raise the mapped error.

    With ``stream=True`` the caller reads the body and must ``aclose()`` the response.
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
    raise error_from_response(response, label)


def json_body(response: httpx.Response, label: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderFailed(f"{label} sent an answer that is not valid JSON.") from exc


def decode_image(b64: object, label: str) -> bytes:
    """Bytes of a base64 image from a response, checked to look like an image file."""
    if not isinstance(b64, str) or not b64:
        raise ProviderFailed(f"{label} sent no image data.")
    if b64.startswith("data:"):
        b64 = b64.partition(",")[2]
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProviderFailed(f"{label} sent image data that is not valid base64.") from exc
    if sniff_format(data) is None:
        raise ProviderFailed(f"{label} sent data that is not an image.")
    return data


def public_url(url: str) -> str:
    """``url`` without any user:password part, fit for labels and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
