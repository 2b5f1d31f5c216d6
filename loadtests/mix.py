"""The storefront mix: endpoint weights, and which of them a running server serves (read from
`GET /v1/pipelines`, so a repository without, say, a classify pipeline is load-tested on the
endpoints it has rather than failing on 404s)."""

from __future__ import annotations

import json
import os
import urllib.request

__all__ = [
    "DEFAULT_MIX",
    "ENDPOINT_OF_KIND",
    "format_mix",
    "load_average_note",
    "parse_mix",
    "pipeline_rows",
    "served_classify_tasks",
    "served_endpoints",
    "served_mix",
]

DEFAULT_MIX = "recommend=40,search=25,classify=15,score=5,answer=10,forecast=5"
# pipeline kind -> the /v1 endpoint the storefront user calls with it; `order_score` (score's
# cancellation_risk task) is left out because the storefront user sends purchase_intent sessions
ENDPOINT_OF_KIND = {
    "recommend": "recommend",
    "search": "search",
    "classify": "classify",
    "score": "score",
    "answer": "answer",
    "forecast": "forecast",
}
QUIET_LOAD_AVERAGE = 0.5  # issue 11: "nothing else running" means a 1-minute load under 0.5


def parse_mix(raw: str) -> dict[str, int]:
    """`"recommend=50,search=30"` -> `{"recommend": 50, "search": 30}`."""
    out = {}
    for part in raw.split(","):
        if part.strip():
            name, weight = part.split("=")
            out[name.strip()] = int(weight)
    return out


def format_mix(mix: dict[str, int]) -> str:
    return ",".join(f"{name}={weight}" for name, weight in mix.items())


def pipeline_rows(host: str, timeout_s: float = 5.0) -> list[dict]:
    """`GET /v1/pipelines`' rows on `host`."""
    with urllib.request.urlopen(host.rstrip("/") + "/v1/pipelines", timeout=timeout_s) as r:
        return json.load(r)["pipelines"]


def served_endpoints(rows: list[dict]) -> list[str]:
    """The storefront endpoints whose pipeline is READY in `rows`, in `ENDPOINT_OF_KIND` order."""
    kinds = {row["kind"] for row in rows if row["state"] == "READY"}
    return [endpoint for kind, endpoint in ENDPOINT_OF_KIND.items() if kind in kinds]


def served_classify_tasks(rows: list[dict]) -> list[str]:
    """The tasks of the classify heads served in `rows` (a head whose model has a version; a
    full build leaves out a head that failed its gate, and a request for it is a 400)."""
    return [
        m["name"].removeprefix("classify_")
        for row in rows
        if row["kind"] == "classify" and row["state"] == "READY"
        for m in row["models"]
        if m["version"]
    ]


def served_mix(mix: dict[str, int], endpoints: list[str]) -> dict[str, int]:
    """`mix` restricted to `endpoints` (weights kept; endpoints of weight 0 dropped)."""
    return {name: w for name, w in mix.items() if name in endpoints and w > 0}


def load_average_note() -> tuple[str, bool]:
    """A line stating the load average, and whether it is above the quiet threshold."""
    one, five, fifteen = os.getloadavg()
    line = f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"
    return line, one > QUIET_LOAD_AVERAGE
