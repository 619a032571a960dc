#!/usr/bin/python3
"""Writes the full-size benchmark models into bench/models/ (gitignored), on demand.

    /usr/bin/python3 bench/make_bench_models.py [--force]

Same architectures and seeds as tests/models/make_models.py, at full width and 224x224:
MobileNetV2 (width 1.0), ResNet-18, SqueezeNet 1.1 (1000 classes, random weights, BatchNorm
statistics calibrated on random inputs) and the transformer encoder block (d_model 256, 4 heads,
FFN 1024, sequence 128). ONNX opset 13 (14 for the transformer), constant folding on.
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "models"))
import make_models as mm  # noqa: E402

OUT = os.path.join(HERE, "models")
MODELS = {
    "mobilenet_v2": lambda: (mm.calibrate_bn(mm.mobilenet_v2(), (4, 3, 224, 224)),
                             (1, 3, 224, 224), 13),
    "resnet18": lambda: (mm.calibrate_bn(mm.resnet18(), (4, 3, 224, 224)), (1, 3, 224, 224), 13),
    "squeezenet1_1": lambda: (mm.squeezenet1_1(), (1, 3, 224, 224), 13),
    "transformer_block": lambda: (mm.transformer_block(), (1, 128, 256), 14),
}


def main():
    force = "--force" in sys.argv
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)  # spinning OpenMP threads crawl on a loaded machine
    for name, build in MODELS.items():
        path = os.path.join(OUT, name + ".onnx")
        if os.path.exists(path) and not force:
            continue
        model, shape, opset = build()
        mm.export(model, torch.randn(*shape), path, opset)
        print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
