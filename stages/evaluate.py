"""evaluate: every seed of one experiment on the test split -> metrics/<experiment>.json
(mean, std and 95% interval across seeds), per-run scores and per-image predictions. Each run
scored the test split itself, where its model already was (models/<experiment>/seed<k>/
test.json): this stage gathers, checks and summarizes, without TensorFlow.

Usage: python -m stages.evaluate <experiment>
"""
import csv
import os
import sys

from initstudy.config import load_study
from initstudy.runner import run_stage
from initstudy.evaluation import experiment_metrics, run_record
from initstudy.errors import StudyError
from initstudy.files import all_or_nothing, atomic, read_json, writable, write_json
from initstudy.paths import METRICS, TEST_SCORES, eval_dir, metrics_path, run_dir


def write_predictions(path, classes, labels, predicted):
    """The per-image CSV DVC's confusion-matrix plot reads."""
    with atomic(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows((classes[a], classes[p]) for a, p in zip(labels, predicted))


def test_scores(folder, experiment):
    """A run's test.json (training.score_test)."""
    path = os.path.join(folder, TEST_SCORES)
    if not os.path.exists(path):
        raise StudyError(f"{path} is missing (a run trained before runs scored the test split "
                         f"themselves?): run `dvc repro --force train@{experiment}`")
    return read_json(path)


def main():
    study = load_study()
    name = study.experiment(sys.argv[1]).name
    out = eval_dir(name)
    writable(METRICS, os.path.join(out, "predictions"))

    runs, predictions = [], {}
    for seed in study.train.seeds:
        folder = run_dir(name, seed)
        run = run_record(seed, read_json(os.path.join(folder, "history.json")))
        if not run["diverged"]:  # a diverged run has no test scores
            scores = test_scores(folder, name)
            run["test_accuracy_raw"] = scores["test_accuracy_raw"]
            run["test_loss_raw"] = scores["test_loss_raw"]
            if scores["test_loss"] is not None:
                run["test_accuracy"], run["test_loss"] = scores["test_accuracy"], scores["test_loss"]
                predictions[seed] = scores
            else:  # finite training, non-finite test loss: recorded as diverged, not scored
                run["diverged"], run["diverged_epoch"] = True, run["epochs"]
        runs.append(run)
        state = f"diverged in epoch {run['diverged_epoch']}" if run["diverged"] else \
            f"test accuracy {run['test_accuracy']:.4f} (raw BN statistics " \
            f"{run['test_accuracy_raw']:.4f}), loss {run['test_loss']:.4f}"
        print(f"{name} seed {seed}: {state}")
    # every seed's predictions, the runs and the metrics: all or none
    with all_or_nothing() as staged:
        for seed, scores in predictions.items():
            write_predictions(staged(os.path.join(out, "predictions", f"seed{seed}.csv")),
                              scores["classes"], scores["labels"], scores["predicted"])
        write_json(staged(os.path.join(out, "runs.json")), runs)
        write_json(staged(metrics_path(name)), experiment_metrics(runs))


if __name__ == "__main__":
    run_stage(main, tensorflow=False)
