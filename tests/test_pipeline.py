"""The pipeline: dvc.yaml's deps match the code, and end to end dvc repro on the mini archive,
then an experiment that changes one experiment."""
import ast
import json
import os
import shutil

import pytest
import yaml

from conftest import ROOT, build_study, commit, ran_stages, sh, shell


def project_imports(module):
    """Files of the project modules `module` imports, directly or through each other (also
    imports inside functions, and each package's __init__.py)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts)):  # importing a.b runs a/__init__.py
            init = os.path.join(*parts[:i], "__init__.py")
            if os.path.exists(os.path.join(ROOT, init)):
                seen.add(init)
        path = os.path.join(*parts) + ".py"
        if path in seen or not os.path.exists(os.path.join(ROOT, path)):
            continue
        seen.add(path)
        tree = ast.parse(open(os.path.join(ROOT, path)).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                todo += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return seen


def test_stage_deps_cover_their_imports():
    stages = yaml.safe_load(open(os.path.join(ROOT, "dvc.yaml")))["stages"]
    assert stages
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        module = stage["cmd"].split("python -m ")[1].split()[0]
        deps = stage["deps"]
        imported = project_imports(module)
        assert module.replace(".", "/") + ".py" in imported
        missing = [f for f in sorted(imported)
                   if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
        assert not missing, f"stage {name} imports {missing} but does not list them in deps"


def prepared_hash(repo):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return lock["stages"]["prepare"]["outs"][0]["md5"]


@pytest.mark.slow
def test_repro_then_one_changed_experiment(tmp_path, mini_archive):
    repo = tmp_path / "study"
    # two of the study's experiments: the one changed below and the one made to diverge, each
    # left alone while the other changes (a third would only add its stages)
    study = yaml.safe_load(open(os.path.join(ROOT, "params.yaml")))["experiments"]
    params = build_study(repo, "small", mini_archive,
                         {k: study[k] for k in ("random_normal", "he_normal")})
    sh("git init -q", repo)
    commit(repo, "study")

    log = sh("dvc repro 2>&1", repo)
    # quiet logs: progress and results, no TensorFlow/CUDA start-up noise
    per_stage = log.split("Running stage")[1:]
    assert per_stage and max(chunk.count("\n") for chunk in per_stage) < 30, log
    assert "cuInit" not in log and "absl" not in log, log
    experiments = list(params["experiments"])
    assert ran_stages(log) == sorted(["prepare", "grid", "report"] +
                                     [f"{s}@{e}" for s in ("step0", "evaluate") for e in experiments] +
                                     [f"train@{e}" for e in experiments])
    for name in experiments:
        metrics = json.loads((repo / "metrics" / f"{name}.json").read_text())
        assert 0 <= metrics["test_accuracy"] <= 1 and metrics["epochs"] == 1
    summary = json.loads((repo / "report" / "summary.json").read_text())
    assert [r["experiment"] for r in summary["experiments"]] == experiments
    assert (repo / "report" / "accuracy.png").stat().st_size > 1000
    commit(repo, "results")

    assert ran_stages(sh("dvc repro", repo)) == []  # nothing changed, nothing runs

    # bit-for-bit on a CPU: a forced rerun of each kind of stage (each a new process, seconds
    # later) writes the same shards, models and results: dvc.lock's hashes included, git is
    # clean. Timings, which never repeat, are in the untracked logs/.
    prepared = prepared_hash(repo)
    forced = ["prepare", "grid", "step0@he_normal", "train@he_normal", "evaluate@he_normal",
              "report"]
    timings = (repo / "logs" / "he_normal" / "seed0.json").read_text()
    shutil.rmtree(repo / ".checkpoints")  # else train rebuilds its outputs from them, untrained
    assert ran_stages(sh(f"dvc repro --force --single-item {' '.join(forced)}", repo)) == sorted(forced)
    assert prepared_hash(repo) == prepared
    assert sh("git status --porcelain", repo) == ""
    assert (repo / "logs" / "he_normal" / "seed0.json").read_text() != timings
    assert json.loads(timings)["images_per_second"] > 0
    # every second of a run's process is in one phase, and the kernels it ran are named
    logged = json.loads(timings)
    assert isinstance(logged["kernels"]["onednn"], bool) and logged["kernels"]["isa"]
    spent = logged["phases"]
    assert sum(v for k, v in spent.items() if k != "wall") == pytest.approx(spent["wall"], abs=0.1)
    assert min(spent["training"], spent["scoring"], spent["first step"], spent["test scoring"],
               spent["DVCLive"], spent["Keras"]) > 0
    # and each stage's start and end, for bench/overhead.py
    stage_times = json.loads((repo / "logs" / "stages" / "train@he_normal.json").read_text())
    assert stage_times["stage"] == "train@he_normal" and stage_times["end"] > stage_times["start"]

    # a typo in one experiment: the stage stops with one line and no committed result changes
    good = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(good.replace("initializer: he_normal", "initializer: kaiming"))
    run = shell("dvc repro", repo, check=False, timeout=300)
    assert run.returncode != 0 and "Traceback" not in run.stdout + run.stderr
    assert "error: experiments.he_normal.initializer = 'kaiming': must be one of" in run.stderr
    assert sh("git status --porcelain -- metrics report grid", repo) == ""
    (repo / "params.yaml").write_text(good)

    log = sh("dvc exp run -S experiments.he_normal.activation=selu", repo)
    assert ran_stages(log) == ["evaluate@he_normal", "report", "step0@he_normal",
                               "train@he_normal"]
    diff = json.loads(sh("dvc metrics diff --json", repo))
    assert {k for k in diff if k.startswith("metrics")} <= {
        os.path.join("metrics", "he_normal.json"),
        os.path.join("metrics", "step0", "he_normal.json")}, diff
    # ReLU6 caps at 6 and zeroes negatives, SELU does neither: the step-0 signal must change
    step0 = diff[os.path.join("metrics", "step0", "he_normal.json")]
    assert "max_signal_std" in step0 and "dead_units" in step0, step0
    params_diff = json.loads(sh("dvc params diff --json", repo))["params.yaml"]
    assert params_diff == {"experiments.he_normal.activation": {"old": "relu6", "new": "selu"}}

    # a run that diverges: the pipeline goes on, the metrics and the report say so
    log = sh("dvc exp run -S '+experiments.random_normal.learning_rate=1e30'", repo)
    # (step 0 takes no step: an experiment's learning rate does not re-run it)
    assert ran_stages(log) == ["evaluate@random_normal", "report", "train@random_normal"]
    diff = json.loads(sh("dvc metrics diff --json", repo))
    diverged = diff[os.path.join("metrics", "random_normal.json")]["diverged"]
    assert (diverged["old"], diverged["new"]) == (0, 1)
    summary = json.loads((repo / "report" / "summary.json").read_text())
    runs = {e["experiment"]: e for e in summary["experiments"]}
    assert runs["random_normal"]["diverged"] == 1 and runs["random_normal"]["test_accuracy"] is None
    assert runs["he_normal"]["test_accuracy"] is not None
    assert "random_normal: 1 of 1 run(s) diverged" in (repo / "report" / "summary.md").read_text()
