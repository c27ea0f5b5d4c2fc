"""Killing the pipeline leaves no training behind (issue 32): the train stage's runs end with
the stage's process, which ends with dvc (parent-death signals), and a run moves its outputs
into models/ only at its end, while its stage still runs."""
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from conftest import (ROOT, build_study, commit, listing, sh, stage, subprocess_env,
                      write_params)
from initstudy.parallel import PARENT, SEED_RUN, stage_is_running

BOUND = 30  # seconds within which every run must have ended


def processes():
    """{pid: (parent pid, state)} of every process (Linux /proc)."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:  # ended meanwhile
                continue
            found[int(name)] = (int(fields[1]), fields[0])
    return found


def command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def trainings(root):
    """The training processes below process `root`, the stage's (`python -m stages.train ...`)
    and its runs' (`python -m initstudy.seed_run ...`): {pid: arguments}."""
    table, below, found = processes(), {root}, {}
    while True:
        more = {pid for pid, (parent, _) in table.items() if parent in below} - below
        if not more:
            break
        below |= more
    for pid in below - {root}:
        args = command_line(pid)
        for module in ("stages.train", SEED_RUN):
            if module in args:
                found[pid] = args[args.index(module) + 1:]
    return found


def alive(pids):
    """Those of `pids` still running (a zombie has ended: nobody may have reaped it yet)."""
    table = processes()
    return [pid for pid in pids if pid in table and table[pid][1] != "Z"]


def wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def wait_until_training(log, seeds, process, timeout=300):
    """Until `log` shows every seed's run training (or `process` ended)."""
    def training():
        assert process.poll() is None, log.read_text()[-3000:]
        text = log.read_text()
        return all(f"training he_normal seed {seed}:" in text for seed in seeds)
    wait_for(training, timeout, f"seeds {seeds} training")


def test_a_run_tells_whether_its_stage_still_runs(monkeypatch):
    monkeypatch.delenv(PARENT, raising=False)
    assert stage_is_running()  # by hand: no stage
    monkeypatch.setenv(PARENT, str(os.getppid()))
    assert stage_is_running()
    monkeypatch.setenv(PARENT, str(os.getpid()))  # not this process's parent
    assert not stage_is_running()


def test_a_run_whose_stage_has_ended_stops_before_any_work(tmp_path):
    # pid 1 is not its parent: its stage is gone (it ended before the run could set its signal)
    start = time.time()
    run = stage(tmp_path, "stages.train", "he_normal", "0", check=False, timeout=60,
                PYTHONPATH=ROOT, **{PARENT: "1"})
    assert run.returncode == -signal.SIGKILL, run.stderr[-3000:]
    assert time.time() - start < BOUND
    assert os.listdir(tmp_path) == []


STAGE = """
import os, sys, time
from initstudy.parallel import end_with_parent
end_with_parent()
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
time.sleep(120)
"""


@pytest.mark.parametrize("shell", ["/bin/sh", "bash"])
def test_a_stage_ends_with_dvc_through_the_shell_dvc_starts_it_with(tmp_path, shell):
    # a stand-in for dvc: starts the stage as DVC does, `$SHELL -c <cmd>` (dash keeps the
    # shell between them, bash execs the command), then is killed with -9
    out = tmp_path / "stage.out"
    command = f"{sys.executable} -c {shlex.quote(STAGE)} {out}"
    dvc = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; "
         "subprocess.Popen([sys.argv[1], '-c', sys.argv[2]]); time.sleep(120)", shell, command],
        env=subprocess_env(DVC_STAGE="train", PYTHONPATH=ROOT))
    try:
        wait_for(lambda: out.exists() and out.read_text(), BOUND, "the stage started")
        pid = int(out.read_text())
        assert alive([pid])
    finally:
        dvc.kill()
        dvc.wait()
    wait_for(lambda: not alive([pid]), BOUND, f"stage {pid} ended")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_a_stopped_train_stage_stops_its_runs(prepared_project, tmp_path, signum):
    folder = prepared_project(tmp_path / "p", seeds=[0, 1], epochs=1)
    log = tmp_path / "train.log"
    with open(log, "w") as out:
        # SIGINT as a terminal sends it (a background job would start with it ignored)
        parent = subprocess.Popen([sys.executable, "-m", "stages.train", "he_normal"],
                                  cwd=folder, env=subprocess_env(), stdout=out,
                                  stderr=subprocess.STDOUT, preexec_fn=lambda: signal.signal(
                                      signal.SIGINT, signal.SIG_DFL))
    try:
        wait_until_training(log, [0, 1], parent)
        runs = trainings(parent.pid)
        assert sorted(runs.values()) == [["he_normal", "0"], ["he_normal", "1"]], runs
        os.kill(parent.pid, signum)
        parent.wait(BOUND)
        assert parent.returncode != 0
        wait_for(lambda: not alive(runs), BOUND, f"runs {list(runs)} ended")
    finally:
        parent.kill()
        parent.wait()
    # nothing reached models/: the runs trained beside it
    assert listing(folder / "models") == []


@pytest.mark.slow
def test_killing_dvc_ends_the_trainings_and_the_next_repro_is_consistent(tmp_path,
                                                                          mini_archive):
    repo = tmp_path / "study"
    params = build_study(repo, "tiny", mini_archive,
                         {"he_normal": {"initializer": "he_normal", "activation": "relu6"}})
    params["train"]["seeds"] = [0, 1]
    write_params(repo, params)
    sh("git init -q", repo)
    commit(repo, "study")
    sh("dvc repro train@he_normal", repo)
    commit(repo, "results")
    models = {f: (repo / "models" / f).read_bytes() for f in listing(repo / "models")}
    assert models

    # the same training again, killed with dvc while both seeds train
    sh("rm -rf .checkpoints", repo)  # else the runs rebuild their outputs from them at once
    log = tmp_path / "repro.log"
    dvc = os.path.join(os.path.dirname(sys.executable), "dvc")
    with open(log, "w") as out:
        repro = subprocess.Popen([dvc, "repro", "--force", "--single-item", "train@he_normal"],
                                 cwd=repo, env=subprocess_env(), stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        wait_until_training(log, [0, 1], repro)
        found = trainings(repro.pid)
        assert sorted(found.values()) == [["he_normal"], ["he_normal", "0"], ["he_normal", "1"]], \
            found
    finally:
        repro.kill()  # kill -9
        repro.wait()
    wait_for(lambda: not alive(found), BOUND, f"stage and runs {list(found)} ended")
    assert listing(repo / "models" / "he_normal") == []  # the runs trained beside it

    # the next repro restores the models from DVC's run-cache, and nothing changes them after
    assert "is cached - skipping run" in sh("dvc repro train@he_normal 2>&1", repo)
    assert "up to date" in sh("dvc status train@he_normal", repo)
    assert {f: (repo / "models" / f).read_bytes() for f in listing(repo / "models")} == models
    assert sh("git status --porcelain", repo) == ""
