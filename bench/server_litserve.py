"""The same ONNX model served by LitServe with its batching on (`max_batch_size`, `batch_timeout`
set like ours), taking and answering the same V2 JSON body as shopserve, so the client and the
bytes on the wire are the same. One API server process and one inference worker (LitServe's
minimum); the ONNX Runtime session gets one intra-op thread, as in shopserve.

    python -m bench.server_litserve --model PATH --port PORT --max-batch-size N --batch-timeout-s T
"""

from __future__ import annotations

import argparse
import logging

import litserve as ls
import numpy as np

__all__ = ["OnnxV2API", "main"]

_DTYPES = {"FP32": np.float32, "INT64": np.int64}
_V2_NAMES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


class OnnxV2API(ls.LitAPI):
    """Module level: LitServe spawns its worker and pickles the API object."""

    def __init__(self, model_path: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.model_path = model_path

    def setup(self, device: str) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            self.model_path, sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def decode_request(self, request: dict) -> np.ndarray:
        t = request["inputs"][0]
        return np.asarray(t["data"], dtype=_DTYPES[t["datatype"]]).reshape(t["shape"])

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return [output[i : i + 1] for i in range(len(output))]

    def encode_response(self, output: np.ndarray) -> dict:
        return {
            "model_name": "litserve",
            "outputs": [
                {
                    "name": self.output_name,
                    "datatype": _V2_NAMES[output.dtype],
                    "shape": list(output.shape),
                    "data": output.ravel().tolist(),
                }
            ],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_litserve")
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, required=True)
    parser.add_argument("--batch-timeout-s", type=float, required=True)
    parser.add_argument("--api-path", default="/predict")
    args = parser.parse_args(argv)

    api = OnnxV2API(
        args.model,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout_s,
        api_path=args.api_path,
    )
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=60)
    logging.getLogger("litserve").setLevel(logging.WARNING)
    # the ASGI options shopserve uses (httptools + uvloop), so only the framework differs
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
        http="httptools",
        loop="uvloop",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
