"""evaluate: every seed of one experiment on the test split -> metrics/<experiment>.json
(mean, std and 95% interval across seeds), per-run scores and per-image predictions.

Usage: python -m stages.evaluate <experiment>
"""
import csv
import os
import sys

import numpy as np

from initstudy.data import PREPARED, load_manifest, make_dataset
from initstudy.files import atomic, read_json, write_json
from initstudy.params import load_params, run_stage, validate_experiment, validate_seeds
from initstudy.stats import summarize


def score(model, dataset):
    import keras

    logits, labels = [], []
    for images, batch_labels in dataset:
        logits.append(model(images, training=False).numpy())
        labels.append(batch_labels.numpy())
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    predicted = logits.argmax(axis=1)
    return labels, predicted, float((predicted == labels).mean()), float(loss)


def r4(x):
    return None if x is None else round(x, 4)


def main():
    name = sys.argv[1]
    params = load_params()
    validate_experiment(params, name)
    seeds = validate_seeds(params)
    manifest = load_manifest(PREPARED)
    classes = manifest["classes"]
    out = os.path.join("eval", name)
    os.makedirs(os.path.join(out, "predictions"), exist_ok=True)

    import keras

    test_ds = make_dataset(PREPARED, manifest, "test", params["train"]["batch_size"])
    runs = []
    for seed in seeds:
        folder = os.path.join("models", name, f"seed{seed}")
        trained = read_json(os.path.join(folder, "history.json"))
        last = trained["last_finite"] or {}
        run = {"seed": seed, "diverged": trained["diverged"],
               "diverged_epoch": trained["diverged_epoch"], "epochs": trained["epochs"],
               "train_accuracy": last.get("accuracy"), "train_loss": last.get("loss"),
               "test_accuracy": None, "test_loss": None,
               "train_seconds": trained["train_seconds"],
               "images_per_second": trained["images_per_second"], **trained["settings"]}
        if not trained["diverged"]:  # a diverged model's NaN logits would score as garbage
            model = keras.models.load_model(os.path.join(folder, "model.keras"))
            labels, predicted, run["test_accuracy"], run["test_loss"] = score(model, test_ds)
            path = os.path.join(out, "predictions", f"seed{seed}.csv")
            with atomic(path) as tmp, open(tmp, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["actual", "predicted"])
                writer.writerows((classes[a], classes[p]) for a, p in zip(labels, predicted))
        runs.append(run)
        state = f"diverged in epoch {run['diverged_epoch']}" if run["diverged"] else \
            f"test accuracy {run['test_accuracy']:.4f}, loss {run['test_loss']:.4f}"
        print(f"{name} seed {seed}: {state}")
    write_json(os.path.join(out, "runs.json"), runs)

    finite = [r for r in runs if not r["diverged"]]
    metrics = {}
    for key in ("test_accuracy", "test_loss"):
        s = summarize([r[key] for r in finite])
        metrics.update({key: r4(s["mean"]), f"{key}_std": r4(s["std"]),
                        f"{key}_ci95_low": r4(s["ci_low"]), f"{key}_ci95_high": r4(s["ci_high"])})
    for key in ("train_accuracy", "train_loss"):
        metrics[key] = r4(summarize([r[key] for r in finite])["mean"])
    metrics.update(epochs=max(r["epochs"] for r in runs), seeds=len(runs),
                   diverged=sum(r["diverged"] for r in runs))
    # how the runs were trained (same for every seed of one experiment on one machine)
    metrics.update({k: runs[0][k] for k in ("device", "precision", "jit_compile",
                                            "steps_per_execution", "deterministic")})
    os.makedirs("metrics", exist_ok=True)
    write_json(os.path.join("metrics", f"{name}.json"), metrics)
    # Timings never repeat bit for bit, so they stay out of the git-tracked metrics/ (which
    # `dvc repro --force` must leave unchanged); DVC still shows them as metrics.
    write_json(os.path.join(out, "speed.json"), {
        key: r4(summarize([r[key] for r in runs])["mean"])
        for key in ("train_seconds", "images_per_second")})


if __name__ == "__main__":
    run_stage(main)
