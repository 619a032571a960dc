#!/usr/bin/python3
"""Writes Outpost's test models, their ONNX Runtime golden outputs and the hostile models.

Run with Debian's python (torch 1.13, torchvision, sklearn, onnx 1.12):
    /usr/bin/python3 tests/models/make_models.py [--bad-only]
Everything is seeded; random weights only (no downloads). Golden outputs come from ONNX Runtime
(tests/models/ort_reference.js, onnxruntime-node), never from Outpost. See README.md.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
import torch.nn as nn
import torchvision
from onnx import TensorProto, helper, numpy_helper
from torchvision.models.resnet import BasicBlock, ResNet

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
BAD = os.path.join(HERE, "bad")
DATA = os.path.join(HERE, "data")
DIGITS_SPLIT_SEED = 20240611


# ----------------------------------------------------------------------------- builders
# (also used by bench/make_bench_models.py for the full-size variants)

def calibrate_bn(model, shape, batches=4, seed=0):
    """Randomizes BatchNorm affine params and sets running stats from random inputs, so a
    randomly initialised deep network keeps well-scaled activations in eval mode."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        model.train()
        for _ in range(batches):
            model(torch.randn(*shape, generator=g))
    model.eval()
    return model


def mobilenet_v2(width_mult=1.0, num_classes=1000):
    torch.manual_seed(1)
    return torchvision.models.mobilenet_v2(weights=None, width_mult=width_mult,
                                           num_classes=num_classes)


class NarrowResNet(ResNet):
    """torchvision's ResNet-18 layout (BasicBlock, [2, 2, 2, 2]) with configurable widths."""

    def __init__(self, widths=(64, 128, 256, 512), num_classes=1000):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = widths[0], 1, 1, 64
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, widths[0], 2)
        self.layer2 = self._make_layer(BasicBlock, widths[1], 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, widths[2], 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, widths[3], 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def resnet18(width_div=1, num_classes=1000):
    torch.manual_seed(2)
    if width_div == 1:
        return torchvision.models.resnet18(weights=None, num_classes=num_classes)
    return NarrowResNet(tuple(w // width_div for w in (64, 128, 256, 512)), num_classes)


def squeezenet1_1(num_classes=1000):
    torch.manual_seed(3)
    return torchvision.models.squeezenet1_1(weights=None, num_classes=num_classes)


def transformer_block(d_model=256, nhead=4, dim_feedforward=1024):
    torch.manual_seed(4)
    return nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, batch_first=True).eval()


def export(model, dummy, path, opset, input_name="input", output_name="output",
           dynamic_batch=False):
    model.eval()
    axes = {input_name: {0: "N"}, output_name: {0: "N"}} if dynamic_batch else None
    # Grad enabled keeps torch's fused inference fast paths (e.g. the TransformerEncoderLayer
    # native kernel, which has no ONNX symbolic) out of the trace.
    with torch.enable_grad():
        torch.onnx.export(model, dummy, path, opset_version=opset, do_constant_folding=True,
                          input_names=[input_name], output_names=[output_name],
                          dynamic_axes=axes)
    onnx.checker.check_model(onnx.load(path))
    return path


# ----------------------------------------------------------------------------- trained models

def make_iris(opsets):
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                        nn.Linear(16, 3))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for _ in range(500):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    model = nn.Sequential(net, nn.Softmax(dim=1)).eval()
    with torch.no_grad():
        acc = (model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean()
    print(f"iris_mlp: test accuracy {acc * 100:.2f}% on {len(yte)} samples")
    for opset in opsets:
        name = "iris_mlp" if opset == 13 else f"iris_mlp_opset{opset}"
        export(model, torch.from_numpy(xte[:2]), os.path.join(HERE, name + ".onnx"), opset,
               output_name="probabilities", dynamic_batch=True)
        golden_input(name, xte)
    return {"iris_test_accuracy": float(acc)}


class DigitsCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 16x4x4
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))  # 32x2x2
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(128, 64), nn.ReLU(),
                                        nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def make_digits(opsets):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=DIGITS_SPLIT_SEED,
                                          stratify=y)
    torch.manual_seed(0)
    model = DigitsCnn()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for _ in range(40):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(xte)).argmax(1).numpy()
    acc = float((pred == yte).mean())
    print(f"digits_cnn: held-out test accuracy {acc * 100:.2f}% on {len(yte)} samples "
          f"(split seed {DIGITS_SPLIT_SEED})")
    os.makedirs(DATA, exist_ok=True)
    np.save(os.path.join(DATA, "digits_test_x.npy"), xte)
    np.save(os.path.join(DATA, "digits_test_y.npy"), yte.astype(np.int64))
    for opset in opsets:
        name = "digits_cnn" if opset == 13 else f"digits_cnn_opset{opset}"
        export(model, torch.from_numpy(xte[:2]), os.path.join(HERE, name + ".onnx"), opset,
               output_name="logits", dynamic_batch=True)
        golden_input(name, xte[:32])
    return {"digits_test_accuracy": acc, "digits_torch_predictions": pred,
            "digits_test_samples": len(yte)}


# ----------------------------------------------------------------------------- goldens

_jobs = []


def golden_input(name, *arrays):
    d = os.path.join(GOLDEN, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    paths = []
    for k, a in enumerate(arrays):
        p = os.path.join(d, f"input_{k}.npy")
        np.save(p, np.ascontiguousarray(a))
        paths.append(p)
    _jobs.append({"model": os.path.join(HERE, name + ".onnx"), "out_dir": d, "inputs": paths})


def random_input(name, shape, seed):
    golden_input(name, np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


def run_ort():
    if not os.path.isdir(os.path.join(HERE, "node_modules", "onnxruntime-node")):
        subprocess.check_call(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund"],
                              cwd=HERE)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(_jobs, f)
    try:
        subprocess.check_call(["node", os.path.join(HERE, "ort_reference.js"), "--jobs", f.name])
    finally:
        os.unlink(f.name)
    _jobs.clear()


# ----------------------------------------------------------------------------- other exporters

def save(model, name, opset):
    model.opset_import[0].version = opset
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, name + ".onnx"))


def init(name, arr):
    return numpy_helper.from_array(np.ascontiguousarray(arr), name)


def make_qdq_small():
    """qdq_small.onnx: a QDQ graph as ONNX Runtime's quantizer writes it (uint8 activations, int8
    per-channel weights, int32 bias): Q -> DQ -> Conv -> Relu -> Q -> DQ -> MaxPool -> Q -> DQ ->
    Add(residual) -> Q -> DQ. For `outpost inspect` (tests/cli); no golden (the fusion's numbers
    are checked in tests/engine/fuse_qdq_test.cpp)."""
    rng = np.random.default_rng(7)
    w = rng.integers(-127, 128, (4, 4, 3, 3)).astype(np.int8)
    ws = np.array([0.01, 0.02, 0.015, 0.005], np.float32)
    xs, ys = np.float32(0.02), np.float32(0.04)
    def scalar(name, v):  # 0-d (init() would make it 1-D, which ONNX Runtime's QLinearAdd refuses)
        return numpy_helper.from_array(np.array(v), name)

    inits = [scalar("xs", xs), scalar("xz", np.uint8(128)), scalar("ys", ys), scalar("yz", np.uint8(0)),
             init("w", w), init("ws", ws), init("wz", np.zeros(4, np.int8)),
             init("b", rng.integers(-500, 500, 4).astype(np.int32)), init("bs", (xs * ws).astype(np.float32)),
             init("bz", np.zeros(4, np.int32))]
    n = helper.make_node
    nodes = [
        n("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="quant_input"),
        n("DequantizeLinear", ["xq", "xs", "xz"], ["xf"], name="dq_x"),
        n("DequantizeLinear", ["w", "ws", "wz"], ["wf"], name="dq_w", axis=0),
        n("DequantizeLinear", ["b", "bs", "bz"], ["bf"], name="dq_b", axis=0),
        n("Conv", ["xf", "wf", "bf"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        n("Relu", ["c"], ["r"], name="relu"),
        n("QuantizeLinear", ["r", "ys", "yz"], ["rq"], name="q_relu"),
        n("DequantizeLinear", ["rq", "ys", "yz"], ["rf"], name="dq_relu"),
        n("MaxPool", ["rf"], ["p"], name="pool", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("QuantizeLinear", ["p", "ys", "yz"], ["pq"], name="q_pool"),
        n("DequantizeLinear", ["pq", "ys", "yz"], ["pf"], name="dq_pool"),
        n("DequantizeLinear", ["xq", "xs", "xz"], ["xf2"], name="dq_x2"),
        n("Add", ["pf", "xf2"], ["s"], name="residual"),
        n("QuantizeLinear", ["s", "ys", "yz"], ["sq"], name="q_sum"),
        n("DequantizeLinear", ["sq", "ys", "yz"], ["y"], name="dq_out"),
    ]
    g = helper.make_graph(nodes, "qdq_small",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    save(helper.make_model(g, producer_name="outpost make_models.py"), "qdq_small", 13)


def make_contrib_quant():
    """com.microsoft ops as ONNX Runtime's tools emit them (QOperator format), goldens from ORT:
    qlinear_contrib.onnx (QLinearAdd/Mul with broadcasting, QLinearConcat, QLinearGlobalAveragePool,
    QLinearAveragePool, uint8) and matmul_nbits.onnx (4-bit, block 32, packed zero points, bias)."""
    rng = np.random.default_rng(11)
    def s(name, v):
        return numpy_helper.from_array(np.array(v), name)
    inits = [s("sa", np.float32(0.021)), s("za", np.uint8(120)), s("sb", np.float32(0.034)),
             s("zb", np.uint8(130)), s("sc", np.float32(0.047)), s("zc", np.uint8(125)),
             s("sm", np.float32(0.013)), s("zm", np.uint8(110))]
    def ms(*a, **k):
        return helper.make_node(*a, domain="com.microsoft", **k)
    nodes = [
        ms("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["add"]),
        ms("QLinearMul", ["a", "sa", "za", "b", "sb", "zb", "sm", "zm"], ["mul"]),
        ms("QLinearConcat", ["sc", "zc", "a", "sa", "za", "a2", "sb", "zb"], ["cat"], axis=1),
        ms("QLinearGlobalAveragePool", ["a", "sa", "za", "sc", "zc"], ["gap"], channels_last=0),
        ms("QLinearAveragePool", ["a", "sa", "za", "sc", "zc"], ["ap"], kernel_shape=[3, 3],
           pads=[1, 1, 1, 1], count_include_pad=0),
        ms("QLinearAveragePool", ["a", "sa", "za", "sm", "zm"], ["ap2"], kernel_shape=[2, 2],
           strides=[2, 2], count_include_pad=1),
    ]
    u8 = TensorProto.UINT8
    ins = [helper.make_tensor_value_info("a", u8, [1, 3, 8, 8]),
           helper.make_tensor_value_info("b", u8, [1, 3, 1, 8]),
           helper.make_tensor_value_info("a2", u8, [1, 2, 8, 8])]
    outs = [helper.make_tensor_value_info(o, u8, sh) for o, sh in
            [("add", [1, 3, 8, 8]), ("mul", [1, 3, 8, 8]), ("cat", [1, 5, 8, 8]), ("gap", [1, 3, 1, 1]),
             ("ap", [1, 3, 8, 8]), ("ap2", [1, 3, 4, 4])]]
    m = helper.make_model(helper.make_graph(nodes, "qlinear_contrib", ins, outs, inits),
                          opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    save(m, "qlinear_contrib", 13)
    golden_input("qlinear_contrib", *[rng.integers(0, 256, sh).astype(np.uint8)
                                      for sh in ((1, 3, 8, 8), (1, 3, 1, 8), (1, 2, 8, 8))])

    k, n, block = 96, 24, 32  # three blocks a row: the packed zero points use both nibbles
    kb = k // block
    codes = rng.integers(0, 16, (n, k)).astype(np.uint8).reshape(n, kb, block)
    b = (codes[:, :, 0::2] | (codes[:, :, 1::2] << 4)).astype(np.uint8)
    zps = rng.integers(0, 16, (n, kb)).astype(np.uint8)
    zps = np.concatenate([zps, np.zeros((n, 1), np.uint8)], axis=1)  # pad to an even count
    zp = (zps[:, 0::2] | (zps[:, 1::2] << 4)).astype(np.uint8).reshape(-1)
    inits = [numpy_helper.from_array(b, "b"),
             numpy_helper.from_array((rng.random(n * kb) * 0.1 + 0.01).astype(np.float32), "scales"),
             numpy_helper.from_array(zp, "zp"),
             numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "bias")]
    node = ms("MatMulNBits", ["x", "b", "scales", "zp", "", "bias"], ["y"], K=k, N=n, bits=4,
              block_size=block)
    g = helper.make_graph([node], "matmul_nbits",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, n])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    save(m, "matmul_nbits", 13)
    random_input("matmul_nbits", (2, 5, k), 105)


def make_tf_style():
    """tf2onnx-like: NHWC input, Transpose to NCHW, Conv + ReLU6 as Clip(0, 6) with min/max
    inputs (opset 11), depthwise Conv, Transpose back, Reshape, MatMul + Add, Softmax.
    ':0' value names as TensorFlow emits them."""
    rng = np.random.default_rng(11)
    f32 = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    nodes = [
        helper.make_node("Transpose", ["serving_default_input:0"], ["nchw"], perm=[0, 3, 1, 2],
                         name="input_to_nchw"),
        helper.make_node("Conv", ["nchw", "conv1/kernel", "conv1/bias"], ["conv1"],
                         kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1], name="conv1"),
        helper.make_node("Clip", ["conv1", "relu6/min", "relu6/max"], ["relu6_1"], name="relu6_1"),
        helper.make_node("Conv", ["relu6_1", "dw/kernel", "dw/bias"], ["dw"], group=8,
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="depthwise"),
        helper.make_node("Clip", ["dw", "relu6/min", "relu6/max"], ["relu6_2"], name="relu6_2"),
        helper.make_node("Transpose", ["relu6_2"], ["nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Reshape", ["nhwc", "flatten/shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "dense/kernel"], ["dense_mm"], name="dense/MatMul"),
        helper.make_node("Add", ["dense_mm", "dense/bias"], ["dense"], name="dense/BiasAdd"),
        helper.make_node("Softmax", ["dense"], ["Identity:0"], axis=1, name="softmax"),
    ]
    inits = [init("conv1/kernel", f32(8, 3, 3, 3)), init("conv1/bias", f32(8)),
             init("relu6/min", np.array(0, np.float32)), init("relu6/max", np.array(6, np.float32)),
             init("dw/kernel", f32(8, 1, 3, 3)), init("dw/bias", f32(8)),
             init("flatten/shape", np.array([-1, 16 * 16 * 8], np.int64)),
             init("dense/kernel", f32(16 * 16 * 8, 10) * 0.1), init("dense/bias", f32(10))]
    g = helper.make_graph(
        nodes, "tf2onnx", [helper.make_tensor_value_info("serving_default_input:0",
                                                         TensorProto.FLOAT, ["unk__1", 32, 32, 3])],
        [helper.make_tensor_value_info("Identity:0", TensorProto.FLOAT, ["unk__2", 10])], inits)
    m = helper.make_model(g, producer_name="tf2onnx", producer_version="1.9.3")
    save(m, "tf_style_nhwc", 11)
    random_input("tf_style_nhwc", (2, 32, 32, 3), 11)


def make_paddle_style():
    """paddle2onnx-like, opset 10: Conv, explicit BatchNormalization, Relu, MaxPool, Dropout
    (inference: identity), Flatten, Gemm(transB=1), Softmax; symbolic batch named '-1'-style."""
    rng = np.random.default_rng(10)
    f32 = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "conv2d_0.w_0"], ["conv2d_0.tmp_0"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1),
        helper.make_node("BatchNormalization",
                         ["conv2d_0.tmp_0", "bn_0.w_0", "bn_0.b_0", "bn_0.w_1", "bn_0.w_2"],
                         ["bn_0.tmp_0"], epsilon=1e-5, momentum=0.9),
        helper.make_node("Relu", ["bn_0.tmp_0"], ["relu_0.tmp_0"]),
        helper.make_node("MaxPool", ["relu_0.tmp_0"], ["pool2d_0.tmp_0"], kernel_shape=[2, 2],
                         strides=[2, 2], pads=[0, 0, 0, 0]),
        helper.make_node("Dropout", ["pool2d_0.tmp_0"], ["dropout_0.tmp_0"], ratio=0.5),
        helper.make_node("Flatten", ["dropout_0.tmp_0"], ["flatten_0.tmp_0"], axis=1),
        helper.make_node("Gemm", ["flatten_0.tmp_0", "fc_0.w_0", "fc_0.b_0"], ["fc_0.tmp_1"],
                         alpha=1.0, beta=1.0, transA=0, transB=1),
        helper.make_node("Softmax", ["fc_0.tmp_1"], ["softmax_0.tmp_0"], axis=1),
    ]
    inits = [init("conv2d_0.w_0", f32(6, 1, 3, 3)),
             init("bn_0.w_0", (1 + rng.random(6)).astype(np.float32)), init("bn_0.b_0", f32(6)),
             init("bn_0.w_1", f32(6)), init("bn_0.w_2", (0.5 + rng.random(6)).astype(np.float32)),
             init("fc_0.w_0", f32(5, 6 * 8 * 8) * 0.2), init("fc_0.b_0", f32(5))]
    g = helper.make_graph(
        nodes, "paddle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 1, 16, 16])],
        [helper.make_tensor_value_info("softmax_0.tmp_0", TensorProto.FLOAT, [-1, 5])], inits)
    # paddle2onnx declares -1 for unknown dims; onnx stores it as dim_value -1, which the spec
    # does not allow: rewrite it as a symbolic dim like newer paddle2onnx versions do.
    for vi in list(g.input) + list(g.output):
        d = vi.type.tensor_type.shape.dim[0]
        d.ClearField("dim_value")
        d.dim_param = "batch_size"
    m = helper.make_model(g, producer_name="PaddlePaddle", producer_version="2.4")
    m.ir_version = 5
    save(m, "paddle_style", 10)
    random_input("paddle_style", (3, 1, 16, 16), 10)


# ----------------------------------------------------------------------------- hostile models

def tiny_graph(nodes, inputs=("x",), outputs=("y",), inits=(), name="bad"):
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [2])  # noqa: E731
    return helper.make_graph(nodes, name, [vi(i) for i in inputs], [vi(o) for o in outputs],
                             list(inits))


def write_bad(name, model_or_bytes, opset=13):
    if not isinstance(model_or_bytes, bytes):
        if model_or_bytes.opset_import:
            model_or_bytes.opset_import[0].version = opset
        model_or_bytes = model_or_bytes.SerializeToString()
    with open(os.path.join(BAD, name + ".onnx"), "wb") as f:
        f.write(model_or_bytes)


def make_bad_models():
    shutil.rmtree(BAD, ignore_errors=True)
    os.makedirs(BAD)
    good = open(os.path.join(HERE, "digits_cnn.onnx"), "rb").read()
    write_bad("truncated", good[:len(good) // 2])
    write_bad("not_onnx", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR this is a picture, not a model\n")
    write_bad("empty", b"")
    mk = lambda g: helper.make_model(g, producer_name="outpost-bad")  # noqa: E731
    write_bad("unknown_op", mk(tiny_graph([
        helper.make_node("Relu", ["x"], ["a"], name="ok_relu"),
        helper.make_node("FrobnicateTensor", ["a"], ["b"], name="frob1"),
        helper.make_node("Teleport", ["b"], ["y"], name="teleport1")])))
    write_bad("opset99", mk(tiny_graph([helper.make_node("Relu", ["x"], ["y"])])), opset=99)
    write_bad("cycle", mk(tiny_graph([
        helper.make_node("Add", ["x", "c"], ["a"], name="cyc_add"),
        helper.make_node("Relu", ["a"], ["b"], name="cyc_relu"),
        helper.make_node("Neg", ["b"], ["c"], name="cyc_neg"),
        helper.make_node("Identity", ["b"], ["y"], name="out")])))
    write_bad("dangling_input", mk(tiny_graph([
        helper.make_node("Add", ["x", "ghost_value"], ["y"], name="haunted_add")])))
    huge = TensorProto(name="huge_weight", data_type=TensorProto.FLOAT, dims=[2**40, 2**40])
    write_bad("huge_dims", mk(tiny_graph([helper.make_node("Add", ["x", "huge_weight"], ["y"])],
                                         inits=[huge])))
    neg = TensorProto(name="negative_weight", data_type=TensorProto.FLOAT, dims=[-3, 4])
    write_bad("negative_dims", mk(tiny_graph(
        [helper.make_node("Add", ["x", "negative_weight"], ["y"])], inits=[neg])))

    def external(tname, location, nbytes_needed, offset=0):
        t = TensorProto(name=tname, data_type=TensorProto.FLOAT, dims=[nbytes_needed // 4])
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", str(offset))):
            e = t.external_data.add()
            e.key, e.value = k, v
        return mk(tiny_graph([helper.make_node("Add", ["x", tname], ["y"])], inits=[t]))

    write_bad("external_passwd", external("stolen", "../../etc/passwd", 8))
    with open(os.path.join(BAD, "external_short.bin"), "wb") as f:
        f.write(np.arange(16, dtype=np.float32).tobytes())  # 64 bytes
    write_bad("external_past_end", external("short_weight", "external_short.bin", 4096, 32))

    # If nested 20 deep: each then-branch holds the next If, each else-branch is a leaf.
    def leaf(out):
        return helper.make_graph([helper.make_node("Identity", ["x"], [out])], "leaf", [],
                                 [helper.make_tensor_value_info(out, TensorProto.FLOAT, [2])])

    def nested(depth):
        out = f"y{depth}"
        if depth == 0:
            return leaf(out)
        node = helper.make_node("If", ["cond"], [out], then_branch=nested(depth - 1),
                                else_branch=leaf(out), name=f"if_depth_{depth}")
        return helper.make_graph([node], f"level{depth}", [],
                                 [helper.make_tensor_value_info(out, TensorProto.FLOAT, [2])])
    top = nested(20)
    g = helper.make_graph(list(top.node), "deep_if",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                           helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                          [helper.make_tensor_value_info("y20", TensorProto.FLOAT, [2])])
    write_bad("deep_if", mk(g))


# ----------------------------------------------------------------------------- main

def main():
    if "--bad-only" in sys.argv:  # just the hostile files (needs digits_cnn.onnx)
        return make_bad_models()
    torch.set_num_threads(1)  # spinning OpenMP threads crawl on a loaded machine
    os.makedirs(GOLDEN, exist_ok=True)
    info = make_iris([13, 9])
    digits = make_digits([13, 17])

    # Narrow variants of the benchmark architectures (committed; < 5 MB each).
    m = calibrate_bn(mobilenet_v2(0.25, num_classes=100), (8, 3, 96, 96))
    for opset in (13, 9):
        name = "mobilenet_v2" if opset == 13 else f"mobilenet_v2_opset{opset}"
        export(m, torch.randn(1, 3, 96, 96), os.path.join(HERE, name + ".onnx"), opset)
        random_input(name, (1, 3, 96, 96), 100)
    export(calibrate_bn(resnet18(width_div=4), (8, 3, 64, 64)), torch.randn(1, 3, 64, 64),
           os.path.join(HERE, "resnet18.onnx"), 13)
    random_input("resnet18", (1, 3, 64, 64), 101)
    export(squeezenet1_1(num_classes=100), torch.randn(1, 3, 64, 64),
           os.path.join(HERE, "squeezenet1_1.onnx"), 13)
    random_input("squeezenet1_1", (1, 3, 64, 64), 102)
    export(transformer_block(), torch.randn(1, 128, 256),
           os.path.join(HERE, "transformer_block.onnx"), 14)
    random_input("transformer_block", (1, 128, 256), 103)
    # Opset 17 exports LayerNorm as LayerNormalization: a smaller block keeps the file small.
    export(transformer_block(64, 4, 256), torch.randn(1, 32, 64),
           os.path.join(HERE, "transformer_small_opset17.onnx"), 17)
    random_input("transformer_small_opset17", (1, 32, 64), 104)

    make_tf_style()
    make_paddle_style()
    make_qdq_small()
    make_contrib_quant()

    # ORT's logits over the whole held-out digits split, for the accuracy test.
    split_dir = os.path.join(GOLDEN, "digits_cnn_split")
    _jobs.append({"model": os.path.join(HERE, "digits_cnn.onnx"), "out_dir": split_dir,
                  "inputs": [os.path.join(DATA, "digits_test_x.npy")]})
    run_ort()
    ort_logits = np.load(os.path.join(split_dir, "output_0.npy"))
    y = np.load(os.path.join(DATA, "digits_test_y.npy"))
    ort_acc = float((ort_logits.argmax(1) == y).mean())
    agree = float((ort_logits.argmax(1) == digits["digits_torch_predictions"]).mean())
    print(f"digits_cnn: ONNX Runtime accuracy {ort_acc * 100:.2f}%, agrees with torch on "
          f"{agree * 100:.2f}% of samples")
    with open(os.path.join(HERE, "digits_cnn.json"), "w") as f:
        json.dump({"split_seed": DIGITS_SPLIT_SEED, "test_fraction": 0.25,
                   "test_samples": digits["digits_test_samples"],
                   "torch_test_accuracy": round(digits["digits_test_accuracy"], 6),
                   "ort_test_accuracy": round(ort_acc, 6),
                   "iris_test_accuracy": round(info["iris_test_accuracy"], 6)}, f, indent=2)
        f.write("\n")

    make_bad_models()
    for fn in sorted(os.listdir(HERE)):
        if fn.endswith(".onnx"):
            print(f"  {fn}: {os.path.getsize(os.path.join(HERE, fn)) / 1e6:.2f} MB")


if __name__ == "__main__":
    sys.exit(main())
