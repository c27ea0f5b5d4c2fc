"""evaluate: one trained experiment on the test split -> metrics/<experiment>.json + predictions.

Usage: python -m stages.evaluate <experiment>
"""
import csv
import json
import os
import sys

import numpy as np

from initstudy.data import load_manifest, make_dataset
from initstudy.params import load_params, run_stage, validate_experiment

PREPARED = "data/prepared"


def main():
    name = sys.argv[1]
    params = load_params()
    validate_experiment(params, name)
    manifest = load_manifest(PREPARED)
    with open(os.path.join("models", name, "history.json")) as f:
        trained = json.load(f)

    import keras

    model = keras.models.load_model(os.path.join("models", name, "model.keras"))
    test_ds = make_dataset(PREPARED, manifest, "test", params["train"]["batch_size"])
    logits, labels = [], []
    for images, batch_labels in test_ds:
        logits.append(model(images, training=False).numpy())
        labels.append(batch_labels.numpy())
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    predicted = logits.argmax(axis=1)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)

    last = trained["history"][-1]
    metrics = {
        "test_accuracy": round(float((predicted == labels).mean()), 4),
        "test_loss": round(float(loss), 4),
        "train_accuracy": round(last["accuracy"], 4),
        "train_loss": round(last["loss"], 4),
        "epochs": trained["epochs"],
        "train_seconds": round(trained["train_seconds"], 1),
        "images_per_second": round(trained["images_per_second"], 1),
    }
    os.makedirs("metrics", exist_ok=True)
    with open(os.path.join("metrics", f"{name}.json"), "w") as f:
        json.dump(metrics, f, indent=2)

    # One row per test image, for DVC's confusion-matrix template.
    classes = manifest["classes"]
    out = os.path.join("eval", name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "predictions.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows((classes[a], classes[p]) for a, p in zip(labels, predicted))
    print(f"{name}: test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f}")


if __name__ == "__main__":
    run_stage(main)
