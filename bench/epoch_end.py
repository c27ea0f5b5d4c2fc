"""What a run does beside its training steps, alone in one process: scoring (validation and
the training subset), precise BN eagerly (batch by batch, as before) and compiled (what
initstudy/batchnorm.py does), and how much the compiled pass moves the scores. The model is
he_normal + ReLU6 after `--steps` training steps of seed 0, on the prepared data.

Usage: python -m bench.epoch_end [--steps 300] [--out bench/results-epoch-end.json]
"""
import argparse
import json
import os
import sys
import tempfile
import time

from bench.portability import cpu_name


def recalibrate_eagerly(model, dataset):
    """Precise BN as the study did it before: a running average in float32, batch by batch."""
    from initstudy.batchnorm import batch_norm_layers

    layers = batch_norm_layers(model)
    momenta = [layer.momentum for layer in layers]
    for count, (images, _) in enumerate(dataset):
        for layer in layers:
            layer.momentum = count / (count + 1)
        model(images, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def measure(steps):
    from initstudy import batchnorm, device, training
    from initstudy.config import load_study
    from initstudy.evaluation import score
    from initstudy.shards import PREPARED, load_manifest, make_dataset

    device.set_cpu_environment()
    device.start_tensorflow()
    study, manifest = load_study(), load_manifest(PREPARED)
    run = training.start_run(study, study.experiment("he_normal"), 0, manifest,
                             tempfile.mkdtemp())  # nothing is written there
    training.build_and_compile(run)
    train, model = study.train, run.model
    model.fit(make_dataset(PREPARED, manifest, "train", train.batch_size, 0, epochs=(0, 1)),
              epochs=1, steps_per_epoch=steps, verbose=0)
    validation = make_dataset(PREPARED, manifest, "validation", train.batch_size)
    subset = make_dataset(PREPARED, manifest, "train", train.batch_size,
                          limit=train.inference_images)
    bn = training.precise_bn_batches(manifest, train)
    score(model, validation)  # traces the predict function
    result = {"steps": steps, "kernels": device.kernels(),
              "scoring_seconds": {"validation": timed(score, model, validation)[0],
                                  "training subset": timed(score, model, subset)[0]}}
    raw = batchnorm.statistics(model)
    eager = [timed(recalibrate_eagerly, model, bn)[0] for _ in range(2)]
    _, eager_predicted, eager_accuracy, eager_loss = score(model, validation)
    batchnorm.set_statistics(model, raw)
    compiled = [timed(batchnorm.recalibrate, model, bn)[0] for _ in range(2)]
    _, compiled_predicted, compiled_accuracy, compiled_loss = score(model, validation)
    result.update(
        precise_bn_seconds={"eager": eager, "compiled (first: tracing)": compiled},
        validation={"eager": [eager_accuracy, eager_loss],
                    "compiled": [compiled_accuracy, compiled_loss],
                    "predictions_differing": int((eager_predicted != compiled_predicted).sum()),
                    "images": len(compiled_predicted)})
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default=os.path.join("bench", "results-epoch-end.json"))
    args = parser.parse_args()
    result = {"command": " ".join(["python -m bench.epoch_end", *sys.argv[1:]]),
              "cpu": cpu_name(), **measure(args.steps)}
    for key in ("scoring_seconds", "precise_bn_seconds", "validation"):
        print(f"{key}: {result[key]}")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
