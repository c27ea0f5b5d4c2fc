"""Where every stage writes: the one place that spells the pipeline's output paths
(dvc.yaml spells them too, as DVC needs them)."""
import os

MODELS, EVAL, METRICS, REPORT = "models", "eval", "metrics", "report"
STEP0 = os.path.join(METRICS, "step0")
GRID = os.path.join("grid", "cells.tsv")


def run_dir(experiment, seed):
    """One training run's folder: model.keras, history.json, live/ ..."""
    return os.path.join(MODELS, experiment, f"seed{seed}")


# beside a run's model.keras (which carries the precise-BN statistics its scores used): the
# BN statistics as training left them, for the raw scores
BN_RAW = "bn_raw.npz"
# a run's test scores and per-image predictions, written by the run (training.score_test)
TEST_SCORES = "test.json"


# Wall-clock timings never repeat, so they stay out of every DVC output (dvc.lock records
# their hashes) and out of git: logs/<experiment>/ (gitignored) holds each run's.
LOGS = "logs"


def timings_path(experiment, seed=None):
    """A run's timings (logs/<experiment>/seed<k>.json); with no seed, its train stage's."""
    return os.path.join(LOGS, experiment, f"seed{seed}.json" if seed is not None else "train.json")


def stage_timings_path(stage):
    """A stage's last start and end (logs/stages/<stage>.json, e.g. train@he_normal)."""
    return os.path.join(LOGS, "stages", f"{stage}.json")


def eval_dir(experiment):
    return os.path.join(EVAL, experiment)


def metrics_path(experiment):
    return os.path.join(METRICS, f"{experiment}.json")


def step0_path(experiment, ext):
    return os.path.join(STEP0, f"{experiment}.{ext}")


def experiment_results(experiment):
    """An experiment's git-tracked results (persist, cache: false outputs of its step0 and
    evaluate stages): what stays in git when the experiment leaves params.yaml."""
    return [metrics_path(experiment), step0_path(experiment, "json"),
            step0_path(experiment, "tsv")]


def stale_results(experiment_names, root="."):
    """The git-tracked results in `root` of experiments not in `experiment_names`: only files
    of the per-experiment patterns (metrics/<e>.json, metrics/step0/<e>.json|.tsv), sorted."""
    keep = set(experiment_names)
    found = set()
    for folder, extensions in ((METRICS, ("json",)), (STEP0, ("json", "tsv"))):
        try:
            names = os.listdir(os.path.join(root, folder))
        except FileNotFoundError:
            continue
        for name in names:
            experiment, dot, ext = name.rpartition(".")
            path = os.path.join(folder, name)
            if (dot and experiment and not experiment.startswith(".") and ext in extensions
                    and experiment not in keep and path in experiment_results(experiment)
                    and os.path.isfile(os.path.join(root, path))):
                found.add(path)
    return sorted(found)


def remove_stale_results(experiment_names, root="."):
    """Deletes stale_results(...) (so that the next commit drops them and `dvc metrics show`
    no longer reports removed experiments); returns the paths it removed."""
    removed = stale_results(experiment_names, root)
    for path in removed:
        os.remove(os.path.join(root, path))
    return removed
