"""Request builders and the error-body check shared by the V2 tests."""

from __future__ import annotations

import json


def infer_body(*inputs: tuple[str, list[int], str, list], **extra) -> bytes:
    """A JSON infer request: (name, shape, datatype, data) per input, plus top-level fields."""
    body = {"inputs": [{"name": n, "shape": s, "datatype": d, "data": v} for n, s, d, v in inputs]}
    return json.dumps({**body, **extra}).encode()


def mlp_request(rows: int = 2, value: float = 0.5) -> dict:
    return {
        "inputs": [
            {
                "name": "features",
                "shape": [rows, 64],
                "datatype": "FP32",
                "data": [value] * (64 * rows),
            }
        ]
    }


def binary_body(header: dict, blobs: list[bytes]) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}


def assert_error(r, status: int, *needles: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "code", "request_id"}
    for n in needles:
        assert n in body["error"], body["error"]
    return body
