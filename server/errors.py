"""One error hierarchy; status codes and short codes are class data. `error_body` turns any of
them into the one JSON body that every endpoint (V2 and /v1) answers with."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BY_STATUS",
    "BadRequest",
    "ClientDisconnected",
    "Forbidden",
    "Unauthorized",
    "ModelLoadError",
    "MethodNotAllowed",
    "UnsupportedMediaType",
    "bad_request_from_decode",
    "DeadlineExceeded",
    "InferenceFailed",
    "InternalError",
    "ModelNotFound",
    "ModelNotReady",
    "OutOfRange",
    "Overloaded",
    "PayloadTooLarge",
    "RequestTimeout",
    "ShopserveError",
    "UnknownItem",
]


class ShopserveError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ShopserveError):
    """Invalid input: the message names the field."""

    status_code, code = 400, "invalid_input"


class ModelLoadError(ShopserveError):
    """A model or pipeline that cannot be served: the message names the file and field. Kept
    on the repository entry (index, log); a load requested through the API answers it as 400."""

    status_code, code = 400, "load_failed"


class Unauthorized(ShopserveError):
    """An admin call without `Authorization: Bearer <token>` while a token is configured."""

    status_code, code = 401, "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ShopserveError):
    """A wrong admin token, or model control that this server's mode refuses (Triton: 400)."""

    status_code, code = 403, "forbidden"


class ModelNotFound(ShopserveError):
    """No such model, version or pipeline."""

    status_code, code = 404, "not_found"


class UnknownItem(ShopserveError):
    """A well-formed item id the served data does not hold (/v1/forecast): the message names
    the field. Not in BY_STATUS: Litestar's own 404s stay `not_found`."""

    status_code, code = 404, "unknown_item"


class MethodNotAllowed(ShopserveError):
    status_code, code = 405, "method_not_allowed"


class RequestTimeout(ShopserveError):
    """The body did not arrive within `body_timeout_s`."""

    status_code, code = 408, "request_timeout"


class PayloadTooLarge(ShopserveError):
    """A body over `max_body_bytes`, refused before it is parsed."""

    status_code, code = 413, "payload_too_large"


class UnsupportedMediaType(ShopserveError):
    status_code, code = 415, "unsupported_media_type"


class Overloaded(ShopserveError):
    """A full queue or a worker at its in-flight bound: answered before the body is read."""

    status_code, code = 429, "overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after_s))})


class ClientDisconnected(ShopserveError):
    """The client went away before its answer (nginx's 499); nobody reads the body."""

    status_code, code = 499, "client_disconnected"


class InternalError(ShopserveError):
    status_code, code = 500, "internal"


class InferenceFailed(ShopserveError):
    """The model raised on this request alone (its batch-mates were isolated and answered)."""

    status_code, code = 500, "inference_failed"


class ModelNotReady(ShopserveError):
    """Loading, unloading, failed to load, or the server is draining."""

    status_code, code = 503, "not_ready"


class OutOfRange(ShopserveError):
    """A well-formed value outside what the served data covers (a forecast origin before or
    after the history table): the message names the field and the range."""

    status_code, code = 422, "out_of_range"


class DeadlineExceeded(ShopserveError):
    """The request's deadline or budget passed: answered at that moment."""

    status_code, code = 504, "deadline_exceeded"


BY_STATUS: dict[int, type[ShopserveError]] = {
    cls.status_code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        ModelNotFound,
        MethodNotAllowed,
        RequestTimeout,
        PayloadTooLarge,
        UnsupportedMediaType,
        Overloaded,
        ClientDisconnected,
        InternalError,
        ModelNotReady,
        DeadlineExceeded,
    )
}
"""Litestar's own HTTP errors are answered with the code of our class for that status."""


def bad_request_from_decode(exc: Exception) -> BadRequest:
    """A msgspec ValidationError/DecodeError as a 400 that starts with the field's `$.path`."""
    text = str(exc)
    if " - at `$" in text:
        msg, path = text.rsplit(" - at `", 1)
        return BadRequest(f"{path.rstrip('`')}: {msg}")
    return BadRequest(f"request body: {text}")
