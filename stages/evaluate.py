"""evaluate: every seed of one experiment on the test split -> metrics/<experiment>.json
(mean, std and 95% interval across seeds), per-run scores and per-image predictions.

Usage: python -m stages.evaluate <experiment>
"""
import csv
import math
import os
import sys

from initstudy.config import load_study
from initstudy.shards import PREPARED, load_manifest, make_dataset
from initstudy.runner import run_stage
from initstudy.evaluation import experiment_metrics, run_record, score
from initstudy.files import all_or_nothing, atomic, read_json, writable, write_json
from initstudy.paths import BN_RAW, METRICS, eval_dir, metrics_path, run_dir


def write_predictions(path, classes, labels, predicted):
    """The per-image CSV DVC's confusion-matrix plot reads."""
    with atomic(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows((classes[a], classes[p]) for a, p in zip(labels, predicted))


def main():
    study = load_study()
    name = study.experiment(sys.argv[1]).name
    manifest = load_manifest(PREPARED)
    out = eval_dir(name)
    writable(METRICS, os.path.join(out, "predictions"))

    import keras

    from initstudy import batchnorm
    from initstudy.model import ResidualScale  # a layer of ours, for load_model

    test_ds = make_dataset(PREPARED, manifest, "test", study.train.batch_size)
    runs, predictions = [], {}
    for seed in study.train.seeds:
        folder = run_dir(name, seed)
        run = run_record(seed, read_json(os.path.join(folder, "history.json")))
        if not run["diverged"]:  # a diverged model's NaN logits would score as garbage
            model = keras.models.load_model(os.path.join(folder, "model.keras"),
                                            custom_objects={"ResidualScale": ResidualScale})
            # the model carries the statistics its training scored with (precise BN);
            # the raw ones are those training left, kept beside it
            labels, predicted, accuracy, loss = score(model, test_ds)
            batchnorm.set_statistics(model, batchnorm.load_statistics(
                os.path.join(folder, BN_RAW)))
            _, _, run["test_accuracy_raw"], run["test_loss_raw"] = score(model, test_ds)
            if math.isfinite(loss):
                run["test_accuracy"], run["test_loss"] = accuracy, loss
                predictions[seed] = (labels, predicted)
            else:  # finite training, non-finite test loss: recorded as diverged, not scored
                run["diverged"], run["diverged_epoch"] = True, run["epochs"]
        runs.append(run)
        state = f"diverged in epoch {run['diverged_epoch']}" if run["diverged"] else \
            f"test accuracy {run['test_accuracy']:.4f} (raw BN statistics " \
            f"{run['test_accuracy_raw']:.4f}), loss {run['test_loss']:.4f}"
        print(f"{name} seed {seed}: {state}")
    # every seed's predictions, the runs and the metrics: all or none
    with all_or_nothing() as staged:
        for seed, (labels, predicted) in predictions.items():
            write_predictions(staged(os.path.join(out, "predictions", f"seed{seed}.csv")),
                              manifest["classes"], labels, predicted)
        write_json(staged(os.path.join(out, "runs.json")), runs)
        write_json(staged(metrics_path(name)), experiment_metrics(runs))


if __name__ == "__main__":
    run_stage(main, gpu=True)
