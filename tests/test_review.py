"""The review report on a committed two-commit repository, from DVC's own diffs; it compares
like with like (the same data, test split, epochs and seeds) or says it does not."""
import json
import os
import shutil
import sys

import pytest

from conftest import ROOT, commit, sh, stage
from initstudy.stats import welch, welch_from_summary
from tools.review import markdown, not_comparable

DVC_YAML = """stages:
  prepare:
    cmd: python -m stages.prepare
    params:
      - prepare
  evaluate:
    foreach: ${experiments}
    do:
      cmd: python -m stages.evaluate ${key}
      params:
        - experiments.${key}
      metrics:
        - metrics/${key}.json:
            cache: false
"""


def write(repo, path, obj):
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(obj if isinstance(obj, str) else json.dumps(obj))


def metrics(accuracy, std, seeds=3, diverged=0):
    return {"test_accuracy": accuracy, "test_accuracy_std": std, "seeds": seeds,
            "diverged": diverged}


def study_repo(tmp_path):
    """A git + DVC repository with the package and the tools, on branch main."""
    repo = tmp_path / "study"
    repo.mkdir()
    for folder in ("initstudy", "tools"):
        shutil.copytree(os.path.join(ROOT, folder), repo / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    sh("git init -q -b main && dvc init -q", repo)
    write(repo, "dvc.yaml", DVC_YAML)
    return repo


def test_review_names_a_changed_and_an_added_experiment_with_dvcs_numbers(tmp_path):
    repo = study_repo(tmp_path)
    write(repo, "params.yaml", "experiments:\n"
          "  he_normal: {initializer: he_normal, activation: relu6}\n"
          "  glorot_normal: {initializer: glorot_normal, activation: relu6}\n")
    write(repo, "metrics/he_normal.json", metrics(0.41, 0.02))
    write(repo, "metrics/glorot_normal.json", metrics(0.45, 0.01))
    commit(repo, "base")
    sh("git checkout -q -b change", repo)
    write(repo, "params.yaml", "experiments:\n"
          "  he_normal: {initializer: he_normal, activation: relu}\n"
          "  glorot_normal: {initializer: glorot_normal, activation: relu6}\n"
          "  lecun_selu: {initializer: lecun_normal, activation: selu}\n")
    write(repo, "metrics/he_normal.json", metrics(0.52, 0.01))
    write(repo, "metrics/lecun_selu.json", metrics(0.30, 0.03, diverged=1))
    commit(repo, "change")

    sh(f"{sys.executable} -m tools.review main", repo)
    text = (repo / "review" / "review.md").read_text()
    assert "Not comparable" not in text and "not comparable" not in text
    assert "| `experiments.he_normal.activation` | relu6 | relu |" in text
    assert "| `experiments.lecun_selu.initializer` | - | lecun_normal |" in text
    he = next(line for line in text.splitlines() if line.startswith("| he_normal |"))
    assert "| 0.4100 | 0.5200 | +0.1100 |" in he and "yes: the interval excludes 0" in he
    glorot = next(line for line in text.splitlines() if line.startswith("| glorot_normal |"))
    assert "+0.0000" in glorot and "no: within run-to-run noise" in glorot
    assert "| lecun_selu | - | 0.3000 | - | - | new |" in text
    assert "New experiments: lecun_selu. Removed: none." in text
    assert "Diverged on this branch: lecun_selu (1 of 3 runs)." in text


def test_review_refuses_an_unknown_base_in_one_line(tmp_path):
    shutil.copytree(os.path.join(ROOT, "initstudy"), tmp_path / "initstudy")
    shutil.copytree(os.path.join(ROOT, "tools"), tmp_path / "tools")
    sh("git init -q", tmp_path)
    run = stage(tmp_path, "tools.review", "nope", check=False)
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "base revision 'nope' not found" in run.stderr


def data(sha256, test_count):
    """report/summary.json's record of the prepared data, as the report writes it."""
    return {"data": {"source": {"folder": "data/images.tar.gz", "sha256": sha256},
                     "classes": ["a", "b"],
                     "splits": {"test": {"count": test_count,
                                         "per_class": {"a": test_count // 2,
                                                       "b": test_count // 2}}}}}


def test_a_review_across_different_data_says_so_and_a_null_param_reads_null(tmp_path):
    repo = study_repo(tmp_path)
    params = ("prepare:\n  folder: data/images.tar.gz\n  max_per_class: {}\n"
              "experiments:\n  he_normal: {{initializer: he_normal, activation: relu6}}\n")
    write(repo, "params.yaml", params.format(2500))
    write(repo, "metrics/he_normal.json", metrics(0.41, 0.02))
    write(repo, "report/summary.json", data("a" * 64, 10000))
    commit(repo, "base")
    sh("git checkout -q -b other-data", repo)
    write(repo, "params.yaml", params.format("null"))  # all images: other data, other test
    write(repo, "metrics/he_normal.json", metrics(0.52, 0.01))
    write(repo, "report/summary.json", data("b" * 64, 12000))
    commit(repo, "other-data")

    sh(f"{sys.executable} -m tools.review main", repo)
    text = (repo / "review" / "review.md").read_text()
    assert "| `prepare.max_per_class` | 2500 | null |" in text  # null, not "-" (removed)
    warning = ("Not comparable: base and branch differ in the data (`prepare.max_per_class` "
               "2500 → null; source sha256 aaaaaaaaaaaa… → bbbbbbbbbbbb…), the test split "
               "(10,000 → 12,000 images).")
    assert warning in text
    assert text.index(warning) < text.index("| experiment | base | branch |")  # above it
    he = next(line for line in text.splitlines() if line.startswith("| he_normal |"))
    assert "+0.1100" in he and he.endswith("| not comparable (above) |")
    assert "yes: the interval excludes 0" not in text


def test_epochs_seeds_and_the_data_record_alone_make_sides_unlike():
    same = data("a" * 64, 100)["data"]
    assert not_comparable([("experiments.a.activation", "relu6", "relu")], same, same) == []
    assert not_comparable([("train.epochs", "2", "10"), ("train.seeds", "[0]", "[0, 1, 2]")],
                          same, same) == ["`train.epochs` (2 → 10)", "`train.seeds` ([0] → [0, 1, 2])"]
    # the same count in other classes is still another test split
    moved = {**same, "splits": {"test": {"count": 100, "per_class": {"a": 60, "b": 40}}}}
    assert not_comparable([], same, moved) == ["the test split (its per-class counts)"]
    # a side without a record (or without a source sha256) cannot tell; the params still can
    assert not_comparable([], None, data("b" * 64, 100)["data"]) == []
    # one experiment scored over other epochs or seeds than its base is labelled on its own
    text = markdown("main", [], {"metrics/a.json": {
        "test_accuracy": {"old": 0.4, "new": 0.5}, "test_accuracy_std": {"old": 0.01, "new": 0.01},
        "seeds": {"old": 3, "new": 5}, "epochs": {"old": 2, "new": 2}}}, {})
    assert "Not comparable" not in text and "| not comparable (seeds 3 → 5) |" in text


@pytest.mark.parametrize("a,b", [([0.40, 0.43, 0.41], [0.45, 0.46, 0.44]),
                                 ([1.0, 2.0, 4.0, 8.0], [3.0, 3.5, 2.5])])
def test_interval_from_summary_statistics_equals_the_one_from_samples(a, b):
    import numpy as np

    want = welch(a, b)
    diff, low, high = welch_from_summary(np.mean(a), np.std(a, ddof=1), len(a),
                                       np.mean(b), np.std(b, ddof=1), len(b))
    assert (diff, low, high) == pytest.approx((want["diff"], want["ci_low"], want["ci_high"]))
