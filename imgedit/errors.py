"""The project's exception tree. Errors are translated into it at the edges.

    ImgEditError                 a failure with a message a user can act on
    ├── InvalidRequest           the user's input cannot be used (empty prompt, bad upload)
    ├── UnknownPrompt            the local engine understood none / part of the prompt
    ├── NotFound                 an image or job id that does not exist
    ├── StorageFailed            the data folder refused a write: full, read-only (not retryable)
    └── ProviderError            a backend failed
        ├── ProviderUnavailable  it could not be reached (retryable)
        │   └── ProviderRateLimited   429: too many requests (retryable, honours Retry-After)
        ├── ProviderRejected     it refused the request (not retryable; the server's message kept)
        │   └── ProviderAuthFailed    401/403: the key or password is wrong (not retryable)
        └── ProviderFailed       it broke while working: 5xx, bad body, cut stream (retryable)

The job registry turns an ``ImgEditError`` into FAILED with ``str(error)`` as the message; any
other exception becomes FAILED with a generic message and a logged traceback.
"""

from __future__ import annotations


class ImgEditError(Exception):
    """A failure whose message is fit to show to a user."""

    retryable: bool = False


class InvalidRequest(ImgEditError):
    """The request cannot be used as given."""


class UnknownPrompt(InvalidRequest):
    """The local engine does not understand the prompt."""


class NotFound(ImgEditError):
    """No image or job with that id."""


class StorageFailed(ImgEditError):
    """The data folder could not take a write (disk full, quota used up, read-only, no access).

    Nothing was kept of the attempt; trying again only helps once someone frees space or fixes
    the folder, so it is not retried automatically.
    """


class ProviderError(ImgEditError):
    """A provider could not do the work.

    ``retry_after`` is the server's own advice in seconds (HTTP Retry-After), when it gave one.
    For code that decides by more than the class (logs, metrics, a retry policy): ``provider``
    is the provider's ``name`` (``"openai"``, ``"sdwebui"``), ``status`` the HTTP status of the
    answer, ``code`` the server's own name for the error (OpenAI's ``error.code``, A1111's
    exception type); each ``None`` when unknown, e.g. for a connection that was never made.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        provider: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.provider = provider
        self.status = status
        self.code = code


class ProviderUnavailable(ProviderError):
    """The provider could not be reached; trying again may help."""

    retryable = True


class ProviderRateLimited(ProviderUnavailable):
    """The provider asked us to slow down; trying again later may help."""


class ProviderRejected(ProviderError):
    """The provider refused the request; trying again will not help."""


class ProviderAuthFailed(ProviderRejected):
    """The provider did not accept our credentials."""


class ProviderFailed(ProviderError):
    """The provider broke while working; trying again may help."""

    retryable = True
