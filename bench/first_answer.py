"""Time to first answer (issue 10 item 7): poll every `/v1` endpoint with the README's example
bodies until each answers 200, and print when each first did, in seconds from this command's
start, with the `warnings` of that answer.

Start it with `make serve` on a fresh clone whose install is done, so that the clock starts
with the server and the preview build:

    make serve PORT=8123 GRPC_PORT=8124 & python -m bench.first_answer --port 8123

It exits when every endpoint has answered (status 0) or after `--timeout` seconds (status 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

__all__ = ["BODIES", "main"]

# endpoint -> a request the preview tier answers (README's examples); "score#..." is a second
# task of the same endpoint
BODIES: dict[str, dict] = {
    "recommend": {"history": ["85123A", "71053", "84406B"], "k": 3},
    "search": {"query": "red heart candle holder", "k": 3},
    "classify": {"texts": ["Love this dress, fits perfectly"], "task": "sentiment"},
    "score": {
        "session": {
            "Administrative": 2,
            "Administrative_Duration": 60.0,
            "Informational": 0,
            "Informational_Duration": 0.0,
            "ProductRelated": 30,
            "ProductRelated_Duration": 1200.0,
            "BounceRates": 0.01,
            "ExitRates": 0.02,
            "PageValues": 25.0,
            "SpecialDay": 0.0,
            "Month": "Nov",
            "OperatingSystems": 2,
            "Browser": 2,
            "Region": 1,
            "TrafficType": 2,
            "VisitorType": "Returning_Visitor",
            "Weekend": False,
        }
    },
    "score#cancellation_risk": {
        "task": "cancellation_risk",
        "order_line": {
            "stock_code": "85123A",
            "quantity": 24,
            "unit_price": 2.55,
            "country": "United Kingdom",
            "invoice_time": "2011-11-15T10:30:00",
            "customer_id": "17850",
        },
    },
    "answer": {"question": "my parcel still hasnt arrived, where is it?"},
    "forecast": {"item_id": "85123A", "horizon_days": 3, "as_of": "2011-11-10"},
}


def _answers(url: str, body: dict) -> list | None:
    """The answer's `warnings` when `url` answers 200, else None."""
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read()).get("warnings", []) if r.status == 200 else None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.first_answer", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before giving up")
    args = p.parse_args(argv)
    t0, first = time.perf_counter(), {}
    while len(first) < len(BODIES) and time.perf_counter() - t0 < args.timeout:
        for name, body in BODIES.items():
            if name in first:
                continue
            url = f"http://{args.host}:{args.port}/v1/{name.split('#')[0]}"
            warnings = _answers(url, body)
            if warnings is not None:
                first[name] = time.perf_counter() - t0
                print(f"{first[name]:7.1f} s  /v1/{name}  warnings={warnings}", flush=True)
        time.sleep(1.0)
    missing = [n for n in BODIES if n not in first]
    if missing:
        print(f"not answered after {args.timeout:.0f} s: {missing}")
        return 1
    print(f"every /v1 endpoint answered after {max(first.values()):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
