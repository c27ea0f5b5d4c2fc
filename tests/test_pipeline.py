"""End to end: dvc repro on the mini archive, then an experiment that changes one experiment."""
import json
import os
import shutil
import subprocess
import sys

import yaml

from conftest import ROOT


def sh(cmd, cwd, timeout=900):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               DVC_NO_ANALYTICS="1", TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run(cmd, cwd=cwd, env=env, shell=True, capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode == 0, f"{cmd} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout


def ran_stages(log):
    return sorted(line.split("'")[1] for line in log.splitlines()
                  if line.startswith("Running stage"))


def test_repro_then_one_changed_experiment(tmp_path, mini_archive):
    repo = tmp_path / "study"
    files = subprocess.run("git ls-files --cached --others --exclude-standard", cwd=ROOT,
                           shell=True, capture_output=True, text=True).stdout.split()
    for f in files:
        if f.startswith(("tests/", "metrics/", "report/", "docs/")) or f == "dvc.lock":
            continue
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(ROOT, f), repo / f)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"].update(source="folder", folder=mini_archive, max_per_class=30, shards=2)
    params["model"]["image_size"] = 32
    params["train"].update(epochs=1, batch_size=32)
    params["diagnostics"]["images"] = 16
    params["grid"].update(activations=["relu", "selu"], initializers=["he_normal", "lecun_normal"],
                          batch_norm=[False], depthwise_fan=["true"])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm study", repo)

    log = sh("dvc repro", repo)
    experiments = list(params["experiments"])
    assert ran_stages(log) == sorted(["prepare", "grid", "report"] +
                                     [f"{s}@{e}" for s in ("step0", "evaluate") for e in experiments] +
                                     [f"train@{e}-0" for e in experiments])
    for name in experiments:
        metrics = json.loads((repo / "metrics" / f"{name}.json").read_text())
        assert 0 <= metrics["test_accuracy"] <= 1 and metrics["epochs"] == 1
    summary = json.loads((repo / "report" / "summary.json").read_text())
    assert [r["experiment"] for r in summary["experiments"]] == experiments
    assert (repo / "report" / "accuracy.png").stat().st_size > 1000
    sh("git add -A && git -c user.name=t -c user.email=t@t commit -qm results", repo)

    assert ran_stages(sh("dvc repro", repo)) == []  # nothing changed, nothing runs

    # bit-for-bit on a CPU: a forced rerun of everything leaves the git-tracked results as
    # they were (timings live in the DVC-cached eval/<experiment>/speed.json)
    assert len(ran_stages(sh("dvc repro --force", repo))) == 15
    assert sh("git status --porcelain -- metrics report grid", repo) == ""
    assert "images_per_second" in sh("dvc metrics show", repo)

    log = sh("dvc exp run -S experiments.he_normal.activation=relu", repo)
    assert ran_stages(log) == ["evaluate@he_normal", "report", "step0@he_normal",
                               "train@he_normal-0"]
    diff = json.loads(sh("dvc metrics diff --json", repo))
    # (timings in eval/*/speed.json differ after the forced rerun; results must not)
    assert {k for k in diff if k.startswith("metrics")} == {
        os.path.join("metrics", "he_normal.json"),
        os.path.join("metrics", "step0", "he_normal.json")}, diff
    assert "test_loss" in diff[os.path.join("metrics", "he_normal.json")]
    params_diff = json.loads(sh("dvc params diff --json", repo))["params.yaml"]
    assert params_diff == {"experiments.he_normal.activation": {"old": "relu6", "new": "relu"}}

    # a run that diverges: the pipeline goes on, the metrics and the report say so
    log = sh("dvc exp run -S '+experiments.random_normal.learning_rate=1e30'", repo)
    assert ran_stages(log) == ["evaluate@random_normal", "report", "step0@random_normal",
                               "train@random_normal-0"]
    diff = json.loads(sh("dvc metrics diff --json", repo))
    diverged = diff[os.path.join("metrics", "random_normal.json")]["diverged"]
    assert (diverged["old"], diverged["new"]) == (0, 1)
    summary = json.loads((repo / "report" / "summary.json").read_text())
    runs = {e["experiment"]: e for e in summary["experiments"]}
    assert runs["random_normal"]["diverged"] == 1 and runs["random_normal"]["test_accuracy"] is None
    assert runs["glorot_normal"]["test_accuracy"] is not None
    assert "random_normal: 1 of 1 run(s) diverged" in (repo / "report" / "summary.md").read_text()
