"""The sweep plans: the -S overrides they queue make a valid study, and their tables classify
runs as the README says (trains, stuck at chance, diverged; best rate by validation)."""
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from conftest import ROOT
from initstudy.config import load_study
from initstudy.errors import StudyError
from stages.sweep import plan, report_section, sweep_markdown


def sweep_plan(name):
    return plan(yaml.safe_load(open(os.path.join(ROOT, "params.yaml")))["sweep"], name)


@pytest.mark.parametrize("name", ["lr", "lr_seeds", "bn_free"])
def test_each_queued_experiment_is_a_valid_study_with_the_added_initializers(tmp_path, name):
    runs = sweep_plan(name)
    assert len({exp for exp, _ in runs}) == len(runs) == {"lr": 5, "bn_free": 2}.get(name, len(runs))
    assert runs and all(exp.endswith("-seeds") for exp, _ in runs) == (name == "lr_seeds")
    for exp, overrides in runs:
        params = tmp_path / "params.yaml"
        shutil.copy(os.path.join(ROOT, "params.yaml"), params)
        apply_overrides(str(params), overrides)  # what `dvc exp run -S` does
        study = load_study(str(params))
        assert list(study.experiments)[-2:] == ["orthogonal", "lsuv"]
        assert study.experiments["lsuv"].initializer == "lsuv"
        assert study.train.seeds == ((0, 1, 2) if name == "lr_seeds" else (0,))
        if name == "bn_free":
            assert study.model.batch_norm is False and study.prepare.max_per_class == 600
        else:  # the study's own data and model, so its lr-0.05 runs are reused
            assert study.prepare == load_study(os.path.join(ROOT, "params.yaml")).prepare
            assert study.model.batch_norm is True
    if name == "lr":
        rates = [float(overrides[0].split("=")[1]) for _, overrides in runs]
        assert sorted(rates) == [0.005, 0.016, 0.05, 0.16, 0.5] and rates[0] == 0.05
    elif name == "bn_free":
        assert {exp for exp, _ in runs} == {"bn-free-keras", "bn-free-per-channel"}


def params(**train):
    return {"experiments": {"a": {}, "b": {}},
            "prepare": {"max_per_class": 600, "validation_per_class": 100},
            "train": {"seeds": [0], "epochs": 2, "batch_size": 64, **train}}


def metrics(val, diverged=0, test=None, val_loss=2.3026):
    return {"val_accuracy": None if diverged else val, "test_accuracy": test, "diverged": diverged,
            "val_loss": val_loss,
            "seeds": 1, "test_accuracy_ci95_low": None, "test_accuracy_ci95_high": None}


def test_bn_free_table_names_trains_stuck_and_diverged():
    found = {"bn-free-keras": (params(), {"metrics/a.json": metrics(0.1),
                                         "metrics/b.json": metrics(0.159)}),
             "bn-free-per-channel": (params(), {"metrics/a.json": metrics(None, diverged=1),
                                               "metrics/b.json": metrics(0.118, val_loss=126)})}
    rows = {line.split(" | ")[0]: line for line in sweep_markdown("bn_free", found)
            if line.startswith("| a") or line.startswith("| b")}
    # chance band for 1,000 validation images: 0.1 + 2.58 * sqrt(0.09 / 1000) = 0.1245
    assert "stuck at chance (constant output)" in rows["| a"] and "diverged (1 of 1)" in rows["| a"]
    assert rows["| b"].count("trains") == 1 and "stuck at chance (loss 126)" in rows["| b"]


def test_lr_table_picks_each_experiments_best_rate_on_validation():
    # queued out of order (the shared rate first); the table's columns go by rate
    found = {f"lr-{r}": (params(learning_rate=r),
                         {"metrics/a.json": metrics(v, test=v), "metrics/b.json": metrics(w, test=w)})
             for r, v, w in [(0.05, 0.4, 0.25), (0.5, None, 0.1), (0.005, 0.2, 0.3)]}
    found["lr-0.5"][1]["metrics/a.json"] = metrics(None, diverged=1)
    lines = sweep_markdown("lr", found)
    a = next(line for line in lines if line.startswith("| a |")).split(" | ")
    b = next(line for line in lines if line.startswith("| b |")).split(" | ")
    assert a[3] == "diverged" and a[4] == "0.05" and b[4] == "0.005"
    assert b[3] == "0.100 (chance)" and b[1] == "0.300"
    assert b[5].startswith("0.300") and b[6].startswith("0.250")  # best vs the shared rate
    # one seed: Wilson's interval for 0.3 of 6,000 test images (600 per class)
    assert b[5] == "0.300 [0.289, 0.312]"


def test_bad_usage_is_one_line():
    run = subprocess.run([sys.executable, "-m", "stages.sweep", "queue", "everything"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1 and "everything" in run.stderr
    # the README's failure table quotes it
    assert f"`{run.stderr.strip()}`" in open(os.path.join(ROOT, "README.md")).read()


def test_the_seed_plan_quotes_each_experiments_own_report(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.md").write_text(
        "# R\n\n## Which differences are real\n\nF(5, 12) = 1.0\n\n## Next\nother\n")
    git("init", "-q")
    git("add", "report")
    git("commit", "-qm", "exp")
    git("update-ref", "refs/exps/ab/cdef/lr-0p016-seeds", "HEAD")  # how DVC stores one
    monkeypatch.chdir(tmp_path)
    assert report_section("lr-0p016-seeds", "## Which differences are real") == ["F(5, 12) = 1.0"]
    with pytest.raises(StudyError, match="lr-0p5-seeds"):
        report_section("lr-0p5-seeds", "## Which differences are real")
