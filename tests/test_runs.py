"""Per-run tables (tools/runs.py): what is pooled, and the findings built from the rows."""
import os

import pytest

from initstudy.errors import StudyError
from initstudy.files import write_tsv
from tools import runs

BASE = {"initializer": "x", "activation": "relu6", "optimizer": "sgd", "learning_rate": 0.05,
        "schedule": "cosine", "epochs": 2, "steps": 1408, "batch_size": 64, "diverged": 0,
        "val_accuracy": 0.5, "test_accuracy_raw": 0.5, "data": "abc123def456",
        "classes": 10, "val_images": 5000, "cpu": "AMD EPYC (avx2)"}


def table(tmp_path, name, accuracies, seeds, **changes):
    """findings/runs/NAME.tsv in tmp_path: {experiment: [test accuracy per seed]}."""
    rows = [{**BASE, "experiment": e, "initializer": e, "seed": s, "test_accuracy": a, **changes}
            for e, values in accuracies.items() for s, a in zip(seeds, values)]
    os.makedirs(tmp_path / runs.RUNS, exist_ok=True)
    write_tsv(tmp_path / runs.runs_path(name), rows, runs.COLUMNS)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_six_seeds_pooled_from_two_tables_answer_the_he_question_by_the_numbers(in_tmp):
    # He 3 points behind Glorot on every seed (tiny noise), level with random normal
    noise = [0.001, -0.002, 0.0, 0.002, -0.001, 0.0]  # sums to 0
    acc = {"random_normal": [0.47 + n for n in noise],
           "glorot_normal": [0.50 + n * 1.5 for n in noise],
           "he_normal": [0.47 - n for n in noise]}
    table(in_tmp, "a", {e: v[:3] for e, v in acc.items()}, [0, 1, 2])
    table(in_tmp, "b", {e: v[3:] for e, v in acc.items()}, [3, 4, 5])
    rows = runs.pooled(["a", "b"])
    assert len(rows) == 18 and {r["seed"] for r in rows} == set(range(6))
    text = runs.seeds_markdown(rows, ["a", "b"])
    assert "over 6 seeds" in text and "seeds 0, 1, 2, 3, 4, 5" in text and "1408 SGD steps" in text
    assert "- glorot_normal vs He: yes: He trails glorot_normal by 0.0300" in text
    assert "- random_normal vs He: not detected: random_normal - He = +0.0000" in text
    assert "detects" in text and "with power" in text


def test_tables_that_trained_differently_or_repeat_a_run_are_not_pooled(in_tmp):
    acc = {"he_normal": [0.4, 0.5]}
    table(in_tmp, "a", acc, [0, 1])
    table(in_tmp, "b", acc, [2, 3], steps=2816)  # a longer budget
    with pytest.raises(StudyError, match="differ in what was trained"):
        runs.pooled(["a", "b"])
    table(in_tmp, "c", acc, [1, 2])
    with pytest.raises(StudyError, match="he_normal seed 1 is in two tables"):
        runs.pooled(["a", "c"])
    with pytest.raises(StudyError, match="does not exist: export it first"):
        runs.pooled(["a", "missing"])


def test_export_writes_one_row_per_run_of_the_committed_report(in_tmp):
    """The committed report's runs as rows: every experiment x seed, with the budget in steps
    (ceil(train images / batch) per epoch) and the data's hash."""
    import json
    import shutil

    from conftest import ROOT
    from initstudy.files import read_tsv

    shutil.copy(os.path.join(ROOT, "params.yaml"), in_tmp / "params.yaml")
    (in_tmp / "report").mkdir()
    shutil.copy(os.path.join(ROOT, "report", "summary.json"), in_tmp / "report")
    os.makedirs(in_tmp / "data" / "prepared")
    manifest = {"classes": [str(c) for c in range(10)], "source": {"sha256": "f" * 64},
                "splits": {"train": {"count": 45000}, "validation": {"count": 5000}}}
    (in_tmp / "data" / "prepared" / "manifest.json").write_text(json.dumps(manifest))
    runs.export("committed")
    rows = read_tsv(in_tmp / runs.runs_path("committed"))
    summary = json.load(open(os.path.join(ROOT, "report", "summary.json")))
    want = {(e["experiment"], r["seed"]): r["test_accuracy"]
            for e in summary["experiments"] for r in e["runs"]}
    assert {(r["experiment"], int(r["seed"])): r["test_accuracy"] for r in rows} == want
    assert {r["steps"] for r in rows} == {704 * 2} and {r["data"] for r in rows} == {"f" * 12}
    assert {(r["classes"], r["val_images"]) for r in rows} == {(10, 5000)}  # the chance band
    assert {r["cpu"] for r in rows} == {runs.cpu_kind()} and "(" in runs.cpu_kind()

    # an experiment run to `evaluate` leaves the earlier report in place: each evaluate
    # stage's runs.json is what it trained, never the stale report beside it
    newer = []
    for e in summary["experiments"]:
        os.makedirs(in_tmp / "eval" / e["experiment"])
        later = [{**r, "test_accuracy": r["test_accuracy"] + 0.01} for r in e["runs"]]
        newer += [r["test_accuracy"] for r in later]
        (in_tmp / "eval" / e["experiment"] / "runs.json").write_text(json.dumps(later))
    runs.export("from-eval")
    from_eval = read_tsv(in_tmp / runs.runs_path("from-eval"))
    assert [r["test_accuracy"] for r in from_eval] == pytest.approx(newer)
    assert [r["test_accuracy"] for r in from_eval] != [r["test_accuracy"] for r in rows]
    # an eval/ without one experiment's runs: refused, naming it, not filled from the report
    os.remove(in_tmp / "eval" / "he_normal" / "runs.json")
    with pytest.raises(StudyError, match="no finished runs of he_normal"):
        runs.export("partial")


def test_the_factorial_says_whether_the_lead_is_lecuns_or_selus(in_tmp):
    """LeCun + SELU ahead only because SELU is: at SELU every initializer gains 4 points,
    LeCun is level with the others, and there is no interaction."""
    import numpy as np

    rng = np.random.default_rng(0)
    seeds = [0, 1, 2]
    for name, activation, gain in (("relu6", "relu6", 0.0), ("selu", "selu", 0.04)):
        acc = {f"{i}-{activation}": list(0.48 + gain + rng.normal(0, 0.005, 3))
               for i in ("he_normal", "glorot_normal", "lecun_normal")}
        table(in_tmp, name, acc, seeds, activation=activation)
    rows = runs.pooled(["relu6", "selu"])
    for r in rows:
        r["initializer"] = r["experiment"].split("-")[0]
    text = runs.factorial_markdown(rows, ["relu6", "selu"])
    assert "| interaction | F(2, " in text
    # every cell's mean with its interval, one row per initializer, one column per activation
    cell = [ln for ln in text.splitlines() if ln.startswith("| lecun_normal |")][0].split(" | ")
    relu6, selu = (float(c.split(" [")[0]) for c in cell[1:3])
    assert selu - relu6 == pytest.approx(0.04, abs=0.015) and cell[2].count("[") == 1
    assert "**LeCun or SELU? The lead is SELU's, not LeCun's.**" in text
    gap = float(text.split("for LeCun, SELU - ReLU6 = ")[1].split(" ")[0])
    assert gap == pytest.approx(0.04, abs=0.015)
    assert text.rstrip().endswith("no evidence that the initializers' differences depend on "
                                  "the activation.")
    table(in_tmp, "longer", {"he_normal-selu": [0.5, 0.5, 0.5]}, [3, 4, 5], steps=5632)
    with pytest.raises(StudyError, match="differ in budget"):
        runs.factorial_markdown(runs.pooled(["relu6", "longer"]), ["relu6", "longer"])


def test_the_committed_six_seed_finding_is_rebuilt_from_the_committed_rows(monkeypatch):
    """findings/seeds.md is what tools/runs builds from findings/runs/, and the seeds 0-2
    rows are the committed report's runs."""
    import json

    from conftest import ROOT

    monkeypatch.chdir(ROOT)
    names = ["seeds-0-2", "seeds-3-5"]
    rows = runs.pooled(names)
    assert open(runs.SEEDS_MD).read() == runs.seeds_markdown(rows, names)
    summary = json.load(open(os.path.join("report", "summary.json")))
    committed = {(e["experiment"], r["seed"]): r["test_accuracy"]
                 for e in summary["experiments"] for r in e["runs"]}
    assert {(r["experiment"], r["seed"]): r["test_accuracy"]
            for r in rows if r["seed"] < 3} == committed


def test_the_committed_factorial_is_rebuilt_from_the_committed_rows(monkeypatch):
    """findings/factorial.md is what tools/runs builds from the tables its first line names."""
    from conftest import ROOT

    monkeypatch.chdir(ROOT)
    text = open(runs.FACTORIAL_MD).read()
    names = text.split("python -m tools.runs factorial ")[1].split("`")[0].split()
    assert len(names) >= 2 and text == runs.factorial_markdown(runs.pooled(names), names)


def test_recipes_say_whether_the_ranking_held_and_how_each_gap_moved(in_tmp):
    """Three experiments under a base recipe and two others: under momentum every gap is the
    base's (the ranking holds, no gap changes); under adam b and c swap places by 6 points
    (each decided), so the ranking reversed and that gap's change is detected."""
    import numpy as np

    rng = np.random.default_rng(1)
    seeds = [0, 1, 2]

    def acc(means):
        return {e: list(m + rng.normal(0, 0.003, 3)) for e, m in means.items()}

    base = {"a": 0.55, "b": 0.50, "c": 0.47}
    table(in_tmp, "sgd", acc(base), seeds)
    table(in_tmp, "momentum", acc({e: m + 0.05 for e, m in base.items()}), seeds,
          optimizer="momentum", learning_rate=0.005)
    table(in_tmp, "adam", acc({"a": 0.55, "b": 0.47, "c": 0.53}), seeds, optimizer="adam",
          learning_rate=0.001)
    names = ["sgd", "momentum", "adam"]
    text = runs.recipes_markdown({n: runs.pooled([n]) for n in names}, "optimizers")
    assert text.startswith("# The same experiments in 3 tables: sgd 0.05, 2 epochs vs momentum "
                           "0.005, 2 epochs vs adam 0.001, 2 epochs")
    assert "python -m tools.runs recipes optimizers sgd momentum adam" in text
    row = [ln for ln in text.splitlines() if ln.startswith("| b - c |")][0].split(" | ")
    sgd_gap, adam_gap = (float(row[i].strip("*").split(" [")[0]) for i in (1, 3))
    assert row[1].startswith("**") and row[3].startswith("**")  # each decided by Tukey
    assert sgd_gap == pytest.approx(0.03, abs=0.01) and adam_gap == pytest.approx(-0.06, abs=0.01)
    moves = {ln.split(": ")[0]: ln for ln in text.splitlines() if ln.startswith("- ")}
    assert "no change detected" in moves["- momentum 0.005, 2 epochs, a - b"]
    assert "reversed (change -0.0" in moves["- adam 0.001, 2 epochs, b - c"]
    assert "**Does the ranking hold? No: it reversed** on b vs c" in text
    assert ": the experiments' differences depend on the recipe" in text

    # the same recipe twice: the rank order holds, said with the pairs both decide
    table(in_tmp, "sgd-again", acc(base), seeds)
    text = runs.recipes_markdown({n: runs.pooled([n]) for n in ("sgd", "sgd-again")}, "again")
    assert "tables: sgd vs sgd-again" in text  # one recipe twice: told apart by table name
    assert "**Does the ranking hold? Yes**: every recipe decides the same 3 pair(s)" in text
    table(in_tmp, "mixed", acc(base), seeds, epochs=8)
    rows = runs.pooled(["mixed"]) + runs.pooled(["sgd"])
    with pytest.raises(StudyError, match="trained with 2 recipes"):
        runs.recipes_markdown({"mixed": rows, "sgd": runs.pooled(["sgd"])}, "x")


def test_every_committed_recipes_finding_is_rebuilt_from_the_committed_rows(monkeypatch):
    """Each findings/*.md that `tools.runs recipes` wrote is what it builds now from the
    tables its first lines name."""
    import glob

    from conftest import ROOT

    monkeypatch.chdir(ROOT)
    built = [p for p in sorted(glob.glob(os.path.join("findings", "*.md")))
             if "python -m tools.runs recipes " in open(p).read()]
    assert built
    for path in built:
        text = open(path).read()
        out, *names = text.split("python -m tools.runs recipes ")[1].split("`")[0].split()
        assert path == os.path.join("findings", f"{out}.md") and len(names) >= 2
        assert text == runs.recipes_markdown({n: runs.pooled([n]) for n in names}, out), path


def test_a_rate_search_names_each_optimizers_best_rate_and_whether_it_is_bracketed(in_tmp):
    """momentum peaks inside its rates; adam is still rising at its top rate (and a diverged
    run counts as 0, not as missing)."""
    val = {("momentum", 0.001): 0.40, ("momentum", 0.003): 0.45, ("momentum", 0.01): 0.42,
           ("adam", 0.0003): 0.30, ("adam", 0.001): 0.35, ("adam", 0.003): 0.38}
    rows = [{**BASE, "experiment": e, "initializer": e, "seed": 0, "optimizer": o,
             "learning_rate": rate, "val_accuracy": v + d, "test_accuracy": v}
            for (o, rate), v in val.items() for e, d in (("he_normal", -0.01), ("lecun_normal", 0.01))]
    rows.append({**rows[0], "learning_rate": 0.03, "diverged": 1, "val_accuracy": None})
    os.makedirs(runs.RUNS)
    write_tsv(runs.runs_path("search"), rows, runs.COLUMNS)
    text = runs.rates_markdown(runs.read_runs("search"), ["search"])
    assert "- momentum: 0.003 (mean 0.4500), bracketed" in text
    assert "| momentum | 0.03 | diverged | - | 0.0000 |" in text
    assert "- adam: 0.003 (mean 0.3800), at the top of the rates tried: not bracketed" in text
    assert "| momentum | **0.003** | 0.4400 | 0.4600 | **0.4500** |" in text


def test_the_committed_rate_search_is_rebuilt_from_its_rows(monkeypatch):
    from conftest import ROOT

    monkeypatch.chdir(ROOT)
    text = open(runs.RATES_MD).read()
    name = text.split("python -m tools.runs rates ")[1].split("`")[0]
    assert text == runs.rates_markdown(runs.read_runs(name), [name])
