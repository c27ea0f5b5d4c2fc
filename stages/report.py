"""report: our results with 95% intervals across seeds, the ANOVA / Tukey analysis of their
differences (Welch + Holm as a sensitivity check), step-0 and grid verdicts, the reference
study's numbers where they compare, per-epoch curves and plots -> report/."""
import os

import yaml

from initstudy import plots
from initstudy.config import load_study
from initstudy.data import PREPARED, load_manifest
from initstudy.errors import StudyError, run_stage
from initstudy.evaluation import TIMINGS, mean_curve, mean_updates
from initstudy.files import read_json, read_tsv, writable, write_json, write_text
from initstudy.stats import pairwise, seed_analysis
from initstudy.tables import grid_verdicts, results_markdown, results_table, setting_line

OUT = "report"
GRID = os.path.join("grid", "cells.tsv")
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
    name = experiment.name
    runs = read_json(need(os.path.join("eval", name, "runs.json"), f"evaluate@{name}"))
    folders = {r["seed"]: os.path.join("models", name, f"seed{r['seed']}") for r in runs}
    histories = [read_json(need(os.path.join(folders[r["seed"]], "history.json"),
                                f"train@{name}-{r['seed']}"))
                 for r in runs if not r["diverged"]]
    updates = [read_tsv(need(os.path.join(folder, "weight_updates.tsv"), f"train@{name}-{seed}"))
               for seed, folder in folders.items()]
    step0 = os.path.join("metrics", "step0", name)
    return {"experiment": name, "initializer": experiment.initializer,
            "activation": experiment.activation, "learning_rate": experiment.learning_rate,
            "metrics": read_json(need(os.path.join("metrics", f"{name}.json"), f"evaluate@{name}")),
            "runs": runs, "curve": mean_curve(histories), "updates": mean_updates(updates),
            "step0": read_tsv(need(step0 + ".tsv", f"step0@{name}")),
            "step0_headline": read_json(need(step0 + ".json", f"step0@{name}"))}


def main():
    study = load_study()
    experiments = [load_experiment(e) for e in study.experiments.values()]
    cells = read_tsv(need(GRID, "grid"))
    manifest = load_manifest(PREPARED, verify=False)  # only its counts and classes are read
    writable(OUT)
    with open(need(REFERENCE)) as f:
        reference = yaml.safe_load(f)
    groups = {e["experiment"]: {r["seed"]: r["test_accuracy"] for r in e["runs"]
                                if not r["diverged"]} for e in experiments}
    groups = {k: v for k, v in groups.items() if v}
    analysis = seed_analysis(groups)
    tests = pairwise({k: list(v.values()) for k, v in groups.items()})

    write_json(os.path.join(OUT, "summary.json"), {
        "settings": setting_line(study),
        "data": {k: manifest[k] for k in ("source", "classes", "image_shape")}
        | {"splits": {s: {k: v[k] for k in ("count", "per_class")}
                      for s, v in manifest["splits"].items()}},
        "experiments": [{"experiment": e["experiment"], "initializer": e["initializer"],
                         "activation": e["activation"], "learning_rate": e["learning_rate"],
                         **e["metrics"],
                         "runs": [{k: v for k, v in r.items() if k not in TIMINGS}
                                  for r in e["runs"]]} for e in experiments],
        "test_accuracy_analysis": analysis,
        "pairwise_welch_test_accuracy": tests})
    write_json(os.path.join(OUT, "history.json"),
               [{"experiment": e["experiment"], **h} for e in experiments for h in e["curve"]], 1)
    text = "\n".join(results_markdown(study, manifest, experiments, analysis, tests, reference) + [""] +
                     grid_verdicts(cells, reference["advice"])) + "\n"
    write_text(os.path.join(OUT, "summary.md"), text)

    def png(name):
        return os.path.join(OUT, name + ".png")

    plots.step0_depth(experiments, png("step0_depth"))
    plots.kernel_std(experiments, study.model.depthwise_fan, png("step0_kernel_std"))
    plots.grid_heatmaps(cells, "signal_ratio", "signal preservation at step 0: last / first "
                        "conv signal std", png("grid_signal"))
    plots.grid_heatmaps(cells, "gradient_ratio", "gradient preservation at step 0: first / last "
                        "conv output-gradient std", png("grid_gradient"))
    plots.weight_updates(experiments, png("weight_updates"))
    plots.curves(experiments, "accuracy", "accuracy", png("accuracy"))
    plots.curves(experiments, "loss", "cross-entropy loss", png("loss"))
    plots.test_accuracy(experiments, png("test_accuracy"))
    # the results table on the console; everything else is in the file
    print("\n".join(results_table(experiments)))
    print(f"full report: {os.path.join(OUT, 'summary.md')} and its plots in {OUT}/")


if __name__ == "__main__":
    run_stage(main, tensorflow=False)
