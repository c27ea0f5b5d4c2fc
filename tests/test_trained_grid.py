"""The trained grid from its per-run tables (tools/trained_grid.py): a best rate is bracketed
or says which side is open, a cell at chance is stuck only with the longer budget, no verdict
rests on an unsettled cell, repeated cells count once, the correlation recomputes from the
rows, and `next` names the runs that would settle the rest."""
import os
import shutil
import subprocess
import sys

import pytest
from scipy import stats

from conftest import ROOT
from initstudy.files import write_tsv
from tools import runs
from initstudy.stats import seed_analysis
from tools.trained_grid import (activation_verdict, advice_verdict, bracket, grid_analysis, grid_markdown,
                                next_rate, next_runs)

STEPS = 314
ADVICE = {"relu": "he_normal", "relu6": "he_normal", "tanh": "glorot_normal"}


def run(cell, rate, seed, val, test=None, steps=STEPS, diverged=0):
    activation, initializer = cell.split("-")
    return {"experiment": cell, "activation": activation, "initializer": initializer,
            "optimizer": "sgd", "learning_rate": rate, "schedule": "cosine", "epochs": 2,
            "steps": steps, "batch_size": 64, "seed": seed, "diverged": diverged,
            "val_accuracy": None if diverged else val,
            "test_accuracy": None if diverged else (val if test is None else test),
            "test_accuracy_raw": None, "data": "abc123def456", "classes": 10, "val_images": 1000,
            "cpu": "AMD EPYC (avx512f)"}


def search(cell, vals):
    """Seed 0 at each rate ({rate: val}, None for diverged)."""
    return [run(cell, r, 0, v, diverged=int(v is None)) for r, v in vals.items()]


def seeds(cell, rate, tests):
    return [run(cell, rate, s, t + 0.01, test=t) for s, t in enumerate(tests) if s > 0]


def grid_rows():
    rows = []
    for activation in ("relu", "relu6"):  # no unit exceeds 6: the same runs to the last digit
        rows += search(f"{activation}-he_normal", {0.01: 0.40, 0.1: 0.50, 0.3: None})
        rows += [run(f"{activation}-he_normal", 0.1, 0, 0.50, test=0.50)]
        rows += seeds(f"{activation}-he_normal", 0.1, [0.50, 0.52, 0.51])
        rows += search(f"{activation}-glorot_normal", {0.01: 0.100, 0.1: 0.101})
    rows = [r for i, r in enumerate(rows) if r not in rows[:i]]
    rows += [run("relu-glorot_normal", 0.1, 0, 0.100, steps=5 * STEPS)]  # stuck for 5x
    rows += [run("relu6-glorot_normal", 0.1, 0, 0.100, steps=5 * STEPS)]
    rows += search("tanh-glorot_normal", {0.01: 0.13, 0.1: 0.18})  # still rising at the top
    rows += seeds("tanh-glorot_normal", 0.1, [0.18, 0.17, 0.19])
    rows += search("tanh-he_normal", {0.01: 0.30, 0.1: 0.35, 0.3: 0.33})
    rows += seeds("tanh-he_normal", 0.1, [0.35, 0.36, 0.34])
    return rows


def test_a_best_rate_is_bracketed_only_with_a_lower_score_on_each_side():
    assert bracket({0.01: {"val_accuracy": 0.3}, 0.1: {"val_accuracy": 0.4}}, 0.1) == \
        "at the top rate (unbracketed)"
    assert bracket({0.01: {}, 0.1: {}, 0.3: {"diverged": 1}}, 0.1) == "diverged above"
    assert bracket({0.01: {}, 0.1: {}, 0.3: {"val_accuracy": 0.2}}, 0.1) == "bracketed"
    assert bracket({0.01: {}, 0.1: {}}, 0.01) == "at the bottom rate (unbracketed)"
    assert [next_rate(r) for r in (0.1, 0.3, 0.003, 1.0)] == [0.3, 1.0, 0.01, 3.0]
    assert next_rate(0.003, up=False) == 0.001 and next_rate(0.01, up=False) == 0.003


def test_the_advice_is_confirmed_contradicted_or_undecided_by_the_blocked_intervals():
    noise = [(0.0, 0.01, -0.01), (0.01, -0.012, 0.002), (-0.008, 0.0, 0.008)]  # sd ~0.01

    def blocked(**means):
        return seed_analysis({i: {s: m + d for s, d in enumerate(noise[k])}
                              for k, (i, m) in enumerate(means.items())})["blocked"]
    far = blocked(he_normal=0.60, glorot_normal=0.40, lecun_normal=0.41)
    assert advice_verdict("he_normal", far).startswith("confirmed")
    assert advice_verdict("glorot_normal", far) == "contradicted: he_normal significantly better"
    close = blocked(he_normal=0.50, glorot_normal=0.505, lecun_normal=0.30)
    assert advice_verdict("he_normal", close) == \
        "undecided: none significantly better; it beats lecun_normal"


def test_no_verdict_rests_on_an_unbracketed_or_undertrained_cell():
    g = grid_analysis(grid_rows())
    assert g["steps"] == STEPS and g["band"] == pytest.approx(0.1 + 2.58 * (0.09 / 1000) ** 0.5)
    assert g["brackets"] == {"relu-he_normal": "diverged above", "relu6-he_normal":
                             "diverged above", "tanh-glorot_normal":
                             "at the top rate (unbracketed)", "tanh-he_normal": "bracketed"}
    assert g["stuck"]["relu-glorot_normal"] == \
        ("did not leave chance in 1570 steps (best val 0.100)", True)
    assert g["same"] == {"relu6-he_normal": "relu-he_normal",
                         "relu6-glorot_normal": "relu-glorot_normal"}
    assert activation_verdict(g, "relu", "he_normal")[1] == \
        "confirmed: the only initializer that trained"
    # He beats Glorot at tanh by 17 points, but Glorot's rate was never bracketed
    assert activation_verdict(g, "tanh", "glorot_normal")[1] == \
        "undecided: glorot_normal's best rate 0.1 at the top rate, not bracketed"
    # at chance without the longer budget: no "stuck", so no verdict from it
    short = [r for r in grid_rows() if r["steps"] == STEPS]
    g = grid_analysis(short)
    assert g["stuck"]["relu-glorot_normal"] == \
        ("at chance after 314 steps, not trained longer", False)
    rows = short + [run("relu-glorot_normal", 0.1, 0, 0.2, steps=5 * STEPS)]
    assert grid_analysis(rows)["stuck"]["relu-glorot_normal"][0] == \
        "learns slowly: at chance after 314 steps, val 0.200 after 1570"


def test_the_table_marks_each_cell_counts_repeats_once_and_recomputes_the_correlation():
    drift = {"relu-he_normal": 0.5, "relu6-he_normal": 0.5, "relu-glorot_normal": 7.0,
             "relu6-glorot_normal": 7.0, "tanh-glorot_normal": 2.0, "tanh-he_normal": 1.5}
    text = grid_markdown(grid_rows(), ADVICE, drift, "settings line", "96px at step 0")
    assert "| he_normal | 0.400 | 0.500 | diverged | 0.1 | diverged above | 0.510 (3 seeds) | [" \
        in text
    assert "| glorot_normal | 0.100 | 0.101 | - | - | - | did not leave chance in 1570 steps " \
        "(best val 0.100) | - | 0.100 after 1570 steps at lr 0.1 | 7.00 |" in text
    assert "| glorot_normal | 0.130 | 0.180 | - | 0.1 | at the top rate (unbracketed) | 0.180" \
        in text
    assert "relu6-he_normal = relu-he_normal, relu6-glorot_normal = relu-glorot_normal" in text
    assert "**Cross-network**: 96px at step 0." in text
    # recomputed from the rows: each cell once (relu6 repeats relu), seed 0 at its best rate
    cells = ["relu-he_normal", "relu-glorot_normal", "tanh-glorot_normal", "tanh-he_normal"]
    best = [0.50, 0.101, 0.18, 0.35]
    rho = stats.spearmanr([drift[c] for c in cells], best).statistic
    assert f"{rho:.2f} [" in text.split("seed 0 at its best rate: ")[1]
    assert "over 4 cells" in text.split("seed 0 at its best rate: ")[1]


def test_next_names_the_runs_that_would_settle_the_grid():
    todo = next_runs(grid_rows(), ADVICE, [0, 1, 2])
    assert todo[0] == ("bracket at lr 0.3", {"tanh-glorot_normal": 0.3}, 1, [0])
    # the advised cells that learned get the longer budget too; stuck ones already had it
    assert todo[1] == ("5x the steps", {"relu-he_normal": 0.1, "relu6-he_normal": 0.1}, 5, [0])
    assert len(todo) == 2  # every bracketed cell has its seeds
    short = [r for r in grid_rows() if r["steps"] == STEPS and r["seed"] == 0]
    todo = dict((why, cells) for why, cells, _, _ in next_runs(short, ADVICE, [0, 1, 2]))
    assert todo["seeds at the best rate"] == {"relu-he_normal": 0.1, "relu6-he_normal": 0.1,
                                              "tanh-he_normal": 0.1}
    assert set(todo["5x the steps"]) == {"relu-glorot_normal", "relu6-glorot_normal",
                                         "relu-he_normal", "relu6-he_normal"}


def test_the_commands_build_the_table_and_queue_what_is_open_from_the_committed_rows(tmp_path):
    for f in ("params.yaml", "sweeps.yaml", os.path.join("reference", "published.yaml"),
              os.path.join("grid", "cells.tsv")):
        os.makedirs(tmp_path / os.path.dirname(f), exist_ok=True)
        shutil.copy(os.path.join(ROOT, f), tmp_path / f)
    os.makedirs(tmp_path / runs.RUNS)
    write_tsv(tmp_path / runs.runs_path("grid-a"), grid_rows(), runs.COLUMNS)

    def sweep(*args):
        return subprocess.run([sys.executable, "-m", "tools.sweep", *args], cwd=tmp_path,
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": ROOT})
    done = sweep("table", "trained_grid", "grid-a")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "findings" / "trained_grid.md").read_text()
    assert text.startswith("Built by `python -m tools.sweep table trained_grid grid-a`")
    assert "batch_norm false," in text and "CPU: AMD EPYC (avx512f)." in text
    assert "| 5.15 |" in text and "| 2.05 |" in text  # the drift read from grid/cells.tsv
    assert "**Cross-network**: the step-0 drift is measured on another network" in text
    todo = sweep("next", "trained_grid", "grid-a")
    assert todo.returncode == 0, todo.stderr
    edge, long_ = [line for line in todo.stdout.splitlines() if line.startswith("dvc ")]
    assert edge.startswith("dvc exp run --queue -n grid-edge-0p3-")
    assert " -S model.batch_norm=false " in edge
    assert " -S train.epochs=2 " in edge and " -S 'train.seeds=[0]' " in edge
    assert edge.endswith(" -S '~experiments.lecun_normal' -S '+experiments.tanh-glorot_normal="
                         "{initializer: glorot_normal, activation: tanh, learning_rate: 0.3}' "
                         "evaluate")
    assert long_.startswith("dvc exp run --queue -n grid-long-")
    assert todo.stdout == sweep("next", "trained_grid", "grid-a").stdout  # the same names
    assert " -S train.epochs=10 " in long_ and "relu6-he_normal={initializer: he_normal, " \
        "activation: relu6, learning_rate: 0.1}" in long_
    bad = sweep("next", "trained_grid")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "usage" in bad.stderr


def test_every_committed_trained_grid_page_is_rebuilt_from_its_rows(tmp_path):
    """Each findings page `tools.sweep table trained_grid` wrote from per-run tables is what
    it builds now from the tables its first line names, correlation included."""
    import glob

    built = [p for p in sorted(glob.glob(os.path.join(ROOT, "findings", "*.md")))
             if open(p).read().startswith("Built by `python -m tools.sweep table trained_grid ")]
    assert built
    for f in ("params.yaml", "sweeps.yaml", "reference", "grid", runs.RUNS):
        copy = shutil.copytree if os.path.isdir(os.path.join(ROOT, f)) else shutil.copy
        copy(os.path.join(ROOT, f), tmp_path / f)
    for path in built:
        text = open(path).read()
        args = text.split("`python -m tools.sweep table trained_grid ")[1].split("`")[0].split()
        done = subprocess.run([sys.executable, "-m", "tools.sweep", "table", "trained_grid",
                               *args], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": ROOT})
        assert done.returncode == 0, done.stderr
        rel = os.path.relpath(path, ROOT)
        assert (tmp_path / rel).read_text() == text, rel
