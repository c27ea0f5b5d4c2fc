"""GPU check: images/s of the study's MobileNetV2 at 224px (uint8 32px input resized inside the
model, as in training) on one GPU, per precision, batch size and steps_per_execution.

The lent GPU machines have no TensorFlow and no network, so this runs the same model code
(initstudy/model.py) under Keras 3 on JAX (XLA) or PyTorch (no XLA), on in-memory batches of
real CIFAR-10 images: it measures the model's training speed, not our tf.data pipeline.
Usage: python3 -m bench.gpu_check <jax|torch> <out.json> [setting ...]
"""
import json
import os
import sys
import time

os.environ["KERAS_BACKEND"] = sys.argv[1]

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.timer import EpochTimer  # noqa: E402
from initstudy.model import build_mobilenet_v2  # noqa: E402

SETTINGS = {  # name: (precision, batch size, steps per execution)
    "fp32-b64": ("float32", 64, 1),
    "bf16-b64-spe16": ("mixed_bfloat16", 64, 16),
    "fp16-b256-spe4": ("mixed_float16", 256, 4),
    "bf16-b256-spe4": ("mixed_bfloat16", 256, 4),
    "fp32-b256-spe4": ("float32", 256, 4),
    "bf16-b256": ("mixed_bfloat16", 256, 1),  # PyTorch's backend allows 1 step per execution
    "fp32-b256": ("float32", 256, 1),
}


def real_images(n):
    """n CIFAR-10 images (uint8 32x32) from the mini archive the tests use."""
    import io
    import tarfile

    from PIL import Image

    images, labels, classes = [], [], {}
    with tarfile.open("tests/data/cifar10-jpeg-mini.tar.gz") as tar:
        for m in tar:
            if m.isfile() and m.name.startswith("train/"):
                cls = m.name.split("/")[1]
                images.append(np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read()))
                                         .convert("RGB")))
                labels.append(classes.setdefault(cls, len(classes)))
    reps = -(-n // len(images))
    return np.concatenate([np.stack(images)] * reps)[:n], np.array(labels * reps)[:n]


def measure(precision, batch, spe, x, y, steps=120):
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = build_mobilenet_v2(10, 224, "he_normal", "relu6", input_size=32)  # CIFAR-10 at 224
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=spe)
    n = batch * steps
    timer = EpochTimer()
    model.fit(x[:n], y[:n], batch_size=batch, epochs=3, verbose=0, callbacks=[timer])
    return {"images_per_second": round(n / min(timer.seconds[1:]), 1),
            "first_epoch_seconds": round(timer.seconds[0], 1)}


def main():
    backend, out, names = sys.argv[1], sys.argv[2], sys.argv[3:] or list(SETTINGS)
    x, y = real_images(256 * 120)
    results = {}
    if os.path.exists(out):
        results = json.load(open(out))
    for name in names:
        precision, batch, spe = SETTINGS[name]
        start = time.perf_counter()
        r = measure(precision, batch, spe, x, y)
        r["wall_seconds"] = round(time.perf_counter() - start, 1)
        results[f"{backend}/{name}"] = r
        print(f"{backend:5s} {name:16s} {r}", flush=True)
        json.dump(results, open(out, "w"), indent=2)


if __name__ == "__main__":
    main()
