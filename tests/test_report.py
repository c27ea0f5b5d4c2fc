"""The report's logic: the grid verdict against the reference's advice, the tables, the
splits' baselines and the JSON's rounding."""
import json
import math
import os
import shutil

import numpy as np
import pytest

from conftest import ROOT, build_study, write_params
from initstudy.files import write_json
from initstudy.stats import pairwise, seed_analysis
from initstudy.verdicts import grid_verdicts, panels
from initstudy.formatting import rounded
from initstudy.report_text import analysis_lines, baseline_lines, results_table, seeds_table
from initstudy.stats import accuracy_limits, baselines

ADVICE = {"relu": "he_normal", "tanh": "glorot_normal", "selu": "lecun_normal"}


def cell(act, init, drift, spread=0.1, bn=False, fan="per_channel"):
    return {"activation": act, "initializer": init, "batch_norm": bn, "depthwise_fan": fan,
            "drift": drift, "drift_min": drift - spread, "drift_max": drift + spread}


def verdict_rows(cells):
    rows = [line for line in grid_verdicts(cells, ADVICE) if line.startswith("| ")][1:]
    return {r.split(" | ")[0][2:]: r for r in rows}


def test_verdict_picks_the_least_drift_where_the_initializer_acts_alone():
    cells = [cell("relu", "he_normal", 0.2), cell("relu", "glorot_normal", 2.0),
             cell("tanh", "glorot_normal", 0.3), cell("tanh", "he_normal", 1.5),
             cell("selu", "he_normal", 0.1), cell("selu", "lecun_normal", 0.6),
             cell("selu", "random_normal", math.inf, 0),  # collapsed: never the best
             # with BN on every cell is preserved: this panel must not decide
             cell("relu", "glorot_normal", 0.0, bn=True), cell("relu", "he_normal", 0.4, bn=True),
             cell("tanh", "he_normal", 0.0, bn=True), cell("selu", "lecun_normal", 0.0, bn=True)]
    rows = verdict_rows(cells)
    assert rows["relu"].endswith("| he_normal | yes |")
    assert "glorot_normal (0.00 [-0.10, 0.10])" in rows["relu"]  # best with BN on, not the verdict
    assert rows["tanh"].endswith("| glorot_normal | yes |")
    assert rows["selu"].endswith(
        "| lecun_normal | no: he_normal keeps signal and gradient better |")


def test_overlapping_spreads_give_no_clear_winner():
    cells = [cell("relu", "he_normal", 0.2, 0.3), cell("relu", "lecun_normal", 0.6, 0.3),
             cell("tanh", "glorot_normal", math.inf, 0), cell("tanh", "he_normal", math.inf, 0),
             cell("sigmoid", "he_normal", 13.0), cell("sigmoid", "glorot_normal", 14.0)]
    rows = verdict_rows(cells)
    # ranked first but 13 decades off: a collapse, not a winner
    assert "none: every initializer loses over 1,000x (least: he_normal" in rows["sigmoid"]
    assert rows["sigmoid"].endswith("| none |")
    assert "no clear winner: he_normal (0.20 [-0.10, 0.50]) overlaps lecun_normal" in rows["relu"]
    assert rows["relu"].endswith("| he_normal | no clear winner |")
    assert rows["tanh"].endswith("| none |")


def test_panels_put_bn_on_first_and_the_verdict_panel_is_named():
    cells = [cell("relu", "he_normal", 1.0, 0.1, bn, fan)
             for bn in (False, True) for fan in ("keras", "per_channel")]
    assert panels(cells) == [(True, "per_channel"), (True, "keras"), (False, "per_channel"),
                             (False, "keras")]
    header = [line for line in grid_verdicts(cells, ADVICE) if line.startswith("| activation")][0]
    assert "agrees (BN off, per_channel fan)?" in header


@pytest.mark.parametrize("only", [(True, "keras"), (False, "keras")])
def test_without_the_per_channel_panel_the_verdict_uses_the_first_panel(only):
    cells = [cell("relu", "he_normal", 0.1, 0.1, *only),
             cell("relu", "lecun_normal", 2.0, 0.1, *only)]
    assert verdict_rows(cells)["relu"].endswith("| he_normal | yes |")


# a two-class set: the test split is 83 of 153 one class, so the majority-class rate 0.5425
# is above chance (0.5)
MANIFEST = {"classes": ["cat", "dog"],
            "splits": {"train": {"count": 1000, "per_class": {"cat": 500, "dog": 500}},
                       "validation": {"count": 200, "per_class": {"cat": 100, "dog": 100}},
                       "test": {"count": 153, "per_class": {"cat": 83, "dog": 70}}}}
# the committed run's test accuracies (report/summary.json), seed 0, 1, 2
ACCURACIES = {"random_normal": [0.1606, 0.3459, 0.3177],
              "glorot_normal": [0.2176, 0.3675, 0.2997], "he_normal": [0.1832, 0.2857, 0.2945],
              "lecun_normal": [0.2055, 0.3043, 0.2705]}


def experiment(name, test_accuracy, runs=(), **extra):
    metrics = {"train_accuracy": 0.9, "inference_accuracy": 0.9, "val_accuracy": 0.9,
               "test_accuracy": test_accuracy, "test_accuracy_ci95_low": None,
               "test_accuracy_ci95_high": None, "test_loss": 0.5, "seeds": len(runs),
               "diverged": 0, **extra}
    return {"experiment": name, "initializer": "he_normal", "activation": "relu",
            "learning_rate": 0.05, "metrics": metrics,
            "runs": [{"seed": s, "diverged": False, "test_accuracy": a, "test_loss": 1.0 + a}
                     for s, a in enumerate(runs)]}


def row(lines, name):
    return [c.strip() for c in next(x for x in lines if x.startswith(f"| {name} |")).split("|")]


def test_an_accuracy_at_the_majority_class_rate_is_marked():
    base = baselines(MANIFEST)["test"]
    assert (base["chance"], base["majority"]) == pytest.approx((0.5, 83 / 153))
    # within noise: below 0.5425 + 2.58 binomial standard errors at 153 images
    limit = 83 / 153 + 2.58 * math.sqrt(83 / 153 * (1 - 83 / 153) / 153)
    assert base["noise_limit"] == pytest.approx(limit) and limit == pytest.approx(0.6464, abs=1e-4)
    limits = accuracy_limits(MANIFEST, inference_images=100)
    lines = results_table([experiment("at_majority", 0.5425, [0.5425, 0.70]),
                           experiment("learned", 0.70)], limits)
    assert row(lines, "at_majority")[8] == "0.5425 †"
    assert row(lines, "learned")[8] == "0.7000"
    assert row(lines, "learned")[5:8] == ["0.9000"] * 3  # train and val accuracies well above
    # per seed too
    assert row(seeds_table([experiment("at_majority", 0.5425, [0.5425, 0.70])],
                           limits["test_accuracy"]), "at_majority")[2:4] == ["0.5425 †", "0.7000"]
    text = "\n".join(baseline_lines(MANIFEST, 100))
    assert "| test | 153 | 0.5000 | 0.5425 | 0.6464 |" in text and "2.58" in text
    # train accuracy in inference mode: the 100 images scored, not the split's 1000
    assert limits["inference_accuracy"] == pytest.approx(0.5 + 2.58 * 0.5 / 10)


def test_results_table_shows_raw_beside_recalibrated_scores_when_the_runs_have_them():
    limits = accuracy_limits(MANIFEST, 100)
    old = results_table([experiment("a", 0.80)], limits)
    assert "BN as trained" not in "\n".join(old)
    # runs scored before precise BN: the mean of no raw scores is None
    assert results_table([experiment("a", 0.80, test_accuracy_raw=None)], limits) == old
    assert len(row(old, "a")) == len(old[0].split("|"))
    new = results_table([experiment("a", 0.80, test_accuracy_raw=0.61),
                         experiment("b", 0.75)], limits)  # b: an old run, no raw score
    header = [c.strip() for c in new[0].split("|")]
    assert header[8:10] == ["test acc", "test acc (BN as trained)"]
    assert row(new, "a")[8:10] == ["0.8000", "0.6100 †"] and row(new, "b")[8:10] == ["0.7500", "-"]
    assert len(row(new, "a")) == len(header) == len(new[1].split("|"))


def test_analysis_text_puts_the_blocked_design_first_and_names_a_dropped_block():
    groups = {k: dict(enumerate(v)) for k, v in ACCURACIES.items()}
    del groups["he_normal"][1]  # diverged
    text = "\n".join(analysis_lines(seed_analysis(groups)))
    assert text.startswith("Headline: the seed-blocked ANOVA")
    assert "Seed 1 is left out of the blocked analysis: a block needs every experiment, and " \
        "he_normal has no finished run at it." in text
    assert text.index("Headline") < text.index("Sensitivity check, unblocked")
    assert "F(3, 3)" in text and "over 11 runs: F(3, 7)" in text


@pytest.mark.parametrize("seed_effect", [0.0, 0.03])
def test_the_sentence_on_blocking_follows_the_numbers(seed_effect):
    """The sensitivity check credits the seeds' shared effect only where the blocks explain
    something and blocking lowered the residual sd; otherwise it says the seeds explain little.
    Four experiments 0.01 apart, 3 seeds, with and without a shared per-seed shift."""
    from initstudy.report_text import agreement_line

    rng = np.random.default_rng(1)
    groups = {e: {s: 0.5 + 0.012 * i + seed_effect * s + rng.normal(0, 0.004)
                  for s in range(3)} for i, e in enumerate("abcd")}
    analysis = seed_analysis(groups)
    b, o = analysis["blocked"], analysis["oneway"]
    line = agreement_line(analysis)
    calls = [t["significant"] for t in b["pairs"]] != [t["significant"] for t in o["pairs"]]
    if not calls:
        assert line == "Both analyses make the same call on every pair."
    elif b["block_p"] < 0.05 and b["residual_sd"] < o["pooled_sd"]:
        assert "the seeds share an effect" in line and "seeds explain little" not in line
    else:
        assert "the seeds explain little here" in line and "share an effect" not in line
    if seed_effect:  # a strong shared shift: blocking must be what separates them
        assert b["block_p"] < 0.05 and "the seeds share an effect" in line
    text = "\n".join(analysis_lines(analysis))
    assert f"detects a true gap of {b['mdd_tukey']:.4f} with 80% power" in text


def summary(accuracies, shift=0.0):
    """The report's JSON parts from these runs, every input moved by `shift`."""
    groups = {k: {s: a + shift for s, a in enumerate(v)} for k, v in accuracies.items()}
    experiments = [experiment(k, sum(v.values()) / 3, list(v.values()),
                              test_loss=1.9 + shift) for k, v in groups.items()]
    return rounded({"baselines": baselines(MANIFEST),
                    "experiments": [{**e["metrics"], "runs": e["runs"]} for e in experiments],
                    "test_accuracy_analysis": seed_analysis(groups),
                    "pairwise_welch_test_accuracy": pairwise(
                        {k: list(v.values()) for k, v in groups.items()})})


def test_report_json_is_byte_stable_under_tiny_perturbations(tmp_path):
    files = []
    for i, shift in enumerate((0.0, 1e-12, -1e-12)):
        write_json(tmp_path / f"{i}.json", summary(ACCURACIES, shift))
        files.append((tmp_path / f"{i}.json").read_bytes())
    assert files[0] == files[1] == files[2]
    # the rule: F and p to 4 significant digits, values on the accuracy scale to 4 decimals
    a = summary(ACCURACIES)["test_accuracy_analysis"]
    assert a["blocked"]["f"] == 1.362 and a["oneway"]["p"] == 0.9081
    assert a["blocked"]["pairs"][0]["diff"] == -0.0202
    assert a["oneway"]["pairs"][0]["ci_low"] == -0.2139
    assert json.dumps(rounded({"p": 1.23456e-7, "diff": -1e-9, "f": math.nan})) == \
        '{"p": 1.235e-07, "diff": 0.0, "f": null}'  # not -0.0 (a sign flip), nor NaN


def test_readme_results_table_is_the_committed_reports():
    """The README quotes the committed run: its table must be report/summary.json's numbers."""
    import json
    import os

    from conftest import ROOT

    summary = json.load(open(os.path.join(ROOT, "report", "summary.json")))
    readme = open(os.path.join(ROOT, "README.md")).read()
    section = readme.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    table = section[section.index("\n| experiment"):].strip().split("\n\n", 1)[0]  # the first
    rows = {cells[0]: cells[1:] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:])}
    assert rows.keys() == {e["experiment"] for e in summary["experiments"]}
    for e in summary["experiments"]:
        assert rows[e["experiment"]] == [
            e["initializer"], e["activation"], f"{e['train_accuracy']:.4f}",
            f"{e['inference_accuracy']:.4f}", f"{e['val_accuracy']:.4f}",
            f"{e['test_accuracy']:.4f}", f"{e['test_accuracy_raw']:.4f}",
            f"[{e['test_accuracy_ci95_low']:.4f}, {e['test_accuracy_ci95_high']:.4f}]",
            f"{e['test_loss']:.4f}"], e["experiment"]


def test_every_four_decimal_figure_in_the_readme_is_in_a_committed_result():
    """The README quotes results, it does not make them: each 0.xxxx-style figure in it
    appears in report/, metrics/ or findings/ (or in the command that regenerates its table)."""
    import glob
    import os
    import re

    from conftest import ROOT

    sources = [p for pattern in ("report/*.md", "report/*.json", "metrics/*.json",
                                 "findings/*.md")
               for p in glob.glob(os.path.join(ROOT, pattern))]
    committed = "\n".join(open(p).read() for p in sources)
    readme = open(os.path.join(ROOT, "README.md")).read()
    figures = set(re.findall(r"(?<![\d.])-?\d+\.\d{4}(?!\d)", readme))
    assert figures, "the README quotes no results"
    missing = sorted(f for f in figures if f.lstrip("-") not in committed)
    assert not missing, f"README figures found in no committed result: {missing}"


# ---------------------------------------------------------------- the report stage, whole
# Three unequal classes: the stored train split (class-interleaved) is 150 / 60 / 33 images,
# a majority-class rate of 150 / 243 = 0.617; its first 164 records (the subset scored in
# inference mode) hold 71 / 60 / 33, a majority rate of 71 / 164 = 0.433.
UNEQUAL = {"classes": ["a", "b", "c"],
           "splits": {"train": {"count": 243, "per_class": {"a": 150, "b": 60, "c": 33}},
                      "validation": {"count": 12, "per_class": {"a": 4, "b": 4, "c": 4}},
                      "test": {"count": 90, "per_class": {"a": 30, "b": 30, "c": 30}}}}
SOURCE_SHA256 = "0123456789abcdef" * 4
REPORT_FILES = sorted(["summary.json", "summary.md", "test_accuracy.json", "history.json",
                       "accuracy.png", "loss.png", "test_accuracy.png", "step0_depth.png",
                       "step0_kernel_std.png", "grid_signal.png", "grid_gradient.png",
                       "weight_updates.png"])


def test_the_inference_mark_uses_the_scored_subsets_own_majority_rate():
    from initstudy.stats import inference_baseline, inference_subset

    # whole rounds of one image per class until c (33) and then b (60) run out, then a alone
    assert inference_subset(UNEQUAL, 164) == {"a": 71, "b": 60, "c": 33}
    assert inference_subset(UNEQUAL, 100) == {"a": 34, "b": 33, "c": 33}
    assert inference_subset(UNEQUAL, 8) == {"a": 3, "b": 3, "c": 2}  # a partial last round
    assert inference_subset(UNEQUAL, 10_000) == UNEQUAL["splits"]["train"]["per_class"]
    subset = inference_baseline(UNEQUAL, 164)
    assert subset["majority"] == pytest.approx(0.4329, abs=1e-4)
    assert baselines(UNEQUAL)["train"]["majority"] == pytest.approx(0.6173, abs=1e-4)
    limits = accuracy_limits(UNEQUAL, 164)
    assert limits["inference_accuracy"] == pytest.approx(
        71 / 164 + 2.58 * math.sqrt(71 / 164 * (1 - 71 / 164) / 164))  # 0.5327
    # the whole split's majority would put the limit at 0.7152 and mark a 0.70
    lines = results_table([experiment("learned", 0.9, inference_accuracy=0.70),
                           experiment("at_majority", 0.9, inference_accuracy=0.45)], limits)
    assert row(lines, "learned")[6] == "0.7000"
    assert row(lines, "at_majority")[6] == "0.4500 †"
    text = "\n".join(baseline_lines(UNEQUAL, 164))
    assert "| train (inference) | 164 | 0.3333 | 0.4329 | 0.5327 |" in text
    assert "| train | 243 | 0.3333 | 0.6173 |" in text


@pytest.mark.slow
def test_the_subset_counts_are_those_of_the_records_training_scores(tmp_path):
    """inference_subset against the data itself: prepare's class-interleaved train split in
    unequal shards, read back as training reads its inference subset (make_dataset's limit)."""
    import numpy as np

    from initstudy import shards, sources
    from initstudy.stats import inference_subset

    labels = np.repeat([0, 1, 2], [154, 64, 37])
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 4, 4, 3), np.uint8)
    splits = sources.split_validation(["a", "b", "c"], {"train": (images, labels),
                                                     "test": (images[:9], labels[:9])}, 4, 0)
    manifest = shards.write_prepared(["a", "b", "c"], splits, str(tmp_path / "prepared"), 5,
                                   {"folder": "x"}, {"per_class": 4, "seed": 0})
    assert manifest["splits"]["train"]["per_class"] == UNEQUAL["splits"]["train"]["per_class"]
    for n in (8, 100, 164, 200, 243, 500):
        drawn = np.concatenate([y.numpy() for _, y in shards.make_dataset(
            str(tmp_path / "prepared"), manifest, "train", 32, limit=n)])
        assert dict(zip("abc", np.bincount(drawn, minlength=3).tolist())) == \
            inference_subset(manifest, n), n


def synthetic_results(folder, conv_ratio=0.0, shift=0.0):
    """Everything the report stage reads, without training: a BN-free SkipInit study of two
    experiments x two seeds on UNEQUAL's three classes, whose weight-update logs have the
    median conv ||dW|| / ||W|| at `conv_ratio` at every step (0: 4-5 of 5 conv kernels exactly
    unchanged per step, as at float32); step 0 and the grid are the committed ones.
    `shift` moves every accuracy. Returns the folder."""
    from initstudy.evaluation import experiment_metrics
    from initstudy.files import write_tsv

    params = build_study(folder, "stages", train=dict(seeds=[0, 1], inference_images=164))
    params["model"].update(batch_norm=False, residual_scale="skipinit")
    params["experiments"] = {k: params["experiments"][k] for k in ("he_normal", "glorot_normal")}
    write_params(folder, params)
    (folder / "data" / "prepared").mkdir(parents=True)
    write_json(folder / "data" / "prepared" / "manifest.json",
               {**UNEQUAL, "source": {"folder": "data/abc.tar.gz", "sha256": SOURCE_SHA256},
                "validation": {"per_class": 4, "seed": 0, "drawn_from": "train"},
                "image_shape": [32, 32, 3]})
    (folder / "grid").mkdir()
    shutil.copy(os.path.join(ROOT, "grid", "cells.tsv"), folder / "grid" / "cells.tsv")
    (folder / "metrics" / "step0").mkdir(parents=True)
    for e, offset in (("he_normal", 0.0), ("glorot_normal", -0.04)):
        for ext in ("json", "tsv"):
            shutil.copy(os.path.join(ROOT, "metrics", "step0", f"{e}.{ext}"),
                        folder / "metrics" / "step0" / f"{e}.{ext}")
        runs = []
        for seed in (0, 1):
            acc = 0.5 + offset + 0.03 * seed * (1 + offset) + shift
            runs.append({"seed": seed, "diverged": False, "diverged_epoch": None, "epochs": 1,
                         "train_accuracy": acc, "train_loss": 1.0, "inference_accuracy": acc,
                         "val_accuracy": acc, "val_loss": 1.0, "val_accuracy_raw": acc,
                         "test_accuracy": acc, "test_loss": 1.0, "test_accuracy_raw": acc,
                         "test_loss_raw": 1.0, "device": "cpu", "precision": "float32",
                         "jit_compile": False, "steps_per_execution": 1, "deterministic": True})
            run = folder / "models" / e / f"seed{seed}"
            run.mkdir(parents=True)
            write_json(run / "history.json", {"diverged": False, "history": [
                {"epoch": 1, "accuracy": acc, "inference_accuracy": acc, "loss": 1.0,
                 "inference_loss": 1.0, "val_accuracy": acc, "val_loss": 1.0}]})
            rows = [{"step": step, "layer": f"{kind}_{i}", "kind": kind, "weight_norm": 1.0,
                     "update_ratio": ratio}
                    for step in (1, 2, 3)
                    for kind, i, ratio in
                    [("conv", i, 1e-7 if (i, step) == (4, 3) else conv_ratio) for i in range(5)]
                    + [("depthwise", i, 0.01 * step) for i in range(3)] + [("dense", 0, 0.02)]]
            write_tsv(run / "weight_updates.tsv", rows,
                      ("step", "layer", "kind", "weight_norm", "update_ratio"))
        (folder / "eval" / e).mkdir(parents=True)
        write_json(folder / "eval" / e / "runs.json", runs)
        write_json(folder / "metrics" / f"{e}.json", experiment_metrics(runs))
    return folder


def report_files(folder):
    return {f: (folder / "report" / f).read_bytes()
            for f in sorted(os.listdir(folder / "report"))}


@pytest.mark.slow
def test_a_skipinit_run_whose_conv_kernels_never_move_gets_a_complete_report(
        tmp_path, monkeypatch):
    from stages import report

    synthetic_results(tmp_path)
    monkeypatch.chdir(tmp_path)
    report.main()  # the median conv update ratio is 0 at every step: no ZeroDivisionError
    assert sorted(os.listdir(tmp_path / "report")) == REPORT_FILES
    text = (tmp_path / "report" / "summary.md").read_text()
    assert "| he_normal | 0.01 | 0.02 | 0 | 0 | - (no conv update) |" in text
    assert "- he_normal: no measurable update of the conv kernels at any of the 3 logged " \
        "steps: the median ||dW|| / ||W|| is exactly 0 (4-5 of 5 conv kernels unchanged " \
        "per step" in text
    assert "depthwise kernels" not in text  # they moved: no sentence about them
    # the data a run trained on, as a column of `dvc exp show`, beside the accuracies
    shown = json.loads((tmp_path / "report" / "test_accuracy.json").read_text())
    assert shown == {"acc": {"he_normal": 0.515, "glorot_normal": 0.4744},
                     "data": SOURCE_SHA256[:12]}
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["baselines"]["train_inference"]["per_class"] == {"a": 71, "b": 60, "c": 33}


@pytest.mark.slow
def test_updates_that_move_get_their_ratio_and_no_sentence(tmp_path, monkeypatch):
    from stages import report

    synthetic_results(tmp_path, conv_ratio=0.005)
    monkeypatch.chdir(tmp_path)
    report.main()
    text = (tmp_path / "report" / "summary.md").read_text()
    assert "| he_normal | 0.01 | 0.02 | 0.005 | 0.005 | 4 |" in text
    assert "no measurable update" not in text


@pytest.mark.slow
def test_a_failure_midway_leaves_every_report_file_as_it_was(tmp_path, monkeypatch):
    from initstudy import plots
    from stages import report

    synthetic_results(tmp_path)
    (tmp_path / "report").mkdir()
    for name in REPORT_FILES + ["notes.txt"]:
        (tmp_path / "report" / name).write_bytes(f"the last good {name}\n".encode())
    before = report_files(tmp_path)
    monkeypatch.chdir(tmp_path)

    def broken(*args, **kwargs):  # the 6th of 8 figures, after every JSON and the text
        raise RuntimeError("a figure that cannot be drawn")

    monkeypatch.setattr(plots, "curves", broken)
    with pytest.raises(RuntimeError, match="cannot be drawn"):
        report.main()
    assert report_files(tmp_path) == before  # nothing new, nothing half-written, no temp file
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    report.main()  # the same inputs without the failure: every file is new
    after = report_files(tmp_path)
    assert sorted(after) == sorted(before)
    assert all(after[f] != before[f] for f in REPORT_FILES)
    assert after["notes.txt"] == before["notes.txt"]


def test_updates_table_names_a_kind_that_never_moves_instead_of_dividing_by_it():
    from initstudy.report_text import updates_table

    def updates(name, conv, depthwise=(0.01, 0.03)):
        return {"experiment": name, "updates": [
            {"step": s + 1, "depthwise": d, "conv": c} for s, (d, c) in
            enumerate(zip(depthwise, conv))], "unchanged": {"conv": {"min": 20, "max": 35,
                                                                     "layers": 35}}}

    lines = updates_table([updates("still", (0.0, 0.0)), updates("late", (0.0, 0.004)),
                           updates("moving", (0.002, 0.002)),
                           {"experiment": "unlogged", "updates": []}], 2)
    assert row(lines, "still")[2:] == ["0.01", "0.02", "0", "0", "- (no conv update)", ""]
    assert row(lines, "late")[2:] == ["0.01", "0.02", "0", "0.002", "10", ""]
    assert row(lines, "moving")[6] == "10"
    assert row(lines, "unlogged")[2:7] == ["-"] * 5
    notes = [line for line in lines if line.startswith("- ")]
    assert notes == [
        "- still: no measurable update of the conv kernels at any of the 2 logged steps: the "
        "median ||dW|| / ||W|| is exactly 0 (20-35 of 35 conv kernels unchanged per step, over "
        "the logged steps and seeds); the depthwise / conv ratio is undefined.",
        "- late: no measurable update of the conv kernels at step 1 (later steps move them: "
        "mean 0.002): the median ||dW|| / ||W|| is exactly 0 (20-35 of 35 conv kernels "
        "unchanged per step, over the logged steps and seeds)."]
    # nothing still, nothing said
    assert not [line for line in updates_table([updates("moving", (0.002, 0.002))], 2)
                if "no measurable update" in line or line.startswith("A kernel")]


@pytest.mark.slow
def test_dvc_shows_the_data_column_and_still_diffs_the_accuracies(tmp_path):
    """report/test_accuracy.json's string field: a column of `dvc exp show`, and `dvc metrics
    diff` still diffs the numbers beside it (against a commit from before the field)."""
    from conftest import sh

    sh("git init -q && dvc init -q", tmp_path)
    (tmp_path / "dvc.yaml").write_text("metrics:\n  - report/test_accuracy.json\n")
    (tmp_path / "report").mkdir()
    write_json(tmp_path / "report" / "test_accuracy.json", {"acc": {"he_normal": 0.5}})
    sh("git add -A && git commit -qm old", tmp_path)
    write_json(tmp_path / "report" / "test_accuracy.json",
               {"acc": {"he_normal": 0.55}, "data": SOURCE_SHA256[:12]})
    diff = json.loads(sh("dvc metrics diff --json", tmp_path))["report/test_accuracy.json"]
    assert diff["acc.he_normal"]["diff"] == pytest.approx(0.05)
    assert diff["data"] == {"old": None, "new": "0123456789ab"}
    shown = json.loads(sh("dvc exp show --json", tmp_path))
    workspace = next(r for r in shown if r["rev"] == "workspace")
    assert workspace["data"]["metrics"]["report/test_accuracy.json"]["data"]["data"] == \
        "0123456789ab"
    assert "0123456789ab" in sh("dvc exp show --no-pager", tmp_path)


def test_all_or_nothing_renames_only_once_every_staged_file_is_written(tmp_path):
    from initstudy.files import all_or_nothing, write_text

    (tmp_path / "a.txt").write_text("old a\n")
    with pytest.raises(RuntimeError, match="never written: .*b.txt"):
        with all_or_nothing() as staged:
            write_text(staged(str(tmp_path / "a.txt")), "new a\n")
            staged(str(tmp_path / "b.txt"))  # named, never written
    assert os.listdir(tmp_path) == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old a\n"
    with all_or_nothing() as staged:
        write_text(staged(str(tmp_path / "a.txt")), "new a\n")
        write_text(staged(str(tmp_path / "b.txt")), "new b\n")
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]
    assert (tmp_path / "a.txt").read_text() == "new a\n"
