#!/usr/bin/python3
"""Writes the data and models that `outpost quantize` is tested on (tests/quantize).

Run with Debian's python (python3-torch, python3-sklearn, python3-onnx):
    /usr/bin/python3 tests/models/quant/make_quant_data.py
Everything is seeded. See README.md in this folder for what is written and the FP32 figures.

Splits: sklearn's digits (1,797 samples) split exactly like tests/models/make_models.py does
(25% held out, stratified, random_state=20240611), so the committed digits_cnn.onnx, trained on
the other 75%, never saw the test split. The calibration split is 160 samples of the *training*
part. The test split is the whole held-out 25% (450 samples).
"""
import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.dirname(HERE)
DIGITS_SPLIT_SEED = 20240611  # the same split as tests/models/make_models.py
CALIB_SEED = 7
CALIB_SAMPLES = 160


def split():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=DIGITS_SPLIT_SEED,
                                          stratify=y)
    return xtr, xte, ytr.astype(np.int64), yte.astype(np.int64)


def upsample32(x):
    """8x8 digits to 32x32 (bilinear, align_corners=False)."""
    with torch.no_grad():
        return nn.functional.interpolate(torch.from_numpy(x), size=(32, 32), mode="bilinear",
                                         align_corners=False).numpy().astype(np.float32)


def write_samples(folder, x, labels=None):
    """One .npy per sample (a batch of one for the model's single input), sorted names."""
    os.makedirs(folder, exist_ok=True)
    for f in os.listdir(folder):
        if f.endswith(".npy") or f == "labels.txt":
            os.remove(os.path.join(folder, f))
    for i in range(len(x)):
        np.save(os.path.join(folder, f"{i:04d}.npy"), x[i:i + 1])
    if labels is not None:
        with open(os.path.join(folder, "labels.txt"), "w") as f:
            f.write("".join(f"{int(v)}\n" for v in labels))


def train(make, x, y, epochs, lr, seed):
    torch.manual_seed(seed)
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()
    model.eval()
    return model


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def export(model, dummy, path, keep_bn):
    model.eval()
    # PRESERVE with the model in eval mode keeps BatchNormalization nodes (EVAL would fold them
    # into the Conv), so the quantizer's BatchNorm folding has something to do.
    mode = torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(model, dummy, path, opset_version=13, do_constant_folding=not keep_bn,
                      training=mode, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return m


def conv_bn(cin, cout, k, stride, groups=1):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU()]


class DigitsMobileNet(nn.Module):
    """MobileNet-style: a 3x3 stem, then depthwise-separable blocks (3x3 depthwise + BN + ReLU,
    1x1 pointwise + BN + ReLU), global average pooling and a linear classifier. 32x32 input."""

    def __init__(self):
        super().__init__()
        layers = conv_bn(1, 16, 3, 1)                       # 16x32x32
        for cin, cout, s in [(16, 32, 2), (32, 64, 2), (64, 64, 1), (64, 128, 2)]:
            layers += conv_bn(cin, cin, 3, s, groups=cin)   # depthwise
            layers += conv_bn(cin, cout, 1, 1)              # pointwise
        self.features = nn.Sequential(*layers)             # 128x4x4
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(128, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class DigitsMlp(nn.Module):
    """64-256-128-10 MLP (MatMul/Gemm weights, the INT4 block-quantization target)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128),
                                 nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)


def main():
    torch.set_num_threads(1)  # reproducible float sums
    xtr, xte, ytr, yte = split()
    rng = np.random.default_rng(CALIB_SEED)
    calib_idx = np.sort(rng.choice(len(xtr), CALIB_SAMPLES, replace=False))
    xcal = xtr[calib_idx]
    write_samples(os.path.join(HERE, "digits8", "calib"), xcal)
    write_samples(os.path.join(HERE, "digits8", "test"), xte, yte)
    xtr32, xte32, xcal32 = upsample32(xtr), upsample32(xte), upsample32(xcal)
    write_samples(os.path.join(HERE, "digits32", "calib"), xcal32)
    write_samples(os.path.join(HERE, "digits32", "test"), xte32, yte)

    figures = {"split_seed": DIGITS_SPLIT_SEED, "calibration_seed": CALIB_SEED,
               "calibration_samples": CALIB_SAMPLES, "test_samples": int(len(yte))}
    with open(os.path.join(MODELS, "digits_cnn.json")) as f:
        figures["digits_cnn_fp32_test_accuracy"] = json.load(f)["ort_test_accuracy"]

    net = train(DigitsMobileNet, xtr32, ytr, epochs=30, lr=3e-3, seed=1)
    acc = accuracy(net, xte32, yte)
    print(f"digits_mobilenet: FP32 test accuracy {acc * 100:.2f}% on {len(yte)} samples")
    m = export(net, torch.from_numpy(xte32[:2]), os.path.join(HERE, "digits_mobilenet.onnx"),
               keep_bn=True)
    bn = sum(n.op_type == "BatchNormalization" for n in m.graph.node)
    assert bn == 9, f"expected 9 BatchNormalization nodes in the export, found {bn}"
    figures["digits_mobilenet_fp32_test_accuracy"] = round(acc, 6)

    mlp = train(DigitsMlp, xtr, ytr, epochs=60, lr=2e-3, seed=2)
    acc = accuracy(mlp, xte, yte)
    print(f"digits_mlp: FP32 test accuracy {acc * 100:.2f}% on {len(yte)} samples")
    export(mlp, torch.from_numpy(xte[:2]), os.path.join(HERE, "digits_mlp.onnx"), keep_bn=False)
    figures["digits_mlp_fp32_test_accuracy"] = round(acc, 6)

    with open(os.path.join(HERE, "figures.json"), "w") as f:
        json.dump(figures, f, indent=2)
        f.write("\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
