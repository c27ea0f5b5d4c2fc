"""The sweep plans (sweeps.yaml), validated, and the `dvc exp run -S` overrides of each
queued experiment. Kept out of params.yaml: the plans are not the study's params, and no
stage reads them.

sweeps.yaml:
  add_experiments: {name: {initializer, activation[, learning_rate]}}   trained in every plan
  lr:       {learning_rates: [rate, ...], set: {param: value}}   one experiment per rate
  lr_seeds: {learning_rates: [rate, ...], set: {param: value}}   the same, more seeds
  bn_free:  {fans: [keras|per_channel, ...], set: {param: value}}   one per fan, BN off
  trained_grid: {activations, initializers, learning_rates, seeds, set}   every activation x
            initializer cell as an experiment: one queued experiment per rate on the first
            seed; what follows (brackets, longer budgets, seeds) is worked out from its
            per-run tables (`python -m tools.sweep next trained_grid NAME..`)
"""
import shutil
import tempfile

from initstudy.checks import list_of, one_of, positive, section, seed_list
from initstudy.config import (ACTIVATIONS, EXPERIMENT_KEYS, EXPERIMENT_NAME, PARAMS, load_study,
                              read_yaml)
from initstudy.errors import StudyError
from initstudy.initializers import DEPTHWISE_FANS, INITIALIZERS

SWEEPS = "sweeps.yaml"
RATE_PLANS = ("lr", "lr_seeds")  # one experiment per learning rate
PLANS = (*RATE_PLANS, "bn_free", "trained_grid")  # sweeps.yaml's plans
# how far each plan's experiments run: the seed plans up to the report, whose per-run results
# and seed analysis their tables use; the others to the per-experiment metrics
TARGETS = {"lr": "evaluate", "lr_seeds": "report", "bn_free": "evaluate",
           "trained_grid": "evaluate"}
GRID_KEYS = ("activations", "initializers", "learning_rates", "seeds", "set")


def _rates(values, name):
    """Distinct rates > 0 (as each names its experiment, lr-<rate>, a repeat would clash)."""
    try:
        rates = [positive(v, name) for v in values]  # "1e-3", a string to YAML, is a number
    except (StudyError, TypeError):
        rates = []
    if not isinstance(values, list) or not rates or len({f"{r:g}" for r in rates}) < len(rates):
        raise StudyError(f"{name} = {values!r}: must be a non-empty list of distinct numbers > 0")
    return rates


def _overrides(values, name):
    """`set`: param (dotted, as -S writes it) -> value; checked as a study when queued."""
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) and k for k in values):
        raise StudyError(f"{name} = {values!r}: must be a mapping of params (e.g. train.seeds) "
                         "to values")
    return values


def _added(experiments):
    if experiments is None:
        return {}
    if not isinstance(experiments, dict):
        raise StudyError(f"add_experiments = {experiments!r}: must be a mapping of experiment "
                         "names to {initializer, activation}")
    for name, e in experiments.items():
        where = f"add_experiments.{name}"
        if not isinstance(name, str) or not EXPERIMENT_NAME.match(name):
            raise StudyError(f"{where}: use letters, digits, '_' and '-' only in the name")
        if not isinstance(e, dict) or set(e) - set(EXPERIMENT_KEYS):
            raise StudyError(f"{where} = {e!r}: must be a mapping with initializer, activation "
                             "and optionally learning_rate")
        one_of(e.get("initializer"), INITIALIZERS, f"{where}.initializer")
        one_of(e.get("activation"), ACTIVATIONS, f"{where}.activation")
        if "learning_rate" in e:
            positive(e["learning_rate"], f"{where}.learning_rate")
    return experiments


def parse_sweeps(sweeps):
    """sweeps.yaml's content (a dict) as {add_experiments, lr, lr_seeds, bn_free}; a bad key
    or value raises one line naming it."""
    try:
        if not isinstance(sweeps, dict):
            raise StudyError(f"must be a mapping with keys add_experiments, "
                             f"{', '.join(PLANS)}")
        unknown = sorted(map(str, set(sweeps) - {"add_experiments", *PLANS}))
        if unknown:
            raise StudyError(f"unknown key(s) {', '.join(unknown)}: allowed are "
                             f"add_experiments, {', '.join(PLANS)}")
        parsed = {"add_experiments": _added(sweeps.get("add_experiments"))}
        for name in RATE_PLANS:
            p = section(sweeps, name, ("learning_rates", "set"))
            parsed[name] = {"learning_rates": _rates(p.get("learning_rates"),
                                                     f"{name}.learning_rates"),
                            "set": _overrides(p.get("set"), f"{name}.set")}
        p = section(sweeps, "bn_free", ("fans", "set"))
        parsed["bn_free"] = {"fans": list_of(p.get("fans"), "bn_free.fans", DEPTHWISE_FANS),
                             "set": _overrides(p.get("set"), "bn_free.set")}
        p = section(sweeps, "trained_grid", GRID_KEYS)
        parsed["trained_grid"] = {
            "activations": list_of(p.get("activations"), "trained_grid.activations",
                                    ACTIVATIONS),
            "initializers": list_of(p.get("initializers"), "trained_grid.initializers",
                                     INITIALIZERS),
            "learning_rates": _rates(p.get("learning_rates"), "trained_grid.learning_rates"),
            "seeds": seed_list(p.get("seeds"), "trained_grid.seeds"),
            "set": _overrides(p.get("set"), "trained_grid.set")}
    except StudyError as e:
        raise StudyError(f"{SWEEPS}: {e}") from None
    return parsed


def load_sweeps(path=SWEEPS):
    return parse_sweeps(read_yaml(path))


def hydra(value):
    """A value in the override syntax of `dvc exp run -S` (Hydra's)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {hydra(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(hydra(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def cell_name(activation, initializer):
    return f"{activation}-{initializer}"


def grid_overrides(grid, cells, params=PARAMS):
    """The trained grid's common -S overrides: its `set`, the study's own experiments removed,
    and `cells` ({cell name: {initializer, activation[, learning_rate]}}) added."""
    removed = [f"~experiments.{e}" for e in read_yaml(params).get("experiments") or {}]
    return ([f"{k}={hydra(v)}" for k, v in grid["set"].items()] + removed
            + [f"+experiments.{name}={hydra(cell)}" for name, cell in cells.items()])


def grid_cells(grid):
    return {cell_name(a, i): {"initializer": i, "activation": a}
            for a in grid["activations"] for i in grid["initializers"]}


def plan(sweeps, name, params=PARAMS):
    """(experiment name, its -S overrides) for every queued experiment of a plan (the trained
    grid's rate search for trained_grid; what follows is `tools.sweep next`)."""
    if name == "trained_grid":
        grid = sweeps["trained_grid"]
        common = grid_overrides(grid, grid_cells(grid), params)
        return [(f"grid-lr-{rate:g}".replace(".", "p"),
                 [f"train.learning_rate={rate}", f"train.seeds=[{grid['seeds'][0]}]", *common])
                for rate in grid["learning_rates"]]
    common = [f"{k}={hydra(v)}" for k, v in sweeps[name]["set"].items()]
    common += [f"+experiments.{k}={hydra(v)}" for k, v in sweeps["add_experiments"].items()]
    if name in RATE_PLANS:
        suffix = "-seeds" if name == "lr_seeds" else ""
        return [(f"lr-{rate:g}{suffix}".replace(".", "p"),
                 [f"train.learning_rate={rate}", *common])
                for rate in sweeps[name]["learning_rates"]]
    return [(f"bn-free-{fan}".replace("_", "-"),
             ["model.batch_norm=false", f"model.depthwise_fan={fan}", *common])
            for fan in sweeps["bn_free"]["fans"]]


def _check_not_merged_away(override, params, exp):
    """Refuses `KEY={}` on a mapping: Hydra merges a mapping into a mapping, so `dvc exp run
    -S 'experiments={}'` empties nothing and runs the unchanged study (every stage skipped)."""
    key, _, value = override.partition("=")
    node = params
    for part in key.lstrip("+").split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if value.strip() == "{}" and not key.startswith("~") and isinstance(node, dict) and node:
        name = key.lstrip("+")
        raise StudyError(f"{SWEEPS}: {exp}: -S {override} would change nothing: DVC merges a "
                         f"mapping into {name}, it does not empty it; remove each entry with "
                         f"~{name}.NAME")


def check_plan(runs, params=PARAMS):
    """Refuses a plan whose overrides would not make a valid study, before anything is
    queued: each experiment's -S applied to a copy of params.yaml as `dvc exp run` does."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides  # here: DVC's imports take a second

    current = read_yaml(params)
    with tempfile.TemporaryDirectory() as tmp:
        for exp, overrides in runs:
            for o in overrides:
                _check_not_merged_away(o, current, exp)
            copy = shutil.copy(params, tmp)
            try:
                apply_overrides(copy, overrides)
                load_study(copy)
            except (InvalidArgumentError, StudyError) as e:
                why = e.__cause__ or e  # Hydra's own message names the override
                raise StudyError(f"{SWEEPS}: {exp} would not be a valid study: {why}") from None
