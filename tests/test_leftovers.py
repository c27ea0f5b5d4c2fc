"""Leftovers: an experiment removed from params.yaml leaves no git-tracked results behind
(the report stage removes them), and what DVC's -S overrides do to `experiments`."""
import json
import os
import shutil

import pytest
import yaml

from conftest import ROOT, ran_stages, sh, shell
from initstudy.config import parse_study
from initstudy.errors import StudyError
from initstudy.paths import experiment_results, remove_stale_results, stale_results


def touch(root, *paths):
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("{}\n")


def test_stale_results_are_only_files_of_gone_experiments(tmp_path):
    assert stale_results(["a"], tmp_path) == []  # no metrics/ yet
    kept = experiment_results("a") + experiment_results("b.v2")
    gone = experiment_results("c")
    other = ["metrics/notes.txt", "metrics/c.tsv", "metrics/step0/c.png",
             "metrics/.123.tmp.c.json", "metrics/step0/.123.tmp.c.tsv", "report/c.json",
             "eval/c/runs.json", "metrics/step0/deeper/c.json"]
    touch(tmp_path, *kept, *gone, *other)
    assert stale_results(["a", "b.v2"], tmp_path) == sorted(gone) == [
        os.path.join("metrics", "c.json"), os.path.join("metrics", "step0", "c.json"),
        os.path.join("metrics", "step0", "c.tsv")]
    assert stale_results({"a": 1, "b.v2": 2, "c": 3}, tmp_path) == []  # a mapping's keys work too
    assert remove_stale_results(["a", "b.v2"], tmp_path) == sorted(gone)
    assert all((tmp_path / p).exists() for p in kept + other)
    assert not any((tmp_path / p).exists() for p in gone)
    assert remove_stale_results(["a", "b.v2"], tmp_path) == []


def overridden(tmp_path, *overrides):
    """params.yaml (the checkout's) after DVC's own -S code applied `overrides`."""
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    shutil.copy(os.path.join(ROOT, "params.yaml"), path)
    apply_overrides(str(path), list(overrides))
    return yaml.safe_load(path.read_text())


def test_what_dvc_overrides_do_to_experiments(tmp_path):
    params = yaml.safe_load(open(os.path.join(ROOT, "params.yaml")))
    names = list(params["experiments"])
    assert len(names) >= 2
    # ~experiments.X removes one experiment and leaves the others as they were
    after = overridden(tmp_path, f"~experiments.{names[0]}")
    assert after["experiments"] == {k: v for k, v in params["experiments"].items()
                                    if k != names[0]}
    # experiments={} is merged into the mapping (Hydra: OmegaConf.update(..., merge=True)):
    # params.yaml does not change, so `dvc exp run` has nothing to run and exits 0
    assert overridden(tmp_path, "experiments={}") == params
    assert overridden(tmp_path, "++experiments={}") == params
    # what leaves no experiment: the parser refuses it with one line
    for emptied in (overridden(tmp_path, "experiments=null"), overridden(tmp_path, "~experiments"),
                    overridden(tmp_path, *(f"~experiments.{n}" for n in names))):
        assert not emptied.get("experiments")
        with pytest.raises(StudyError) as error:
            parse_study(emptied)
        message = str(error.value)
        assert message.startswith("experiments = ") and "must be a mapping" in message
        assert "\n" not in message


@pytest.mark.slow
def test_removed_experiment_leaves_no_results(tiny_study):
    repo = tiny_study
    for path in experiment_results("glorot_normal") + experiment_results("he_normal"):
        assert (repo / path).is_file(), path

    log = sh("dvc exp run -S '~experiments.glorot_normal'", repo)
    assert ran_stages(log) == ["report"]
    gone = sorted(experiment_results("glorot_normal"))
    assert f"removed the results of experiments no longer in params.yaml: {', '.join(gone)}" \
        in log, log
    assert stale_results(["he_normal"], repo) == []
    assert all((repo / p).is_file() for p in experiment_results("he_normal"))
    # the report changing files of its `metrics` dep: DVC records the folder after the run
    assert "up to date" in sh("dvc status", repo)
    shown = json.loads(sh("dvc metrics show --json", repo))
    files = str(shown)
    assert "he_normal.json" in files and "glorot_normal" not in files, shown
    # the experiment's commit no longer tracks them (nor does the next commit of the workspace)
    ref = [r for r in sh("git for-each-ref --format='%(refname)' refs/exps", repo).split()
           if not r.startswith("refs/exps/exec/")]
    assert len(ref) == 1, ref
    tracked = sh(f"git ls-tree -r --name-only {ref[0]} -- metrics", repo).split()
    assert os.path.join("metrics", "he_normal.json") in tracked
    assert not [p for p in tracked if "glorot_normal" in p], tracked
    summary = json.loads((repo / "report" / "summary.json").read_text())
    assert [e["experiment"] for e in summary["experiments"]] == ["he_normal"]

    # removing the last one leaves no experiment: a one-line error, nothing removed
    done = shell("dvc exp run -S '~experiments.he_normal'", repo, check=False)
    assert done.returncode != 0, done.stdout
    out = done.stdout + done.stderr
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if "must be a mapping" in line]
    assert len(errors) == 1 and "experiments = {}" in errors[0], out
    assert all((repo / p).is_file() for p in experiment_results("he_normal"))
