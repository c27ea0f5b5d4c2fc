"""Where a training step's time goes on a CPU: the study's step (he_normal + ReLU6, 32px,
batch 64, float32, BN after every conv) against the same step changed in one way: BN off,
BN through TensorFlow's fused kernel, mixed bfloat16, batch 32, batch 128. Each variant in
a fresh process under the study's CPU settings, one after another; images/s of the faster
of the epochs after the first, and the ratio to the study's. Measures speed only: the
variants train different things (no BN does not learn the same way, a batch changes the
step count), so no accuracy is compared.

Usage: python -m bench.step_cost [--prepared data/prepared] [--epochs 3] [--steps 150]
    [--out bench/results-step-cost.json]
"""
import argparse
import json
import os
import subprocess
import sys

from bench.portability import cpu_name

VARIANTS = {  # name -> (batch_norm, fused BN, precision, batch size)
    "the study's step": (True, False, "float32", 64),
    "BN off": (False, False, "float32", 64),
    "BN as one fused kernel (FusedBatchNormV3)": (True, True, "float32", 64),
    "mixed bfloat16": (True, False, "mixed_bfloat16", 64),
    "batch 32": (True, False, "float32", 32),
    "batch 128": (True, False, "float32", 128),
}


def fused_batch_norm_layer():
    """Keras' BatchNormalization with training-mode batches through FusedBatchNormV3 (one op
    forward, one backward) instead of Keras' moments + batch_normalization ops."""
    import keras
    import tensorflow as tf

    class FusedBatchNormalization(keras.layers.BatchNormalization):
        def call(self, inputs, training=None, mask=None):
            if not (training and self.trainable):
                return super().call(inputs, training=training, mask=mask)
            empty = tf.constant([], tf.float32)
            y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=self.gamma, offset=self.beta, mean=empty, variance=empty,
                epsilon=self.epsilon, exponential_avg_factor=1.0, is_training=True)
            n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
            variance = variance * (n - 1) / n  # the op returns the unbiased one; Keras keeps biased
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1 - m))
            return y

    return FusedBatchNormalization


def train_variant(prepared, name, epochs, steps):
    import keras

    from bench.timer import EpochTimer
    from initstudy import model as model_module
    from initstudy.shards import load_manifest, make_dataset
    from initstudy.device import DeviceSettings, apply
    from initstudy.seeding import make_deterministic

    batch_norm, fused, precision, batch = VARIANTS[name]
    if fused:  # the model builder looks the layer up in keras.layers when it builds
        keras.layers.BatchNormalization = fused_batch_norm_layer()
    apply(DeviceSettings("cpu", precision, False, 1, True))
    manifest = load_manifest(prepared)
    make_deterministic(0)
    model = model_module.build_mobilenet_v2(
        image_size=32, initializer="he_normal", activation="relu6", batch_norm=batch_norm,
        **model_module.data_inputs(manifest))
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = EpochTimer()
    model.fit(make_dataset(prepared, manifest, "train", batch, 0, epochs=(0, epochs)),
              epochs=epochs, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[timer])
    return {"images_per_second": round(steps * batch / min(timer.seconds[1:]), 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", default=os.path.join("data", "prepared"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", default=os.path.join("bench", "results-step-cost.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        raise SystemExit(f"--epochs {args.epochs}: must be at least 2 (the first is warm-up)")
    if args.one:  # child process: one variant, one JSON line on stdout
        from initstudy.device import set_cpu_environment

        set_cpu_environment()
        print(json.dumps(train_variant(args.prepared, args.one, args.epochs, args.steps)))
        return
    results = {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)), "data": args.prepared,
               "epochs": args.epochs, "steps_per_epoch": args.steps, "variants": {}}
    for name in VARIANTS:
        out = subprocess.run([sys.executable, "-m", "bench.step_cost", "--one", name,
                              "--prepared", args.prepared, "--epochs", str(args.epochs),
                              "--steps", str(args.steps)], capture_output=True, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        if out.returncode:
            raise SystemExit(f"{name}: training failed:\n{out.stderr[-2000:]}")
        speed = json.loads(out.stdout.strip().splitlines()[-1])["images_per_second"]
        base = results["variants"].get("the study's step", {}).get("images_per_second", speed)
        results["variants"][name] = {"images_per_second": speed,
                                     "over_the_studys": round(speed / base, 2)}
        print(f"{name:45s} {speed:6.0f} images/s  {speed / base:.2f}x the study's", flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
