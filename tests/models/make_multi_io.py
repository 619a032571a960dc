#!/usr/bin/python3
"""Writes multi_io.onnx, a tiny two-input two-output model, and its golden tensors.

Run with Debian's python (onnx 1.12, numpy): /usr/bin/python3 tests/models/make_multi_io.py
The golden outputs are computed here with numpy from the model's definition, never by Outpost.

    x: float32[2,4], k: int64[2,4]
    s = x + Cast<float>(k)
    y = Relu(2 * s)                         float32[2,4]
    idx = ArgMax(s, axis=1, keepdims=0)     int64[2]

golden_numpy/multi_io/
    input/x.npy, input/k.npy                  .npy goldens, one file per input name
    output/y.npy, output/idx.npy              .npy goldens, one file per output name
    input_pb/x.pb, input_pb/k.pb              the same tensors as ONNX TensorProto files, typed
                                              fields (float_data, int64_data)
    output_pb/y.pb, output_pb/idx.pb          TensorProto files with raw_data
    output_wrong_idx/y.npy, .../idx.npy       y right, idx with its first element changed
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden_numpy", "multi_io")  # not golden/: that is ORT goldens, input_K.npy


def model():
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    nodes = [
        helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "kf"], ["s"]),
        helper.make_node("Mul", ["s", "two"], ["s2"]),
        helper.make_node("Relu", ["s2"], ["y"]),
        helper.make_node("ArgMax", ["s"], ["idx"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "multi_io",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4]),
         helper.make_tensor_value_info("idx", TensorProto.INT64, [2])],
        [two])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def typed_proto(a, name):
    """A TensorProto with typed fields (float_data, int64_data) instead of raw_data."""
    dt = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64}[a.dtype]
    return helper.make_tensor(name, dt, a.shape, a.flatten().tolist(), raw=False)


def save(sub, tensors, ext):
    d = os.path.join(OUT, sub)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    for name, a in tensors.items():
        if ext == "npy":
            np.save(os.path.join(d, name + ".npy"), a)
        else:
            proto = typed_proto(a, name) if ext == "typed-pb" else numpy_helper.from_array(a, name)
            with open(os.path.join(d, name + ".pb"), "wb") as f:
                f.write(proto.SerializeToString())


def main():
    onnx.save(model(), os.path.join(HERE, "multi_io.onnx"))
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    k = rng.integers(-3, 4, size=(2, 4)).astype(np.int64)
    s = x + k.astype(np.float32)
    y = np.maximum(s * np.float32(2), np.float32(0)).astype(np.float32)
    idx = np.argmax(s, axis=1).astype(np.int64)
    save("input", {"x": x, "k": k}, "npy")
    save("output", {"y": y, "idx": idx}, "npy")
    save("input_pb", {"x": x, "k": k}, "typed-pb")
    save("output_pb", {"y": y, "idx": idx}, "pb")
    wrong = idx.copy()
    wrong[0] = (wrong[0] + 1) % 4
    save("output_wrong_idx", {"y": y, "idx": wrong}, "npy")
    print("y", y.tolist(), "idx", idx.tolist())


if __name__ == "__main__":
    main()
