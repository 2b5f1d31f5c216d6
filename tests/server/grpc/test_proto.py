"""The committed protobuf modules match a regeneration from the .proto, and every message is
Triton's on the wire (field by field against the modules tritonclient ships); every server error
has a gRPC status code; the service serves every method its .proto declares."""

from __future__ import annotations

import inspect

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor

import server.errors
from server.errors import ShopserveError
from server.grpc import shopserve_inference_pb2 as pb
from server.grpc.generate import GENERATED, HERE, generate
from server.grpc.service import InferenceService
from server.grpc.status import GRPC_CODES, grpc_code


def test_committed_modules_match_a_regeneration(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools (a dev dependency) regenerates")
    written = generate(tmp_path)
    assert [p.name for p in written] == list(GENERATED)
    for p in written:
        assert p.read_bytes() == (HERE / p.name).read_bytes(), (
            f"server/grpc/{p.name} is stale: run `make proto` and commit the result"
        )


def _triton_message(full_name: str) -> Descriptor:
    from tritonclient.grpc import model_config_pb2, service_pb2

    path = full_name.removeprefix("shopserve.inference.").split(".")
    for module in (service_pb2, model_config_pb2):
        d = module.DESCRIPTOR.message_types_by_name.get(path[0])
        for part in path[1:]:
            d = d and d.nested_types_by_name.get(part)
        if d is not None:
            return d
    raise AssertionError(f"Triton has no message {'.'.join(path)}")


def _kind(f) -> tuple:
    ref = f.message_type or f.enum_type
    return (f.type, ref.name if ref else None, f.is_repeated)


def _same_enum(mine: EnumDescriptor, theirs: EnumDescriptor) -> None:
    values = {v.name: v.number for v in theirs.values}
    for v in mine.values:
        assert values.get(v.name) == v.number, f"{mine.full_name}.{v.name}"


def _same_message(mine: Descriptor) -> None:
    theirs = _triton_message(mine.full_name)
    for f in mine.fields:
        t = theirs.fields_by_number.get(f.number)
        assert t is not None, f"{mine.full_name}.{f.name}: no field {f.number} in Triton's"
        assert (f.name, _kind(f)) == (t.name, _kind(t)), f"{mine.full_name}.{f.name}"
        if f.enum_type:
            _same_enum(f.enum_type, t.enum_type)
    for nested in mine.nested_types:
        _same_message(nested)


def test_messages_are_tritons_on_the_wire():
    pytest.importorskip("tritonclient.grpc")
    for message in pb.DESCRIPTOR.message_types_by_name.values():
        _same_message(message)
    from tritonclient.grpc import service_pb2

    theirs = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for m in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        t = theirs.methods_by_name[m.name]
        assert (m.input_type.name, m.output_type.name) == (t.input_type.name, t.output_type.name)


def test_every_error_class_has_a_grpc_code():
    classes = [
        c
        for _, c in inspect.getmembers(server.errors, inspect.isclass)
        if issubclass(c, ShopserveError) and c is not ShopserveError
    ]
    assert classes
    for cls in classes:
        assert cls in GRPC_CODES, f"{cls.__name__} has no gRPC status code"
    assert grpc_code(server.errors.Overloaded("full")) == grpc.StatusCode.UNAVAILABLE
    assert grpc_code(server.errors.DeadlineExceeded("late")) == grpc.StatusCode.DEADLINE_EXCEEDED


def test_the_service_implements_every_method_of_the_proto():
    for m in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        assert inspect.iscoroutinefunction(getattr(InferenceService, m.name)), m.name
