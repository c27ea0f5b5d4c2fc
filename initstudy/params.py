"""params.yaml: loading, validation before any work, and one-line errors for the stages."""
import os
import re
import sys

import yaml

from initstudy.initializers import DEPTHWISE_FANS, INITIALIZERS

SOURCES = ("tfds", "folder")
ACTIVATIONS = ("relu6", "relu", "selu", "sigmoid", "tanh")  # relu6 = ReLU(max_value=6)
EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class StudyError(Exception):
    """A problem the user can fix (a bad param, missing data); shown as one line."""


def load_params(path="params.yaml"):
    with open(path) as f:
        return yaml.safe_load(f)


def _int_at_least(section, key, minimum, name):
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StudyError(f"{name}.{key} = {value!r}: must be an integer >= {minimum}")
    return value


def _one_of(value, allowed, name):
    if value not in allowed:
        raise StudyError(f"{name} = {value!r}: must be one of {', '.join(allowed)}")
    return value


def fan_name(value):
    """YAML reads an unquoted `true` as a boolean; the fan option means the word."""
    return "true" if value is True else value


def validate_prepare(params):
    p = params["prepare"]
    _one_of(p.get("source"), SOURCES, "prepare.source")
    _int_at_least(p, "storage_size", 8, "prepare")
    _int_at_least(p, "shards", 1, "prepare")
    if p.get("max_per_class") is not None:
        _int_at_least(p, "max_per_class", 1, "prepare")
    if p["source"] == "folder":
        folder = p.get("folder")
        if not folder or not os.path.exists(folder):
            raise StudyError(f"prepare.folder = {folder!r}: no such folder or .tar.gz "
                             "(expected train/<class>/* and test/<class>/*)")
    elif p.get("manual_dir") and not os.path.isdir(p["manual_dir"]):
        raise StudyError(f"prepare.manual_dir = {p['manual_dir']!r}: no such folder "
                         "(it should hold cifar-10-binary.tar.gz)")
    return p


def validate_experiment(params, name):
    experiments = params.get("experiments") or {}
    if name not in experiments:
        raise StudyError(f"experiment {name!r} is not in params.yaml experiments: "
                         f"{', '.join(experiments) or 'none'}")
    if not EXPERIMENT_NAME.match(name):
        raise StudyError(f"experiment name {name!r}: use letters, digits, '_' and '-' only")
    exp = experiments[name] or {}
    _one_of(exp.get("initializer"), INITIALIZERS, f"experiments.{name}.initializer")
    _one_of(exp.get("activation"), ACTIVATIONS, f"experiments.{name}.activation")
    unknown = set(exp) - {"initializer", "activation", "learning_rate"}
    if unknown:
        raise StudyError(f"experiments.{name} has unknown key(s) {', '.join(sorted(unknown))}: "
                         "allowed are initializer, activation, learning_rate")
    if "learning_rate" in exp:
        exp["learning_rate"] = _positive(exp["learning_rate"], f"experiments.{name}.learning_rate")
    return exp


def _positive(value, name):
    """A number > 0. PyYAML reads `1e-3` (no dot) as a string, which `-S` writes: accept it."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise StudyError(f"{name} = {value!r}: must be a number > 0")
    return value


def validate_seeds(params):
    seeds = params["train"].get("seeds")
    if (not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) != len(seeds)
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise StudyError(f"train.seeds = {seeds!r}: must be a list of distinct integers >= 0")
    return seeds


def validate_train(params, name, seed=None):
    """Checks model, train and one experiment (and seed); returns the experiment's settings."""
    model, train = params["model"], params["train"]
    _int_at_least(model, "image_size", 32, "model")
    model["depthwise_fan"] = fan_name(model.get("depthwise_fan"))
    _one_of(model["depthwise_fan"], DEPTHWISE_FANS, "model.depthwise_fan")
    if not isinstance(model.get("batch_norm"), bool):
        raise StudyError(f"model.batch_norm = {model.get('batch_norm')!r}: must be true or false")
    _int_at_least(train, "epochs", 1, "train")
    _int_at_least(train, "batch_size", 1, "train")
    train["learning_rate"] = _positive(train.get("learning_rate"), "train.learning_rate")
    from initstudy.device import PRECISIONS

    _one_of(train.get("precision", "auto"), PRECISIONS, "train.precision")
    for key in ("jit_compile", "deterministic"):
        if train.get(key, "auto") not in ("auto", True, False):
            raise StudyError(f"train.{key} = {train[key]!r}: must be auto, true or false")
    if train.get("steps_per_execution", "auto") != "auto":
        _int_at_least(train, "steps_per_execution", 1, "train")
    seeds = validate_seeds(params)
    if seed is not None and str(seed) not in map(str, seeds):
        raise StudyError(f"seed {seed!r} is not in train.seeds = {seeds}")
    return validate_experiment(params, name)


def validate_diagnostics(params):
    diag = params["diagnostics"]
    _int_at_least(diag, "images", 2, "diagnostics")
    _int_at_least(diag, "seed", 0, "diagnostics")
    return diag


def validate_grid(params):
    """The step-0 grid's axes: every value must be one the model knows."""
    validate_diagnostics(params)
    grid = params["grid"]
    _int_at_least(grid, "image_size", 32, "grid")
    if isinstance(grid.get("depthwise_fan"), list):
        grid["depthwise_fan"] = [fan_name(v) for v in grid["depthwise_fan"]]
    for key, allowed in (("activations", ACTIVATIONS), ("initializers", INITIALIZERS),
                         ("depthwise_fan", DEPTHWISE_FANS), ("batch_norm", (True, False))):
        values = grid.get(key)
        if not isinstance(values, list) or not values:
            raise StudyError(f"grid.{key} = {values!r}: must be a non-empty list")
        for v in values:
            if v not in allowed or (isinstance(v, bool) != isinstance(allowed[0], bool)):
                raise StudyError(f"grid.{key} has {v!r}: allowed are "
                                 f"{', '.join(str(a).lower() if isinstance(a, bool) else a for a in allowed)}")
    return grid


def run_stage(main):
    """Run a stage's main(); a StudyError becomes one line on stderr and exit status 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO lines drown the log
    try:
        main()
    except StudyError as e:
        message = " ".join(line.strip() for line in str(e).splitlines())  # always one line
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
