"""`shopserve_http_requests{route, status, code}`: every answer counted (code: the error body's
short code, "ok" for answers that are not errors), errors, 413s and 499s included.
A Litestar `before_send` hook sees every response start, routing's own 404/405 too; the route
label is the matched path template, never the raw path (bounded label values)."""

from __future__ import annotations

from typing import Any

from server.metrics import Metrics

__all__ = ["ResponseCounter"]


class ResponseCounter:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._children: dict[tuple[str, int, str], Any] = {}

    async def __call__(self, message: Any, scope: Any) -> None:
        if message["type"] != "http.response.start":
            return
        handler = scope.get("route_handler")
        route = next(iter(handler.paths)) if handler is not None else "unmatched"
        code = scope.get("state", {}).get("error_code", "ok")
        key = (route, message["status"], code)
        child = self._children.get(key)
        if child is None:
            child = self.metrics.http_requests.labels(route, str(message["status"]), code)
            self._children[key] = child
        child.inc()
