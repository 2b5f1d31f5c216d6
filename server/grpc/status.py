"""The server's errors as gRPC status codes, in this one place (the HTTP status of each class is
on the class, server/errors.py; this table is its gRPC twin). A full queue and a draining server
are UNAVAILABLE, as in Triton, which gRPC clients treat as "retry"; a passed deadline is
DEADLINE_EXCEEDED. Every answer is counted here, in `shopserve_grpc_requests{method, status,
code}`, as `http/counting.py` counts HTTP answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from server.errors import (
    BadRequest,
    ClientDisconnected,
    DeadlineExceeded,
    Forbidden,
    InferenceFailed,
    InternalError,
    MethodNotAllowed,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    OutOfRange,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    ShopserveError,
    Unauthorized,
    UnknownItem,
    UnsupportedMediaType,
)
from server.metrics import Metrics

__all__ = ["GRPC_CODES", "grpc_code", "guarded"]

log = logging.getLogger("shopserve.grpc")

GRPC_CODES: dict[type[ShopserveError], grpc.StatusCode] = {
    BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    ModelLoadError: grpc.StatusCode.INVALID_ARGUMENT,
    UnsupportedMediaType: grpc.StatusCode.INVALID_ARGUMENT,
    Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    UnknownItem: grpc.StatusCode.NOT_FOUND,
    OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    MethodNotAllowed: grpc.StatusCode.UNIMPLEMENTED,
    PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,  # what gRPC says of a large message
    Overloaded: grpc.StatusCode.UNAVAILABLE,
    ClientDisconnected: grpc.StatusCode.CANCELLED,
    ModelNotReady: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    RequestTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,  # HTTP's slow body; gRPC has its own
    InternalError: grpc.StatusCode.INTERNAL,
    InferenceFailed: grpc.StatusCode.INTERNAL,
}


def grpc_code(exc: ShopserveError) -> grpc.StatusCode:
    """The class's own entry, else its nearest base's (a test checks that every class has one)."""
    for cls in type(exc).__mro__:
        code = GRPC_CODES.get(cls)  # type: ignore[call-overload]
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id":
            return str(value)
    return ""


def guarded(method: str, handler: Handler, metrics: Metrics) -> Handler:
    """`handler` with every error answered as its status code (the message naming the field as
    the details; the short code, request id and Retry-After as trailing metadata) and every
    answer counted."""
    counters: dict[tuple[str, str], Any] = {}

    def count(status: grpc.StatusCode, code: str) -> None:
        child = counters.get((status.name, code))
        if child is None:
            child = metrics.grpc_requests.labels(method, status.name, code)
            counters[(status.name, code)] = child
        child.inc()

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            response = await handler(request, context)
        except ShopserveError as exc:
            error: ShopserveError = exc
        except asyncio.CancelledError:  # the client cancelled or its deadline passed
            count(grpc.StatusCode.CANCELLED, ClientDisconnected.code)
            raise
        except Exception as exc:
            rid = _request_id(context)
            log.exception("grpc %s: unexpected error", method, extra={"request_id": rid})
            error = InternalError(f"internal error ({type(exc).__name__}); request id {rid}")
        else:
            count(grpc.StatusCode.OK, "ok")
            return response
        status = grpc_code(error)
        if error.status_code >= 500 and not isinstance(error, (ModelNotReady, DeadlineExceeded)):
            log.error("grpc %s failed: %s", method, error.message)
        count(status, error.code)
        trailing = [("shopserve-error-code", error.code)]
        if rid := _request_id(context):
            trailing.append(("x-request-id", rid))
        if "Retry-After" in error.headers:
            trailing.append(("retry-after", error.headers["Retry-After"]))
        await context.abort(status, error.message, tuple(trailing))

    return call
