"""params.yaml -> one frozen config: every bad value is refused with one line naming it."""
import dataclasses
import os
import shutil

import pytest
import yaml

from conftest import ROOT, stage
from initstudy.config import load_study, parse_study
from initstudy.device import AUTO, device_settings
from initstudy.errors import StudyError

DEFAULTS = os.path.join(ROOT, "params.yaml")


def params_with(section, key, value):
    params = yaml.safe_load(open(DEFAULTS))
    params[section][key] = value
    return params


def test_default_experiments_are_the_reference_studys():
    study = load_study(DEFAULTS)
    reference = yaml.safe_load(open(os.path.join(ROOT, "reference", "published.yaml")))
    assert {e.name: (e.initializer, e.activation) for e in study.experiments.values()} == {
        name: (r["initializer"], r["activation"]) for name, r in reference["results"].items()}
    with pytest.raises(dataclasses.FrozenInstanceError):
        study.train.epochs = 1


@pytest.mark.parametrize("key,value,pattern", [
    ("initializer", "kaiming", r"experiments.he_normal.initializer = 'kaiming': must be one of "
                               r"random_normal, glorot_normal.*he_normal"),
    ("activation", "gelu", r"experiments.he_normal.activation = 'gelu': must be one of relu6.*selu"),
])
def test_unknown_initializer_or_activation(key, value, pattern):
    params = yaml.safe_load(open(DEFAULTS))
    params["experiments"]["he_normal"][key] = value
    with pytest.raises(StudyError, match=pattern):
        parse_study(params)


@pytest.mark.parametrize("section,key,value,pattern", [
    ("train", "epochs", 0, r"train.epochs = 0: must be an integer >= 1"),
    ("train", "batch_size", -4, r"train.batch_size = -4: must be an integer >= 1"),
    ("train", "epochs", 2.5, r"train.epochs = 2.5: must be an integer >= 1"),
    ("train", "learning_rate", 0, r"train.learning_rate = 0: must be a finite number > 0"),
    ("train", "precision", "fp8", r"train.precision = 'fp8': must be one of auto, float32"),
    ("train", "optimizer", "rmsprop", r"train.optimizer = 'rmsprop': must be one of sgd, momentum, adam"),
    ("train", "jit_compile", "yes", r"train.jit_compile = 'yes': must be true or false"),
    ("model", "image_size", 16, r"model.image_size = 16: must be an integer >= 32"),
    ("model", "batch_norm", "on", r"model.batch_norm = 'on': must be true or false"),
    ("model", "depthwise_fan", True, r"model.depthwise_fan = True: must be one of keras, per_channel"),
    ("model", "size", 32, r"model has unknown key\(s\) size: allowed are image_size"),
    ("prepare", "source", "web", r"prepare.source = 'web': must be one of tfds, folder"),
    ("grid", "depthwise_fan", ["keras", "true"], r"grid.depthwise_fan has 'true': allowed are keras"),
    ("grid", "batch_norm", [1], r"grid.batch_norm has 1: allowed are true, false"),
    ("diagnostics", "images", 1, r"diagnostics.images = 1: must be an integer >= 2"),
    ("model", "image_size", 100000, r"model.image_size = 100000 with train.batch_size = 64: a "
                                     r"training batch of 64 images at 100000x100000 needs about "
                                     r".* GB, this machine has .* GB; at 64 images use at most \d+px"),
    ("grid", "image_size", 50000, r"grid.image_size = 50000 with grid.images = 32: the "
                                  r"grid's step-0 batch"),
    ("grid", "init_seeds", [0, 0], r"grid.init_seeds = \[0, 0\]: must be a list of distinct"),
    ("prepare", "validation_per_class", 0, r"prepare.validation_per_class = 0: must be an "
                                           r"integer >= 1"),
    ("diagnostics", "images", 10 ** 9, r"model.image_size = 32 with diagnostics.images = 1000000000"
                                       r": .* use at most 0px, or fewer images"),
    ("train", "learning_rate", float("inf"), r"train.learning_rate = inf: must be a finite number"),
    ("prepare", "tfds_name", 123, r"prepare.tfds_name = 123: must be a non-empty name"),
    ("grid", "activations", ["relu", "relu"], r"grid.activations = \['relu', 'relu'\]: lists a "
                                              r"value twice"),
    ("model", 1, 2, r"model has unknown key\(s\) 1: allowed are"),
])
def test_bad_values_are_named_with_what_is_allowed(section, key, value, pattern):
    with pytest.raises(StudyError, match=pattern):
        parse_study(params_with(section, key, value))


@pytest.mark.parametrize("experiments,pattern", [
    ({"he_normal": "foo"}, r"experiments.he_normal = 'foo': must be a mapping"),
    (["he_normal"], r"experiments = \['he_normal'\]: must be a mapping of experiment names"),
    ({}, r"experiments = \{\}: must be a mapping"),
    ({"he normal": {"initializer": "he_normal", "activation": "relu"}},
     r"experiment name 'he normal': use letters, digits"),
    ({"he": {"initializer": "he_normal", "activation": "relu", "lr": 0.1}},
     r"experiments.he has unknown key\(s\) lr"),
])
def test_experiments_must_be_a_mapping_of_mappings(experiments, pattern):
    params = yaml.safe_load(open(DEFAULTS))
    params["experiments"] = experiments
    with pytest.raises(StudyError, match=pattern):
        parse_study(params)


@pytest.mark.parametrize("seeds", [[0, 1.5], [], [1, 1], "0", [-1], [True]])
def test_seeds_must_be_distinct_non_negative_integers(seeds):
    with pytest.raises(StudyError, match=r"train.seeds = .*: must be a list of distinct integers"):
        parse_study(params_with("train", "seeds", seeds))


def test_an_experiment_may_override_the_learning_rate():
    params = yaml.safe_load(open(DEFAULTS))
    params["experiments"]["he_normal"]["learning_rate"] = 0.2
    study = parse_study(params)
    assert study.experiment("he_normal").learning_rate == 0.2
    assert study.experiment("glorot_normal").learning_rate == study.train.learning_rate
    params["experiments"]["he_normal"]["learning_rate"] = -1
    with pytest.raises(StudyError, match=r"experiments.he_normal.learning_rate = -1"):
        parse_study(params)


def test_exponent_learning_rates_that_yaml_reads_as_strings_are_numbers():
    assert yaml.safe_load("lr: 1e-3")["lr"] == "1e-3"  # PyYAML: no dot, so a string
    assert parse_study(params_with("train", "learning_rate", "1e-3")).train.learning_rate == 0.001
    with pytest.raises(StudyError, match=r"train.learning_rate = 'fast': must be a finite number > 0"):
        parse_study(params_with("train", "learning_rate", "fast"))


def test_named_experiment_and_seed_must_be_in_the_study():
    study = load_study(DEFAULTS)
    with pytest.raises(StudyError, match=r"experiment 'nope' is not in params.yaml experiments"):
        study.experiment("nope")
    assert study.seed(str(study.train.seeds[0])) == study.train.seeds[0]
    with pytest.raises(StudyError, match=r"seed '99' is not in train.seeds"):
        study.seed("99")


@pytest.mark.parametrize("gpu", [False, True])
def test_auto_device_settings_resolve_per_device_and_explicit_values_win(gpu):
    train = load_study(DEFAULTS).train
    auto = device_settings(train, gpu)
    assert auto == AUTO["gpu" if gpu else "cpu"]
    assert auto.deterministic is not gpu  # bit-for-bit on a CPU; fast kernels on a GPU
    pinned = device_settings(dataclasses.replace(train, precision="float32", deterministic=True,
                                                 steps_per_execution=3), gpu)
    assert (pinned.precision, pinned.deterministic, pinned.steps_per_execution) == \
        ("float32", True, 3)
    assert pinned.device == ("gpu" if gpu else "cpu") and pinned.jit_compile == auto.jit_compile


@pytest.mark.parametrize("name,args,edit,pattern", [
    ("train", ["he_normal", "0"], ("train", "epochs", 0), "train.epochs = 0"),
    ("train", ["nope", "0"], None, "experiment 'nope' is not in params.yaml"),
    ("train", ["he_normal", "0"], ("train", "seeds", [0, "one"]), "train.seeds = [0, 'one']"),
    ("evaluate", ["he_normal"], ("train", "seeds", 3), "train.seeds = 3"),
    ("prepare", [], ("prepare", "folder", "/missing"), "prepare.folder = '/missing'"),
])
def test_stage_stops_with_one_line_and_writes_nothing(tmp_path, name, args, edit, pattern):
    shutil.copytree(os.path.join(ROOT, "initstudy"), tmp_path / "initstudy")
    shutil.copytree(os.path.join(ROOT, "stages"), tmp_path / "stages")
    params = yaml.safe_load(open(DEFAULTS))
    if edit:
        params[edit[0]][edit[1]] = edit[2]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = sorted(os.listdir(tmp_path))
    run = stage(tmp_path, f"stages.{name}", *args, check=False, timeout=120)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and pattern in run.stderr, run.stderr
    assert sorted(p for p in os.listdir(tmp_path) if p != "__pycache__") == before


def comment_on(key):
    """The comment on params.yaml's `key:` line, from its first `#`."""
    line = next(line for line in open(DEFAULTS) if line.strip().startswith(f"{key}:"))
    return line.rstrip("\n")[line.index("#"):]


@pytest.mark.parametrize("override,changed", [
    ("train.epochs=3", [f"  epochs: 3  {comment_on('epochs')}"]),  # the comment kept
    ("experiments.he_normal.activation=relu", ["    activation: relu"]),
    ("train.schedule=constant", None),
    ("train.seeds=[0,1,2,3]", ["  - 3"]),
])
def test_dvc_set_param_changes_only_the_changed_line(tmp_path, override, changed):
    """`dvc exp run -S` rewrites params.yaml through DVC's own writer; the file is laid out as
    that writer lays it out, so a review's `git diff params.yaml` is the change alone."""
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    shutil.copy(DEFAULTS, path)
    apply_overrides(str(path), [override])
    before, after = open(DEFAULTS).read().splitlines(), path.read_text().splitlines()
    import difflib

    diff = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    added = [line[1:] for line in diff if line.startswith("+")]
    assert len(added) == 1 and len(diff) <= 2, diff
    if changed:
        assert added == changed
    key, value = override.split("=", 1)
    node = yaml.safe_load(path.read_text())
    for part in key.split("."):
        node = node[part]
    assert node == yaml.safe_load(value)  # the override itself landed
    load_study(str(path))  # and the result is still a valid study (else StudyError)


def every_key(params, prefix=""):
    """Every leaf key of params.yaml's sections as a dotted path (experiments excluded: their
    learning_rate is optional by design, each falls back to train.learning_rate)."""
    for key, value in params.items():
        if prefix == "" and key == "experiments":
            continue
        if isinstance(value, dict):
            yield from every_key(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_params_yaml_is_the_one_place_a_default_lives():
    """The config code has no fallback of its own: no field has a default, and a key deleted
    from params.yaml stops with one line naming it instead of a silently different study."""
    from initstudy import config

    for cls in config.SECTIONS.values():
        defaulted = [f.name for f in dataclasses.fields(cls)
                     if f.default is not dataclasses.MISSING
                     or f.default_factory is not dataclasses.MISSING]
        assert not defaulted, f"{cls.__name__} has code defaults {defaulted}"
    params = yaml.safe_load(open(DEFAULTS))
    keys = list(every_key(params))
    assert len(keys) > 30 and "train.schedule" in keys
    for key in keys:
        section, name = key.split(".")
        broken = yaml.safe_load(open(DEFAULTS))
        del broken[section][name]
        with pytest.raises(StudyError, match=rf"^{section} has no {key}: every key must be set"):
            parse_study(broken)
