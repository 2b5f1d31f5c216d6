"""Errors mapped to responses in exactly one place: every exception, ours or Litestar's, becomes
`{"error": "<message naming the field>", "code": "<short_code>", "request_id": "<id>"}`."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

from server.errors import BY_STATUS, BadRequest, InternalError, ShopserveError
from server.request_ids import new_request_id
from server.schemas.base import ErrorBody

__all__ = [
    "ERROR_RESPONSES",
    "RawResponse",
    "error_response",
    "exception_handlers",
    "request_id_of",
]

log = logging.getLogger("shopserve.http")
_encoder = msgspec.json.Encoder()


def _error_spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description)


# what the OpenAPI document says every route may answer: the one error body (Litestar's own
# default for 400 is its ValidationException body, which this server never sends)
ERROR_RESPONSES: dict[int, ResponseSpec] = {
    400: _error_spec("Invalid input: the message names the field"),
    404: _error_spec("Unknown model, version or pipeline"),
    408: _error_spec("Body not received within body_timeout_s"),
    413: _error_spec("Body over max_body_bytes"),
    429: _error_spec("Queue or worker full; retry after Retry-After seconds"),
    503: _error_spec("Not ready, or draining"),
    504: _error_spec("Deadline or budget passed"),
}


class RawResponse:
    """A finished answer as the two ASGI messages that send it. The inference routes return it
    instead of Litestar's `Response`, whose construction and `to_asgi_response` (header
    validation, cookies, background tasks, none of which these routes use) were ~15 us of a small
    model's CPU per request (issue 11). Routes returning it are annotated `-> ASGIApp`, which
    Litestar passes through as is; its `before_send` hooks still see both messages."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, body: bytes, media_type: str, headers: dict[str, str], status: int = 200
    ) -> None:
        self.body = body
        self.status = status
        self.headers = [
            (b"content-type", media_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode("latin-1")),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


def request_id_of(request: Request, headers: Any = None) -> str:
    """The request's id: the client's `X-Request-Id`, else one made here and kept on the scope."""
    state = request.scope.setdefault("state", {})
    rid = state.get("request_id")
    if rid is None:
        rid = (headers or request.headers).get("x-request-id") or new_request_id()
        state["request_id"] = rid
    return rid


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """The one error body; the code is left on the scope for the response counter."""
    request_id = request_id_of(request)
    request.scope.setdefault("state", {})["error_code"] = code
    body = _encoder.encode({"error": message, "code": code, "request_id": request_id})
    return Response(
        content=body,
        status_code=status,
        media_type="application/json",
        headers={"X-Request-Id": request_id, **(headers or {})},
    )


def _ours(request: Request, exc: ShopserveError) -> Response:
    rid = request_id_of(request)
    if exc.status_code in (500, 501, 502):
        log.error("request %s failed: %s", rid, exc.message, extra={"request_id": rid})
    return error_response(request, exc.status_code, exc.code, exc.message, exc.headers)


def _validation(request: Request, exc: ValidationException) -> Response:
    detail: Any = exc.extra
    message = exc.detail
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail:
            if isinstance(item, dict):
                key = item.get("key") or item.get("source") or ""
                parts.append(f"{key}: {item.get('message', '')}".strip(": "))
        if parts:
            message = "; ".join(parts)
    return error_response(request, BadRequest.status_code, BadRequest.code, message)


def _http(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    message = exc.detail
    if status == 413:
        message = "request body exceeds the configured limit (max_body_bytes)"
    cls = BY_STATUS.get(status)
    code = cls.code if cls is not None else "http_error"
    return error_response(request, status, code, message, dict(exc.headers or {}))


def _unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id_of(request)
    log.exception("request %s: unexpected error", rid, extra={"request_id": rid})
    message = f"internal error ({type(exc).__name__}); request id {rid}"
    return error_response(request, InternalError.status_code, InternalError.code, message)


exception_handlers: dict[Any, Any] = {
    ShopserveError: _ours,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _unexpected,
}
