"""Speed benchmark: input pipeline, training on it, the synthetic ceiling and a naive
tfds-style baseline, at 32px and 224px, each measured in its own process (peak memory).

Usage: python -m bench.benchmark [--sizes 32 224] [--out bench/results-cpu.json]
Needs a prepared data set (dvc repro prepare). Prints a table and writes JSON.
"""
import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time

from initstudy.config import load_study
from initstudy.shards import PREPARED, record_features, shard_paths
from initstudy.device import DeviceSettings
from tools.dvc import dvc, dvc_json


# ---------------------------------------------------------------- one measurement
def naive_dataset(manifest, split, batch_size, size):
    """What the seed's kind of input code does: per-example parse, decode and resize to the
    training size on the CPU (float32 at 224x224: 600 KB per image), then batch."""
    import tensorflow as tf

    files = shard_paths(PREPARED, manifest, split)
    shape = manifest["image_shape"]
    features = record_features()

    def one(serialized):
        ex = tf.io.parse_single_example(serialized, features)
        image = tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8), shape)
        return tf.image.resize(tf.cast(image, tf.float32), (size, size)), ex["label"]

    return tf.data.TFRecordDataset(files).map(one).batch(batch_size).repeat()


def images_per_second(dataset, batch_size, seconds, warmup=5):
    it = iter(dataset)
    for _ in range(warmup):
        next(it)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(it)
        n += batch_size
    return n / (time.perf_counter() - start)


def train_speed(model_input, size, batch_size, steps, manifest, settings):
    """images/s of model.fit over `steps` steps, after one warm-up epoch (compilation)."""
    import keras

    from initstudy import device
    from initstudy.model import build_mobilenet_v2, data_inputs

    device.apply(settings)
    naive = model_input == "naive"
    inputs = data_inputs(manifest)
    if naive:  # the naive pipeline resizes on the CPU and ships float32
        inputs["input_size"] = size
    model = build_mobilenet_v2(image_size=size, initializer="he_normal", activation="relu6",
                               input_dtype="float32" if naive else "uint8", **inputs)
    model.compile(keras.optimizers.SGD(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=settings.jit_compile,
                  steps_per_execution=settings.steps_per_execution)
    from bench.timer import EpochTimer

    timer = EpochTimer()
    model.fit(model_input_dataset(model_input, manifest, batch_size, size), epochs=2,
              steps_per_epoch=steps, callbacks=[timer], verbose=0)
    return steps * batch_size / timer.seconds[-1]


def model_input_dataset(kind, manifest, batch_size, size):
    import tensorflow as tf

    from initstudy.shards import make_dataset

    if kind == "real":
        return make_dataset(PREPARED, manifest, "train", batch_size, 0, epochs=(0, 20))
    if kind == "naive":
        return naive_dataset(manifest, "train", batch_size, size)
    images, labels = next(iter(make_dataset(PREPARED, manifest, "train", batch_size)))
    return tf.data.Dataset.from_tensors((images, labels)).repeat()  # synthetic, in memory


def measure(kind, size, batch_size, steps, seconds, settings):
    from initstudy.shards import load_manifest, make_dataset

    manifest = load_manifest(PREPARED)
    if kind == "pipeline":
        ds = make_dataset(PREPARED, manifest, "train", batch_size, 0, epochs=(0, 20))
        return images_per_second(ds, batch_size, seconds)
    if kind == "naive_pipeline":
        return images_per_second(naive_dataset(manifest, "train", batch_size, size),
                                 batch_size, seconds)
    model_input = {"train": "real", "synthetic": "synthetic", "naive_train": "naive"}[kind]
    return train_speed(model_input, size, batch_size, steps, manifest, settings)


# ---------------------------------------------------------------- driver
def peak_rss_mb(kind, size, args, steps, settings):
    """Runs one measurement in its own process; returns its result and peak RSS."""
    cmd = [sys.executable, "-m", "bench.benchmark", "--one", kind, "--size", str(size),
           "--steps", str(steps), "--batch-size", str(args.batch_size),
           "--seconds", str(args.seconds), "--settings", json.dumps(dataclasses.asdict(settings))]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    if status:
        raise SystemExit(f"{kind} at {size}px failed:\n{err[-2000:]}")
    return float(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def ratio(row, a, b):
    if a not in row or b not in row:
        return None
    return round(row[a]["images_per_second"] / row[b]["images_per_second"], 3)


def noop_repro_seconds():
    if dvc_json("status"):
        return None  # the pipeline is not up to date here: a repro would do real work
    start = time.perf_counter()
    dvc("repro")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, nargs="+", default=None,
                        help="training steps per size (default: 40 at <=64px, 4 above on a CPU)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per pipeline measurement")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--jit-compile", default="auto")
    parser.add_argument("--skip", nargs="*", default=[], help="measurements to leave out")
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch_size is None:
        args.batch_size = load_study().train.batch_size
    if args.one:  # child process: one measurement, one number on stdout
        from initstudy.device import set_cpu_environment

        set_cpu_environment()  # the study's CPU thread settings, unless the caller set its own
        print(measure(args.one, args.size, args.batch_size, args.steps[0], args.seconds,
                      DeviceSettings(**json.loads(args.settings))))
        return

    from initstudy import device

    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile.lower()]
    results = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
               "batch_size": args.batch_size, "sizes": {}}
    train = dataclasses.replace(load_study().train, precision=args.precision, jit_compile=jit)
    settings = device.resolve(train)
    for i, size in enumerate(args.sizes):
        steps = args.steps[i] if args.steps else (40 if size <= 64 else 4)
        if settings.device == "gpu" and not args.steps:
            steps = 300
        row = {"settings": dataclasses.asdict(settings), "steps": steps}
        for kind in ("pipeline", "naive_pipeline", "train", "synthetic", "naive_train"):
            if kind in args.skip:
                continue
            speed, peak = peak_rss_mb(kind, size, args, steps, settings)
            row[kind] = {"images_per_second": round(speed, 1), "peak_rss_mb": round(peak)}
            print(f"{size}px {kind:15s} {speed:10.1f} images/s  peak RSS {peak:7.0f} MB",
                  flush=True)

        row["ratios"] = {f"{a}/{b}": ratio(row, a, b) for a, b in (
            ("pipeline", "train"), ("train", "synthetic"), ("pipeline", "naive_pipeline"),
            ("train", "naive_train"))}
        print(f"{size}px ratios: {row['ratios']}", flush=True)
        results["sizes"][str(size)] = row
    if "repro" not in args.skip:
        results["noop_dvc_repro_seconds"] = noop_repro_seconds()
        print(f"no-op dvc repro: {results['noop_dvc_repro_seconds']} s")
    out = args.out or os.path.join("bench", f"results-{settings.device}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
