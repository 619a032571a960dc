#!/usr/bin/python3
"""Single-Conv models for per-layer GFLOP/s (bench/README.md): writes bench/models/conv_*.onnx
and prints each one's GFLOP per run. Measure with
  build/bin/outpost bench bench/models/conv_l1.onnx --threads 1 --runs 50 --json  (min_ms)."""
import os
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
LAYERS = {  # name: (C, M, H=W, k, stride); ResNet-18's 3x3 stages and MobileNetV2-like 1x1s
    "l1": (64, 64, 56, 3, 1), "l3": (256, 256, 14, 3, 1), "l4": (512, 512, 7, 3, 1),
    "pw": (96, 576, 14, 1, 1), "pw56": (24, 144, 56, 1, 1)}

os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(0)
for name, (c, m, hw, k, s) in LAYERS.items():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(rng.random((m, c, k, k), dtype=np.float32), "W")
    node = helper.make_node("Conv", ["x", "W"], ["y"], pads=[k // 2] * 4, strides=[s, s])
    g = helper.make_graph([node], name, [x], [y], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
              os.path.join(OUT, f"conv_{name}.onnx"))
    ho = (hw + 2 * (k // 2) - k) // s + 1
    print(f"conv_{name}: {2 * m * c * k * k * ho * ho / 1e9:.4f} GFLOP")
