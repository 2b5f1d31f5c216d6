"""Request builders and the error-body check shared by the HTTP tests."""

from __future__ import annotations

import json


def tensor(name: str, shape: list[int], datatype: str, data: list | None = None, **extra) -> dict:
    """One tensor of a V2 request, its extra fields (parameters, unknown ones) after the data;
    without data when `data` is None (a binary input, or a missing field)."""
    out: dict = {"name": name, "shape": shape, "datatype": datatype}
    if data is not None:
        out["data"] = data
    return {**out, **extra}


def binary_input(name: str, shape: list[int], datatype: str, size: int) -> dict:
    """An input whose data follows the JSON header: `size` bytes."""
    return tensor(name, shape, datatype, parameters={"binary_data_size": size})


def infer_body(*inputs: dict, **extra) -> bytes:
    """A JSON infer request: the input tensors, plus top-level fields."""
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def mlp_request(rows: int = 2, value: float = 0.5) -> dict:
    return {"inputs": [tensor("features", [rows, 64], "FP32", [value] * (64 * rows))]}


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
