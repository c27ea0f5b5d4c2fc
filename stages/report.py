"""report: our results with 95% intervals across seeds and the splits' baselines, the
seed-blocked ANOVA / Tukey analysis of their differences (unblocked one-way ANOVA and
Welch + Holm as sensitivity checks), step-0 and grid verdicts, the reference
study's numbers where they compare, per-epoch curves and plots -> report/."""
import os

import yaml

from initstudy import plots
from initstudy.config import load_study
from initstudy.errors import StudyError
from initstudy.evaluation import mean_curve
from initstudy.files import (all_or_nothing, read_json, read_tsv, writable, write_json,
                             write_text)
from initstudy.formatting import PRECISION, rounded
from initstudy.paths import (GRID, REPORT, eval_dir, metrics_path, remove_stale_results,
                             run_dir, step0_path)
from initstudy.report_text import data_id, results_markdown, results_table, setting_line
from initstudy.runner import run_stage
from initstudy.shards import PREPARED, load_manifest
from initstudy.stats import (accuracy_limits, baselines, inference_baseline, pairwise,
                             seed_analysis)
from initstudy.verdicts import grid_verdicts

OUT = REPORT
REFERENCE = os.path.join("reference", "published.yaml")


def need(path, stage=None):
    """A path this stage reads; missing, it names the stage that writes it (or, for a file
    kept in git, how to restore it)."""
    if not os.path.exists(path):
        raise StudyError(f"{path} is missing: " + (
            f"run `dvc repro {stage}` first (the report reads every experiment's results)"
            if stage else f"it is kept in git; restore it with `git checkout -- {path}`"))
    return path


def load_experiment(experiment):
    # loads Keras: after TensorFlow's quiet start
    from initstudy.updates import mean_updates, unchanged_layers

    name = experiment.name
    runs = read_json(need(os.path.join(eval_dir(name), "runs.json"), f"evaluate@{name}"))
    folders = {r["seed"]: run_dir(name, r["seed"]) for r in runs}
    histories = [read_json(need(os.path.join(folders[r["seed"]], "history.json"),
                                f"train@{name}"))
                 for r in runs if not r["diverged"]]
    updates = [read_tsv(need(os.path.join(folder, "weight_updates.tsv"), f"train@{name}"))
               for folder in folders.values()]
    return {"experiment": name, "initializer": experiment.initializer,
            "activation": experiment.activation, "learning_rate": experiment.learning_rate,
            "metrics": read_json(need(metrics_path(name), f"evaluate@{name}")),
            "runs": runs, "curve": mean_curve(histories), "updates": mean_updates(updates),
            "unchanged": unchanged_layers(updates),
            "step0": read_tsv(need(step0_path(name, "tsv"), f"step0@{name}")),
            "step0_headline": read_json(need(step0_path(name, "json"), f"step0@{name}"))}


def write_report(study, experiments, cells, manifest, reference, staged):
    """Every file of report/, each written to `staged(path)` (files.all_or_nothing: renamed
    into place together once all of them are written); returns the console's table."""
    analysis, tests = analyse(experiments)

    def out(name):
        return staged(os.path.join(OUT, name))

    write_json(out("summary.json"), summary(study, experiments, manifest, analysis, tests))
    # one short column per experiment in `dvc exp show` (README: compare experiments), and
    # one naming the data they were trained on, so runs on different data are told apart
    write_json(out("test_accuracy.json"),
               {"acc": {e["experiment"]: e["metrics"]["test_accuracy"] for e in experiments},
                "data": data_id(manifest)})
    write_json(out("history.json"),
               rounded([{"experiment": e["experiment"], **h}
                        for e in experiments for h in e["curve"]]), 1)
    text = "\n".join(results_markdown(study, manifest, experiments, analysis, tests, reference) + [""] +
                     grid_verdicts(cells, reference["advice"])) + "\n"
    write_text(out("summary.md"), text)
    write_plots(study, experiments, cells, manifest, out)
    return results_table(experiments, accuracy_limits(manifest, study.train.inference_images))


def analyse(experiments):
    """The seed-blocked analysis of the experiments' test accuracies and the pairwise Welch
    tests beside it; runs that diverged left out, and experiments with no run left."""
    # the headline test accuracy (after precise BN where the runs have both), seeds as blocks
    groups = {e["experiment"]: {r["seed"]: r["test_accuracy"] for r in e["runs"]
                                if not r["diverged"]} for e in experiments}
    groups = {k: v for k, v in groups.items() if v}
    return seed_analysis(groups), pairwise({k: list(v.values()) for k, v in groups.items()})


def summary(study, experiments, manifest, analysis, tests):
    """report/summary.json: the settings, the data and its baselines, each experiment's
    metrics and runs, and the analysis, rounded as git-tracked metrics keep them."""
    return rounded({
        "settings": setting_line(study), "precision": PRECISION,
        "data": {k: manifest[k] for k in ("source", "classes", "image_shape")}
        | {"splits": {s: {k: v[k] for k in ("count", "per_class")}
                      for s, v in manifest["splits"].items()}},
        "baselines": baselines(manifest) | {"train_inference": inference_baseline(
            manifest, study.train.inference_images)},
        "experiments": [{"experiment": e["experiment"], "initializer": e["initializer"],
                         "activation": e["activation"], "learning_rate": e["learning_rate"],
                         **e["metrics"],
                         "runs": e["runs"]} for e in experiments],
        "test_accuracy_analysis": analysis,
        "pairwise_welch_test_accuracy": tests})


def write_plots(study, experiments, cells, manifest, out):
    """report/'s figures, each to `out(its file name)`."""
    def png(name):
        return out(name + ".png")

    plots.step0_depth(experiments, png("step0_depth"))
    plots.kernel_std(experiments, study.model.depthwise_fan, png("step0_kernel_std"))
    plots.grid_heatmaps(cells, "signal_ratio", "signal preservation at step 0: last / first "
                        "conv signal std", png("grid_signal"))
    plots.grid_heatmaps(cells, "gradient_ratio", "gradient preservation at step 0: first / last "
                        "conv output-gradient std", png("grid_gradient"))
    plots.weight_updates(experiments, png("weight_updates"))
    plots.curves(experiments, "accuracy", "accuracy", png("accuracy"))
    plots.curves(experiments, "loss", "cross-entropy loss", png("loss"))
    plots.test_accuracy(experiments, baselines(manifest)["test"], png("test_accuracy"))


def load_inputs(study):
    """What the report reads: each experiment's results, the grid's cells, the prepared
    data's manifest and the reference study's numbers; report/ checked writable first."""
    experiments = [load_experiment(e) for e in study.experiments.values()]
    cells = read_tsv(need(GRID, "grid"))
    manifest = load_manifest(PREPARED, verify=False)  # only its counts, classes and source
    writable(OUT)
    with open(need(REFERENCE)) as f:
        reference = yaml.safe_load(f)
    return experiments, cells, manifest, reference


def main():
    study = load_study()
    experiments, cells, manifest, reference = load_inputs(study)
    # all or nothing: a failure anywhere (a table, a figure) leaves every report/ file as it
    # was, so `dvc metrics show` and the report never disagree
    with all_or_nothing() as staged:
        table = write_report(study, experiments, cells, manifest, reference, staged)
    # the results table on the console; everything else is in the file
    print("\n".join(table))
    print(f"full report: {os.path.join(OUT, 'summary.md')} and its plots in {OUT}/")
    # git-tracked results of experiments no longer in params.yaml (`dvc metrics show` would
    # report them as current), removed once the report is written
    removed = remove_stale_results(study.experiments)
    if removed:
        print(f"removed the results of experiments no longer in params.yaml: {', '.join(removed)}")


if __name__ == "__main__":
    run_stage(main)  # TensorFlow quietly: the weight-update logger loads Keras
