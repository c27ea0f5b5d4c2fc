"""The review report on a committed two-commit repository, from DVC's own diffs."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from test_pipeline import sh
from initstudy.review import welch_from_stats
from initstudy.stats import welch

DVC_YAML = """stages:
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


def test_review_names_a_changed_and_an_added_experiment_with_dvcs_numbers(tmp_path):
    repo = tmp_path / "study"
    repo.mkdir()
    shutil.copytree(os.path.join(ROOT, "initstudy"), repo / "initstudy")
    shutil.copytree(os.path.join(ROOT, "stages"), repo / "stages")
    sh("git init -q -b main && dvc init -q", repo)
    write(repo, "dvc.yaml", DVC_YAML)
    write(repo, "params.yaml", "experiments:\n"
          "  he_normal: {initializer: he_normal, activation: relu6}\n"
          "  glorot_normal: {initializer: glorot_normal, activation: relu6}\n")
    write(repo, "metrics/he_normal.json", metrics(0.41, 0.02))
    write(repo, "metrics/glorot_normal.json", metrics(0.45, 0.01))
    sh("git add -A && git -c user.name=t -c user.email=t@t commit -qm base", repo)
    sh("git checkout -q -b change", repo)
    write(repo, "params.yaml", "experiments:\n"
          "  he_normal: {initializer: he_normal, activation: relu}\n"
          "  glorot_normal: {initializer: glorot_normal, activation: relu6}\n"
          "  lecun_selu: {initializer: lecun_normal, activation: selu}\n")
    write(repo, "metrics/he_normal.json", metrics(0.52, 0.01))
    write(repo, "metrics/lecun_selu.json", metrics(0.30, 0.03, diverged=1))
    sh("git add -A && git -c user.name=t -c user.email=t@t commit -qm change", repo)

    sh(f"{sys.executable} -m stages.review main", repo)
    text = (repo / "review" / "review.md").read_text()
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
    shutil.copytree(os.path.join(ROOT, "stages"), tmp_path / "stages")
    sh("git init -q", tmp_path)
    run = subprocess.run([sys.executable, "-m", "stages.review", "nope"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "base revision 'nope' not found" in run.stderr


@pytest.mark.parametrize("a,b", [([0.40, 0.43, 0.41], [0.45, 0.46, 0.44]),
                                 ([1.0, 2.0, 4.0, 8.0], [3.0, 3.5, 2.5])])
def test_interval_from_summary_statistics_equals_the_one_from_samples(a, b):
    import numpy as np

    want = welch(a, b)
    diff, low, high = welch_from_stats(np.mean(a), np.std(a, ddof=1), len(a),
                                       np.mean(b), np.std(b, ddof=1), len(b))
    assert (diff, low, high) == pytest.approx((want["diff"], want["ci_low"], want["ci_high"]))
