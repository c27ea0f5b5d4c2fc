import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from initstudy.params import StudyError, load_params, validate_prepare, validate_train

DEFAULTS = os.path.join(ROOT, "params.yaml")


def params_with(section, key, value):
    params = load_params(DEFAULTS)
    params[section][key] = value
    return params


def test_defaults_are_the_seed_study():
    params = load_params(DEFAULTS)
    assert params["prepare"]["source"] == "tfds" and params["prepare"]["tfds_name"] == "cifar10"
    assert params["model"]["image_size"] == 224 and params["train"]["epochs"] == 10
    assert {k: (v["initializer"], v["activation"]) for k, v in params["experiments"].items()} == {
        "random_normal": ("random_normal", "relu6"), "glorot_normal": ("glorot_normal", "relu6"),
        "he_normal": ("he_normal", "relu6"), "lecun_normal": ("lecun_normal", "selu")}
    for name in params["experiments"]:
        validate_train(params, name)
    validate_prepare(params)


@pytest.mark.parametrize("key,value,pattern", [
    ("initializer", "kaiming", r"experiments.he_normal.initializer = 'kaiming': must be one of "
                               r"random_normal, glorot_normal.*he_normal"),
    ("activation", "gelu", r"experiments.he_normal.activation = 'gelu': must be one of relu6.*selu"),
])
def test_unknown_initializer_or_activation(key, value, pattern):
    params = load_params(DEFAULTS)
    params["experiments"]["he_normal"][key] = value
    with pytest.raises(StudyError, match=pattern):
        validate_train(params, "he_normal")


@pytest.mark.parametrize("section,key,value,pattern", [
    ("train", "epochs", 0, r"train.epochs = 0: must be an integer >= 1"),
    ("train", "batch_size", -4, r"train.batch_size = -4: must be an integer >= 1"),
    ("train", "epochs", 2.5, r"train.epochs = 2.5: must be an integer >= 1"),
    ("train", "learning_rate", 0, r"train.learning_rate = 0: must be a number > 0"),
    ("model", "image_size", 16, r"model.image_size = 16: must be an integer >= 32"),
    ("model", "depthwise_fan", "exact", r"model.depthwise_fan = 'exact': must be one of keras, true"),
])
def test_bad_training_params(section, key, value, pattern):
    with pytest.raises(StudyError, match=pattern):
        validate_train(params_with(section, key, value), "he_normal")


def test_missing_data_folder():
    params = params_with("prepare", "source", "folder")
    params["prepare"]["folder"] = "/no/such/images"
    with pytest.raises(StudyError, match=r"prepare.folder = '/no/such/images': no such folder"):
        validate_prepare(params)


@pytest.mark.parametrize("stage,args,edit,pattern", [
    ("train", ["he_normal", "0"], ("train", "epochs", 0), "train.epochs = 0"),
    ("train", ["nope", "0"], None, "experiment 'nope' is not in params.yaml"),
    ("train", ["he_normal", "0"], ("train", "seeds", [0, "one"]), "train.seeds = [0, 'one']"),
    ("evaluate", ["he_normal"], ("train", "seeds", 3), "train.seeds = 3"),
    ("prepare", [], ("prepare", "folder", "/missing"), "prepare.folder = '/missing'"),
])
def test_stage_stops_with_one_line_and_writes_nothing(tmp_path, stage, args, edit, pattern):
    shutil.copytree(os.path.join(ROOT, "initstudy"), tmp_path / "initstudy")
    shutil.copytree(os.path.join(ROOT, "stages"), tmp_path / "stages")
    params = load_params(DEFAULTS)
    params["prepare"]["source"] = "folder"
    if edit:
        params[edit[0]][edit[1]] = edit[2]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = sorted(os.listdir(tmp_path))
    run = subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and pattern in run.stderr, run.stderr
    assert sorted(p for p in os.listdir(tmp_path) if p != "__pycache__") == before


@pytest.mark.parametrize("name", ["he normal", "he/normal", "he.normal", "-x"])
def test_experiment_names_dvc_and_file_systems_cannot_carry(name):
    params = load_params(DEFAULTS)
    params["experiments"][name] = {"initializer": "he_normal", "activation": "relu"}
    with pytest.raises(StudyError, match=r"experiment name .*: use letters, digits"):
        validate_train(params, name)


@pytest.mark.parametrize("seeds", [[0, 1.5], [], [1, 1], "0", [-1], [True]])
def test_seeds_must_be_distinct_non_negative_integers(seeds):
    with pytest.raises(StudyError, match=r"train.seeds = .*: must be a list of distinct integers"):
        validate_train(params_with("train", "seeds", seeds), "he_normal")


def test_experiment_may_override_the_learning_rate_but_not_invent_keys():
    params = load_params(DEFAULTS)
    params["experiments"]["he_normal"]["learning_rate"] = 0.2
    assert validate_train(params, "he_normal")["learning_rate"] == 0.2
    params["experiments"]["he_normal"]["learning_rate"] = -1
    with pytest.raises(StudyError, match=r"experiments.he_normal.learning_rate = -1"):
        validate_train(params, "he_normal")
    params["experiments"]["he_normal"] = {"initializer": "he_normal", "activation": "relu",
                                          "lr": 0.1}
    with pytest.raises(StudyError, match=r"unknown key\(s\) lr"):
        validate_train(params, "he_normal")


def test_exponent_learning_rates_that_yaml_reads_as_strings_are_numbers():
    params = yaml.safe_load("train: {learning_rate: 1e-3}")  # PyYAML: no dot, so a string
    assert params["train"]["learning_rate"] == "1e-3"
    full = params_with("train", "learning_rate", "1e-3")
    validate_train(full, "he_normal")
    assert full["train"]["learning_rate"] == 0.001
    with pytest.raises(StudyError, match=r"train.learning_rate = 'fast': must be a number > 0"):
        validate_train(params_with("train", "learning_rate", "fast"), "he_normal")
