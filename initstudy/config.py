"""params.yaml as one frozen, typed config: validated and resolved in one place.

Every stage calls `load_study()` once and passes the result (or a part of it) on; nothing
else reads params.yaml. A bad value stops with one line naming it and what is allowed.
"""
import re
from dataclasses import dataclass

import yaml

from initstudy.checks import (auto_or, boolean, check_fits_in_memory, field_names, integer,
                              list_of, non_empty_name, one_of, optional_path, positive, seed_list,
                              section)
from initstudy.errors import StudyError
from initstudy.initializers import DEPTHWISE_FANS, INITIALIZERS

PARAMS = "params.yaml"
SOURCES = ("tfds", "folder")
ACTIVATIONS = ("relu6", "relu", "selu", "sigmoid", "tanh")  # relu6 = ReLU(max_value=6)
# How a residual branch enters the stream (initstudy.model): as it is, or SkipInit's scalar
RESIDUAL_SCALES = ("none", "skipinit")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("constant", "cosine", "linear")
OPTIMIZERS = ("sgd", "momentum", "adam")  # plain SGD (the reference) | SGD + momentum 0.9 | Adam
EXPERIMENT_KEYS = ("initializer", "activation", "learning_rate")
EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


# ---------------------------------------------------------------- the config
# No field has a default: every value comes from params.yaml, the one place a default lives
# (checks.section refuses a missing key), so deleting a line there is an error, not a
# silently different study.
@dataclass(frozen=True)
class Prepare:
    source: str
    folder: str | None
    tfds_name: str
    data_dir: str | None
    manual_dir: str | None
    storage_size: int
    max_per_class: int | None
    shards: int
    validation_per_class: int
    split_seed: int

    @classmethod
    def parse(cls, p):
        return cls(source=one_of(p["source"], SOURCES, "prepare.source"),
                   folder=optional_path(p["folder"], "prepare.folder"),
                   tfds_name=non_empty_name(p["tfds_name"], "prepare.tfds_name"),
                   data_dir=optional_path(p["data_dir"], "prepare.data_dir"),
                   manual_dir=optional_path(p["manual_dir"], "prepare.manual_dir"),
                   storage_size=integer(p["storage_size"], "prepare.storage_size", 8),
                   max_per_class=None if p["max_per_class"] is None else
                   integer(p["max_per_class"], "prepare.max_per_class", 1),
                   shards=integer(p["shards"], "prepare.shards", 1),
                   validation_per_class=integer(p["validation_per_class"],
                                                "prepare.validation_per_class", 1),
                   split_seed=integer(p["split_seed"], "prepare.split_seed", 0))


@dataclass(frozen=True)
class Model:
    image_size: int
    batch_norm: bool
    depthwise_fan: str
    residual_scale: str

    @classmethod
    def parse(cls, m):
        return cls(image_size=integer(m["image_size"], "model.image_size", 32),
                   batch_norm=boolean(m["batch_norm"], "model.batch_norm"),
                   depthwise_fan=one_of(m["depthwise_fan"], DEPTHWISE_FANS,
                                        "model.depthwise_fan"),
                   residual_scale=one_of(m["residual_scale"], RESIDUAL_SCALES,
                                         "model.residual_scale"))


def positive_integer(value, name):
    return integer(value, name, 1)


@dataclass(frozen=True)
class Train:
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    schedule: str
    precise_bn_batches: int
    seeds: tuple
    parallel_runs: object
    inference_images: int
    weight_update_steps: int
    precision: str
    jit_compile: object
    steps_per_execution: object
    deterministic: object

    @classmethod
    def parse(cls, t):
        return cls(epochs=integer(t["epochs"], "train.epochs", 1),
                   batch_size=integer(t["batch_size"], "train.batch_size", 1),
                   learning_rate=positive(t["learning_rate"], "train.learning_rate"),
                   optimizer=one_of(t["optimizer"], OPTIMIZERS, "train.optimizer"),
                   schedule=one_of(t["schedule"], SCHEDULES, "train.schedule"),
                   precise_bn_batches=integer(t["precise_bn_batches"],
                                              "train.precise_bn_batches", 0),
                   seeds=seed_list(t["seeds"], "train.seeds"),
                   parallel_runs=auto_or(t["parallel_runs"], "train.parallel_runs",
                                         positive_integer),
                   inference_images=integer(t["inference_images"], "train.inference_images", 1),
                   weight_update_steps=integer(t["weight_update_steps"],
                                               "train.weight_update_steps", 0),
                   precision=one_of(t["precision"], PRECISIONS, "train.precision"),
                   jit_compile=auto_or(t["jit_compile"], "train.jit_compile", boolean),
                   steps_per_execution=auto_or(t["steps_per_execution"],
                                               "train.steps_per_execution", positive_integer),
                   deterministic=auto_or(t["deterministic"], "train.deterministic", boolean))


@dataclass(frozen=True)
class Experiment:
    name: str
    initializer: str
    activation: str
    learning_rate: float  # the experiment's own, else train.learning_rate

    @classmethod
    def parse(cls, name, e, default_rate):
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
                   initializer=one_of(e.get("initializer"), INITIALIZERS, f"{where}.initializer"),
                   activation=one_of(e.get("activation"), ACTIVATIONS, f"{where}.activation"),
                   learning_rate=positive(e["learning_rate"], f"{where}.learning_rate")
                   if "learning_rate" in e else default_rate)


@dataclass(frozen=True)
class Diagnostics:
    images: int
    seed: int

    @classmethod
    def parse(cls, d):
        return cls(images=integer(d["images"], "diagnostics.images", 2),
                   seed=integer(d["seed"], "diagnostics.seed", 0))


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
        return cls(image_size=integer(g["image_size"], "grid.image_size", 32),
                   images=integer(g["images"], "grid.images", 2),
                   init_seeds=seed_list(g["init_seeds"], "grid.init_seeds"),
                   activations=list_of(g["activations"], "grid.activations", ACTIVATIONS),
                   initializers=list_of(g["initializers"], "grid.initializers", INITIALIZERS),
                   batch_norm=list_of(g["batch_norm"], "grid.batch_norm", (True, False)),
                   depthwise_fan=list_of(g["depthwise_fan"], "grid.depthwise_fan",
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
    parsed = {name: cls.parse(section(params, name, field_names(cls)))
              for name, cls in SECTIONS.items()}
    experiments = params.get("experiments")
    if not isinstance(experiments, dict) or not experiments:
        raise StudyError(f"experiments = {experiments!r}: must be a mapping of experiment names "
                         "to {initializer, activation}")
    parsed["experiments"] = {
        name: Experiment.parse(name, e, parsed["train"].learning_rate)
        for name, e in experiments.items()}
    study = Study(**parsed)
    check_fits_in_memory(study.model.image_size, study.train.batch_size, "model.image_size",
                         "train.batch_size", "a training batch")
    check_fits_in_memory(study.model.image_size, study.diagnostics.images, "model.image_size",
                         "diagnostics.images", "the step-0 batch")
    check_fits_in_memory(study.grid.image_size, study.grid.images, "grid.image_size",
                         "grid.images", "the grid's step-0 batch")
    return study


def learning_rate(params, name):
    """The rate experiment `name` trains at under params.yaml's content `params` (its own,
    else train.learning_rate), e.g. from a finished experiment's `dvc exp show` params."""
    default = positive(params["train"]["learning_rate"], "train.learning_rate")
    return Experiment.parse(name, params["experiments"][name], default).learning_rate


def read_yaml(path):
    """A YAML file's content; an unreadable or malformed file is one line naming it."""
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise StudyError(f"cannot read {path}: {' '.join(str(e).split())}") from None


def load_study(path=PARAMS):
    return parse_study(read_yaml(path))
