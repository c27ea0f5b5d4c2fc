"""The report's logic: the grid verdict against the reference's advice, the tables, the
splits' baselines and the JSON's rounding."""
import json
import math

import pytest

from initstudy.files import write_json
from initstudy.stats import pairwise, seed_analysis
from initstudy.grid import grid_verdicts, panels
from initstudy.tables import (accuracy_limits, analysis_lines, baseline_lines, baselines,
                              results_table, rounded, seeds_table)

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
              "glorot_normal": [0.2176, 0.3675, 0.2997], "he_normal": [0.1832, 0.2857, 0.2945], "lecun_normal": [0.2055, 0.3043, 0.2705]}


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
