"""Failure behaviour: bad inputs stop before work, shards are checked, training resumes."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from initstudy.errors import StudyError
from conftest import (ROOT, build_study, listing, make_folder, stage, subprocess_env,
                      write_params)


def test_corrupted_shard_is_refused_by_name(prepared):
    shard = prepared / "data" / "prepared" / "train-00001-of-00002.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-100])  # truncated
    run = stage(prepared, "stages.train", "he_normal", "0", check=False)
    assert run.returncode == 2
    assert "train-00001-of-00002.tfrecord" in run.stderr and "sha256" in run.stderr
    assert not (prepared / "models").exists()


def read_history(folder, name="he_normal"):
    return json.loads((folder / "models" / name / "seed0" / "history.json").read_text())


@pytest.mark.slow
def test_killed_training_resumes_at_its_last_epoch_and_matches(prepared, tmp_path_factory):
    proc = subprocess.Popen([sys.executable, "-m", "stages.train", "he_normal", "0"],
                            cwd=prepared, env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    state = None
    while time.time() < deadline and proc.poll() is None:
        found = list((prepared / ".checkpoints").glob("he_normal-seed0-*/state.json"))
        if found and len(json.loads(found[0].read_text())["epochs"]) == 1:
            state = found[0]
            break
        time.sleep(0.05)
    assert state is not None, "no checkpoint after epoch 1"
    os.kill(proc.pid, signal.SIGKILL)  # during epoch 2 of 3
    proc.wait()
    assert not (prepared / "models" / "he_normal" / "seed0" / "history.json").exists()

    resumed = stage(prepared, "stages.train", "he_normal", "0")
    assert "resuming he_normal seed 0 after epoch 1" in resumed.stdout
    assert "epochs 2-3" in resumed.stdout
    # the finished run's checkpoint stays: the same run again rebuilds its outputs, untrained
    assert len(list((prepared / ".checkpoints").iterdir())) == 1
    done = read_history(prepared)
    shutil.rmtree(prepared / "models")
    again = stage(prepared, "stages.train", "he_normal", "0")
    assert "finished he_normal seed 0 after epoch 3" in again.stdout
    assert "training he_normal" not in again.stdout
    assert read_history(prepared) == done

    # the same run without interruption, elsewhere
    fresh = tmp_path_factory.mktemp("uninterrupted")
    for item in ("initstudy", "stages", "params.yaml", "data"):
        src = prepared / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, fresh / item)
    stage(fresh, "stages.train", "he_normal", "0")
    a, b = read_history(prepared), read_history(fresh)
    assert a["epochs"] == b["epochs"] == 3
    strip = [{k: v for k, v in e.items()} for e in a["history"]]
    assert strip == b["history"]  # bit for bit: every loss and accuracy of every epoch
    live = json.loads((prepared / "models" / "he_normal" / "seed0" / "live" / "metrics.json")
                      .read_text())
    assert live["step"] == 2  # DVCLive continued: steps 0, 1, 2


@pytest.mark.slow
def test_same_seed_same_weights_other_seed_other_weights(prepared):
    import keras

    params = yaml.safe_load((prepared / "params.yaml").read_text())
    params["train"].update(epochs=1, seeds=[0, 1])
    write_params(prepared, params)
    stage(prepared, "stages.train", "he_normal", "0")
    first = keras.models.load_model(prepared / "models/he_normal/seed0/model.keras").get_weights()
    history = read_history(prepared)["history"]
    shutil.rmtree(prepared / "models")
    shutil.rmtree(prepared / ".checkpoints")  # else the finished run is restored, not retrained
    stage(prepared, "stages.train", "he_normal", "0")
    again = keras.models.load_model(prepared / "models/he_normal/seed0/model.keras").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert read_history(prepared)["history"] == history
    stage(prepared, "stages.train", "he_normal", "1")
    other = keras.models.load_model(prepared / "models/he_normal/seed1/model.keras").get_weights()
    assert not all(np.array_equal(x, y) for x, y in zip(first, other))


@pytest.mark.slow
def test_diverging_run_is_recorded_and_evaluated_as_diverged(prepared):
    params = yaml.safe_load((prepared / "params.yaml").read_text())
    params["train"]["epochs"] = 2
    params["experiments"]["he_normal"]["learning_rate"] = 1e30
    write_params(prepared, params)
    run = stage(prepared, "stages.train", "he_normal", "0")
    assert "diverged in epoch 1" in run.stdout
    history = read_history(prepared)
    assert history["diverged"] and history["diverged_epoch"] == 1 and history["epochs"] == 1
    assert not (prepared / "models" / "he_normal" / "seed0" / "test.json").exists()  # NaN logits
    stage(prepared, "stages.evaluate", "he_normal")
    metrics = json.loads((prepared / "metrics" / "he_normal.json").read_text())
    assert metrics["diverged"] == 1 and metrics["test_accuracy"] is None


@pytest.mark.parametrize("case,expected", [
    ("empty folder", "no train/<class>/ images found"),
    ("class without images", "class folder test/b in"),
    ("different classes", "train and test have different classes (only in train: b; only in test: c)"),
    ("corrupt image", "not an image PIL can read"),
    ("missing archive", "no such folder or .tar.gz"),
    ("not an archive", "not a readable folder or tar archive"),
])
def test_bad_data_stops_prepare_with_one_line_and_writes_nothing(tmp_path, mini_archive, case,
                                                                  expected):
    study = tmp_path / "study"
    study.mkdir()
    params = build_study(study, "stages", mini_archive)
    data = tmp_path / "images"
    if case == "empty folder":
        data.mkdir()
    elif case == "class without images":
        make_folder(data, {"train": {"a": 1, "b": 1}, "test": {"a": 1}})
        (data / "test" / "b").mkdir()
        (data / "test" / "b" / "notes.txt").write_text("no images here")
    elif case == "different classes":
        make_folder(data, {"train": {"a": 1, "b": 1}, "test": {"a": 1, "c": 1}})
    elif case == "corrupt image":
        make_folder(data, {"train": {"a": 2}, "test": {"a": 1}})
        (data / "train" / "a" / "1.png").write_bytes(b"\x89PNG broken")
    elif case == "missing archive":
        data = tmp_path / "nowhere.tar.gz"
    elif case == "not an archive":
        data = tmp_path / "fake.tar.gz"
        data.write_bytes(b"this is not gzip")
    params["prepare"]["folder"] = str(data)
    write_params(study, params)
    before = listing(study)
    run = stage(study, "stages.prepare", check=False)
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]  # progress bars may come before it
    assert last.startswith("error: ") and expected in last, run.stderr
    assert "Traceback" not in run.stderr
    if case == "corrupt image":
        assert "1.png" in run.stderr
    assert listing(study) == before


def test_checkpoint_key_changes_with_what_the_run_depends_on_and_only_that():
    import dataclasses

    from initstudy.config import load_study
    from initstudy.training import run_key

    study = load_study(os.path.join(ROOT, "params.yaml"))
    he = study.experiment("he_normal")
    manifest = {"splits": {"train": {"shards": [{"sha256": "a"}]}}}
    key = run_key(study, he, 0, manifest)
    assert run_key(study, he, 0, manifest) == key
    more_seeds = dataclasses.replace(study, train=dataclasses.replace(study.train, seeds=(0, 1, 2)))
    assert run_key(more_seeds, he, 0, manifest) == key  # other seeds do not change this run
    longer = dataclasses.replace(study, train=dataclasses.replace(study.train, epochs=99))
    changed = [run_key(longer, he, 0, manifest), run_key(study, he, 1, manifest),
               run_key(study, dataclasses.replace(he, learning_rate=0.3), 0, manifest),
               run_key(study, he, 0, {"splits": {"train": {"shards": [{"sha256": "b"}]}}})]
    assert len({key, *changed}) == 5


def test_report_names_the_stage_to_rerun_for_a_missing_input_and_keeps_its_results(prepared):
    (prepared / "report").mkdir()
    (prepared / "report" / "summary.md").write_text("the last good report\n")
    run = stage(prepared, "stages.report", check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1
    assert "eval/random_normal/runs.json is missing: run `dvc repro evaluate@random_normal`" \
        in run.stderr
    assert (prepared / "report" / "summary.md").read_text() == "the last good report\n"


def test_truncated_archive_is_refused_in_one_line(tmp_path, mini_archive):
    study = tmp_path / "study"
    study.mkdir()
    params = build_study(study, "stages", mini_archive)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(open(mini_archive, "rb").read()[:300_000])
    params["prepare"]["folder"] = str(truncated)
    write_params(study, params)
    run = stage(study, "stages.prepare", check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: prepare.folder = ") and "truncated" in last
    assert not (study / "data").exists()


@pytest.mark.parametrize("reader", [("stages.step0", "he_normal"), ("stages.grid",)])
def test_every_reader_refuses_a_changed_shard(prepared, reader):
    shard = prepared / "data" / "prepared" / "test-00000-of-00002.tfrecord"
    data = bytearray(shard.read_bytes())
    data[100] ^= 1  # one bit flipped
    shard.write_bytes(bytes(data))
    run = stage(prepared, *reader, check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "test-00000-of-00002.tfrecord is missing, truncated or changed" in run.stderr


@pytest.mark.parametrize("reader,folder", [
    (("stages.evaluate", "he_normal"), "metrics"), (("stages.step0", "he_normal"), "metrics/step0"),
    (("stages.grid",), "grid")])
def test_an_unwritable_output_folder_stops_a_stage_before_it_changes_anything(prepared, reader,
                                                                             folder):
    # a file where the folder should be: unwritable for every user (root ignores permissions)
    (prepared / folder).parent.mkdir(parents=True, exist_ok=True)
    (prepared / folder).write_text("in the way\n")
    (prepared / "eval" / "he_normal").mkdir(parents=True)
    (prepared / "eval" / "he_normal" / "runs.json").write_text("the last good runs\n")
    before = {f: (prepared / f).read_bytes() for f in listing(prepared)}
    run = stage(prepared, *reader, check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1 and f"error: cannot write to {folder}/" in run.stderr
    assert {f: (prepared / f).read_bytes() for f in listing(prepared)} == before


@pytest.mark.parametrize("args,path,expected", [
    (["2"], "/usr/bin:/bin", "error: dvc is not on PATH: the queue's workers start `dvc exp run`"),
    (["two"], None, "error: JOBS = 'two': must be a whole number >= 1")])
def test_queue_start_checks_its_preconditions_in_one_line(tmp_path, args, path, expected):
    run = stage(tmp_path, "tools.queue", *args, check=False, timeout=60, PYTHONPATH=ROOT,
                **({"PATH": path} if path else {}))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(expected)


def test_a_run_without_test_scores_names_the_train_stage_to_rerun(tmp_path):
    from stages import evaluate

    with pytest.raises(StudyError, match=r"test\.json is missing .*`dvc repro --force "
                                         r"train@he_normal`$"):
        evaluate.test_scores(str(tmp_path), "he_normal")
