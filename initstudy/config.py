"""params.yaml as one frozen, typed config: validated, defaulted and resolved in one place.

Every stage calls `load_study()` once and passes the result (or a part of it) on; nothing
else reads params.yaml. A bad value stops with one line naming it and what is allowed.
"""
import dataclasses
import math
import re
from dataclasses import dataclass

import yaml

from initstudy.device import check_fits_in_memory
from initstudy.errors import StudyError
from initstudy.initializers import DEPTHWISE_FANS, INITIALIZERS

PARAMS = "params.yaml"
SOURCES = ("tfds", "folder")
ACTIVATIONS = ("relu6", "relu", "selu", "sigmoid", "tanh")  # relu6 = ReLU(max_value=6)
# How a residual branch enters the stream (initstudy.model): as it is, or SkipInit's scalar
RESIDUAL_SCALES = ("none", "skipinit")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("constant", "cosine", "linear")
EXPERIMENT_KEYS = ("initializer", "activation", "learning_rate")
EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


# ---------------------------------------------------------------- checks, one line each
def _int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StudyError(f"{name} = {value!r}: must be an integer >= {minimum}")
    return value


def _one_of(value, allowed, name):
    if value not in allowed or isinstance(value, bool):
        raise StudyError(f"{name} = {value!r}: must be one of {', '.join(allowed)}")
    return value


def _bool(value, name):
    if not isinstance(value, bool):
        raise StudyError(f"{name} = {value!r}: must be true or false")
    return value


def _auto_or(value, name, check):
    return value if value == "auto" and not isinstance(value, bool) else check(value, name)


def _positive(value, name):
    """A number > 0. PyYAML reads `1e-3` (no dot) as a string, which `-S` writes: accept it."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
            or not math.isfinite(value)):
        raise StudyError(f"{name} = {value!r}: must be a finite number > 0")
    return value


def _name(value, name):
    if not isinstance(value, str) or not value.strip():
        raise StudyError(f"{name} = {value!r}: must be a non-empty name")
    return value


def _optional_str(value, name):
    if value is not None and not isinstance(value, str):
        raise StudyError(f"{name} = {value!r}: must be a path or null")
    return value


def _list_of(values, name, allowed):
    if not isinstance(values, list) or not values:
        raise StudyError(f"{name} = {values!r}: must be a non-empty list")
    shown = ", ".join(str(a).lower() if isinstance(a, bool) else a for a in allowed)
    for v in values:
        if v not in allowed or isinstance(v, bool) != isinstance(allowed[0], bool):
            raise StudyError(f"{name} has {v!r}: allowed are {shown}")
    if len(set(values)) != len(values):
        raise StudyError(f"{name} = {values!r}: lists a value twice")
    return tuple(values)


def _seeds(seeds, name):
    if (not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) != len(seeds)
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise StudyError(f"{name} = {seeds!r}: must be a list of distinct integers >= 0")
    return tuple(seeds)


def _section(params, name, keys):
    """params[name] as a mapping with exactly `keys` (a missing key reads as None)."""
    section = params.get(name)
    if not isinstance(section, dict):
        raise StudyError(f"{name} = {section!r}: must be a mapping with keys {', '.join(keys)}")
    unknown = sorted(map(str, set(section) - set(keys)))
    if unknown:
        raise StudyError(f"{name} has unknown key(s) {', '.join(map(str, unknown))}: "
                         f"allowed are {', '.join(keys)}")
    return section


def _fields(cls):
    return [f.name for f in dataclasses.fields(cls)]


# ---------------------------------------------------------------- the config
@dataclass(frozen=True)
class Prepare:
    source: str
    tfds_name: str
    data_dir: str | None
    manual_dir: str | None
    folder: str | None
    storage_size: int
    max_per_class: int | None
    shards: int
    validation_per_class: int = 500
    split_seed: int = 0

    @classmethod
    def parse(cls, p):
        return cls(source=_one_of(p.get("source"), SOURCES, "prepare.source"),
                    tfds_name=_name(p.get("tfds_name"), "prepare.tfds_name"),
                    data_dir=_optional_str(p.get("data_dir"), "prepare.data_dir"),
                    manual_dir=_optional_str(p.get("manual_dir"), "prepare.manual_dir"),
                    folder=_optional_str(p.get("folder"), "prepare.folder"),
                    storage_size=_int(p.get("storage_size"), "prepare.storage_size", 8),
                    max_per_class=None if p.get("max_per_class") is None else
                    _int(p.get("max_per_class"), "prepare.max_per_class", 1),
                    shards=_int(p.get("shards"), "prepare.shards", 1),
                    validation_per_class=_int(p.get("validation_per_class", 500),
                                              "prepare.validation_per_class", 1),
                    split_seed=_int(p.get("split_seed", 0), "prepare.split_seed", 0))


@dataclass(frozen=True)
class Model:
    image_size: int
    batch_norm: bool
    depthwise_fan: str
    residual_scale: str = "none"

    @classmethod
    def parse(cls, m):
        return cls(image_size=_int(m.get("image_size"), "model.image_size", 32),
                   batch_norm=_bool(m.get("batch_norm"), "model.batch_norm"),
                   depthwise_fan=_one_of(m.get("depthwise_fan"), DEPTHWISE_FANS,
                                         "model.depthwise_fan"),
                   residual_scale=_one_of(m.get("residual_scale", "none"), RESIDUAL_SCALES,
                                          "model.residual_scale"))


@dataclass(frozen=True)
class Train:
    epochs: int
    batch_size: int
    learning_rate: float
    seeds: tuple
    schedule: str = "constant"
    precise_bn_batches: int = 0
    parallel_runs: object = "auto"
    inference_images: int = 5000
    weight_update_steps: int = 200
    precision: str = "auto"
    jit_compile: object = "auto"
    steps_per_execution: object = "auto"
    deterministic: object = "auto"

    @classmethod
    def parse(cls, t):
        return cls(epochs=_int(t.get("epochs"), "train.epochs", 1),
                   batch_size=_int(t.get("batch_size"), "train.batch_size", 1),
                   learning_rate=_positive(t.get("learning_rate"), "train.learning_rate"),
                   seeds=_seeds(t.get("seeds"), "train.seeds"),
                   schedule=_one_of(t.get("schedule", "constant"), SCHEDULES, "train.schedule"),
                   precise_bn_batches=_int(t.get("precise_bn_batches", 0),
                                           "train.precise_bn_batches", 0),
                   parallel_runs=_auto_or(t.get("parallel_runs", "auto"), "train.parallel_runs",
                                          lambda v, n: _int(v, n, 1)),
                   inference_images=_int(t.get("inference_images", 5000),
                                         "train.inference_images", 1),
                   weight_update_steps=_int(t.get("weight_update_steps", 200),
                                            "train.weight_update_steps", 0),
                   precision=_one_of(t.get("precision", "auto"), PRECISIONS, "train.precision"),
                   jit_compile=_auto_or(t.get("jit_compile", "auto"), "train.jit_compile", _bool),
                   steps_per_execution=_auto_or(t.get("steps_per_execution", "auto"),
                                                "train.steps_per_execution",
                                                lambda v, n: _int(v, n, 1)),
                   deterministic=_auto_or(t.get("deterministic", "auto"), "train.deterministic",
                                          _bool))


@dataclass(frozen=True)
class Experiment:
    name: str
    initializer: str
    activation: str
    learning_rate: float  # the experiment's own, else train.learning_rate

    @classmethod
    def parse(cls, name, e, train):
        if not isinstance(name, str) or not EXPERIMENT_NAME.match(name):
            raise StudyError(f"experiment name {name!r}: use letters, digits, '_' and '-' only")
        where = f"experiments.{name}"
        if not isinstance(e, dict):
            raise StudyError(f"{where} = {e!r}: must be a mapping with initializer, activation "
                             "and optionally learning_rate")
        unknown = sorted(map(str, set(e) - set(EXPERIMENT_KEYS)))
        if unknown:
            raise StudyError(f"{where} has unknown key(s) {', '.join(map(str, unknown))}: "
                             f"allowed are {', '.join(EXPERIMENT_KEYS)}")
        return cls(name=name,
                   initializer=_one_of(e.get("initializer"), INITIALIZERS, f"{where}.initializer"),
                   activation=_one_of(e.get("activation"), ACTIVATIONS, f"{where}.activation"),
                   learning_rate=_positive(e["learning_rate"], f"{where}.learning_rate")
                   if "learning_rate" in e else train.learning_rate)


@dataclass(frozen=True)
class Diagnostics:
    images: int
    seed: int

    @classmethod
    def parse(cls, d):
        return cls(images=_int(d.get("images"), "diagnostics.images", 2),
                   seed=_int(d.get("seed"), "diagnostics.seed", 0))


@dataclass(frozen=True)
class Grid:
    image_size: int
    images: int
    init_seeds: tuple
    activations: tuple
    initializers: tuple
    batch_norm: tuple
    depthwise_fan: tuple

    @classmethod
    def parse(cls, g):
        return cls(image_size=_int(g.get("image_size"), "grid.image_size", 32),
                   images=_int(g.get("images"), "grid.images", 2),
                   init_seeds=_seeds(g.get("init_seeds"), "grid.init_seeds"),
                   activations=_list_of(g.get("activations"), "grid.activations", ACTIVATIONS),
                   initializers=_list_of(g.get("initializers"), "grid.initializers", INITIALIZERS),
                   batch_norm=_list_of(g.get("batch_norm"), "grid.batch_norm", (True, False)),
                   depthwise_fan=_list_of(g.get("depthwise_fan"), "grid.depthwise_fan",
                                          DEPTHWISE_FANS))


@dataclass(frozen=True)
class Study:
    prepare: Prepare
    model: Model
    train: Train
    experiments: dict  # name -> Experiment, in params.yaml's order
    diagnostics: Diagnostics
    grid: Grid

    def experiment(self, name):
        if name not in self.experiments:
            raise StudyError(f"experiment {name!r} is not in params.yaml experiments: "
                             f"{', '.join(self.experiments) or 'none'}")
        return self.experiments[name]

    def seed(self, text):
        """A seed named on a stage's command line, which must be one of train.seeds."""
        if text not in map(str, self.train.seeds):
            raise StudyError(f"seed {text!r} is not in train.seeds = {list(self.train.seeds)}")
        return int(text)


SECTIONS = {"prepare": Prepare, "model": Model, "train": Train, "diagnostics": Diagnostics,
            "grid": Grid}


def parse_study(params):
    """The validated Study from params.yaml's content (a dict); raises StudyError."""
    if not isinstance(params, dict):
        raise StudyError(f"{PARAMS} must be a mapping of sections: {', '.join(SECTIONS)}, "
                         "experiments")
    parsed = {name: cls.parse(_section(params, name, _fields(cls)))
              for name, cls in SECTIONS.items()}
    experiments = params.get("experiments")
    if not isinstance(experiments, dict) or not experiments:
        raise StudyError(f"experiments = {experiments!r}: must be a mapping of experiment names "
                         "to {initializer, activation}")
    parsed["experiments"] = {name: Experiment.parse(name, e, parsed["train"])
                             for name, e in experiments.items()}
    study = Study(**parsed)
    check_fits_in_memory(study.model.image_size, study.train.batch_size, "model.image_size",
                         "train.batch_size", "a training batch")
    check_fits_in_memory(study.model.image_size, study.diagnostics.images, "model.image_size",
                         "diagnostics.images", "the step-0 batch")
    check_fits_in_memory(study.grid.image_size, study.grid.images, "grid.image_size",
                         "grid.images", "the grid's step-0 batch")
    return study


def read_yaml(path):
    """A YAML file's content; an unreadable or malformed file is one line naming it."""
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise StudyError(f"cannot read {path}: {' '.join(str(e).split())}") from None


def load_study(path=PARAMS):
    return parse_study(read_yaml(path))
