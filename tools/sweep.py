"""sweep: where the initializer decides, as experiments outside `dvc repro`, through DVC's
queue. Each queued experiment trains and scores (`evaluate`) the study's experiments plus
sweeps.yaml's `add_experiments`, with the plan's `set` overrides (tools/plans.py):
  lr       one experiment per `lr.learning_rates` entry (the study's model, BN on)
  lr_seeds the same at `lr_seeds.learning_rates` (the best ones) with more seeds
  bn_free  one per `bn_free.fans` entry, batch_norm false, the study's learning rate

  trained_grid every activation x initializer cell, BN off, one experiment per rate; then
               what its per-run tables leave open (tools/trained_grid.py): rates not yet
               bracketed, cells at chance without a longer budget, seeds

Usage: python -m tools.sweep queue lr|lr_seeds|bn_free   (then: python -m tools.queue 1)
       python -m tools.sweep table lr|lr_seeds|bn_free   (the finished experiments' table)
       python -m tools.sweep queue trained_grid          (then: python -m tools.queue 2)
       python -m tools.sweep next trained_grid NAME..    the `dvc exp run --queue` commands
                                     that would settle what the named per-run tables
                                     (findings/runs/NAME.tsv) leave open
       python -m tools.sweep table trained_grid [--out PATH] NAME..
                                     findings/trained_grid.md (or PATH) from them
Queueing skips an experiment that already finished or is in DVC's queue, so an interrupted
plan resumes and queueing twice does not train twice. It refuses while params.yaml differs from
HEAD (a failed `dvc exp run -S` leaves its overrides there): each queued experiment would
carry them.
"""
import math
import os
import subprocess
import sys

from initstudy.config import PARAMS, learning_rate, load_study, read_yaml
from initstudy.errors import StudyError
from initstudy.files import read_tsv, write_text
from initstudy.formatting import fmt
from initstudy.runner import run_stage
from initstudy.shards import PREPARED, load_manifest
from initstudy.stats import noise_limit
from tools.dvc import dvc, dvc_json, require_dvc, require_params_at_head
from tools.plans import (PLANS, RATE_PLANS, TARGETS, cell_name, check_plan, grid_cells,
                         grid_overrides, hydra, load_sweeps, plan)
from tools.trained_grid import grid_markdown, next_runs


def prepared_data():
    """(classes, test images per class) of the prepared data, which the tables' chance line
    and test intervals depend on."""
    manifest = load_manifest(PREPARED, verify=False)  # counts only; no shard is read
    try:
        return len(manifest["classes"]), list(manifest["splits"]["test"]["per_class"].values())
    except (KeyError, TypeError, AttributeError):
        raise StudyError(f"{PREPARED}/manifest.json has no classes or test counts: re-run "
                         "prepare (dvc repro prepare)") from None


def chance_band(params, classes):
    """Validation accuracy below which a run is indistinguishable from guessing: 1/classes
    plus stats.NOISE_Z (2.58) binomial standard errors of the validation split's size
    (stats.noise_limit, the report's noise rule)."""
    n = params["prepare"]["validation_per_class"] * classes
    return noise_limit(1 / classes, n)


def status(m, band, classes):
    """trains, diverged (loss not finite), or stuck at chance, and how: a validation loss at
    ln(classes) is a constant output (the signal vanished), far above it exploded logits."""
    if m.get("diverged"):
        return f"diverged ({m['diverged']} of {m['seeds']})"
    if (m.get("val_accuracy") or 0) >= band:
        return "trains"
    loss = m.get("val_loss")
    if loss is not None and abs(loss - math.log(classes)) < 0.01:
        return "stuck at chance (constant output)"
    return f"stuck at chance (loss {loss:.3g})" if loss is not None else "stuck at chance"


def sweep_markdown(name, found, data, study_rates):
    """The plan's table from {experiment name: (params, metrics)} in the plan's order.
    `data`: (classes, test images per class) of the prepared data; `study_rates`: the rate
    each experiment trains at in the study itself, the column the sweep is measured against."""
    classes, test_per_class = data
    first = next(iter(found.values()))[0]
    seeds = first["train"]["seeds"]
    lines = [f"Validation accuracy (mean of seeds {seeds}); test accuracy with its 95% interval "
             f"across seeds where there are two or more. Data: {first['prepare']['max_per_class']}"
             f" images per class, {first['prepare']['validation_per_class']} of them validate; "
             f"{first['train']['epochs']} epochs, batch {first['train']['batch_size']}.", ""]
    band = chance_band(first, classes)
    if name in RATE_PLANS:
        return lines + rate_table(found, first, test_per_class, band, study_rates)
    return lines + status_table(found, first, classes, band)


def rate_table(found, first, test_per_class, band, study_rates):
    """A rate plan's table: per experiment, its validation accuracy at each rate, its best
    rate and the test accuracy there and at the study's own rate."""
    cols = sorted(found, key=lambda c: found[c][0]["train"]["learning_rate"])
    rates = [found[c][0]["train"]["learning_rate"] for c in cols]
    cap = first["prepare"]["max_per_class"]  # prepare caps the test split per class too
    n_test = sum(min(n, cap or n) for n in test_per_class)
    shared = sorted(set(study_rates.values()))
    lines = [f"One seed: Wilson's interval over its {n_test:,} test images (the test set's "
             f"noise only, not the seed's). "
             f"(chance): validation accuracy below {band:.3f}.", "",
             "| experiment | " + " | ".join(f"lr {r:g}" for r in rates)
             + " | best lr (val) | test at best | test at "
             + (f"lr {shared[0]:g} |" if len(shared) == 1 else "the study's lr |"),
             "|---" * (len(cols) + 4) + "|"]
    for e in first["experiments"]:
        lines.append(rate_row(e, found, cols, band, study_rates.get(e), n_test))
    return lines


def rate_row(e, found, cols, band, study_rate, n_test):
    """Experiment `e`'s row of the rate table (`cols`: the runs, by rate)."""
    ms = [found[c][1].get(f"metrics/{e}.json", {}) for c in cols]
    own = [learning_rate(found[c][0], e) for c in cols]  # an experiment's own rate wins
    vals = [None if m.get("diverged") else m.get("val_accuracy") for m in ms]
    best = max(range(len(cols)), key=lambda i: -1 if vals[i] is None else vals[i])
    at = next((i for i in range(len(cols)) if own[i] == study_rate), None)
    cells = ["diverged" if v is None else fmt(v, ".3f") + (" (chance)" if v < band else "")
             for v in vals]
    at_study = "-" if at is None else accuracy_with_interval(ms[at], n_test)
    return (f"| {e} | " + " | ".join(cells) + f" | {own[best]:g} | "
            f"{accuracy_with_interval(ms[best], n_test)} | {at_study} |")


def accuracy_with_interval(m, n_test):
    """A run's test accuracy with its 95% interval: across its seeds where it has two or
    more, else Wilson's over the `n_test` test images."""
    from statsmodels.stats.proportion import proportion_confint

    t = m.get("test_accuracy")
    lo, hi = m.get("test_accuracy_ci95_low"), m.get("test_accuracy_ci95_high")
    if lo is None and t is not None:
        lo, hi = proportion_confint(t * n_test, n_test, method="wilson")
    return fmt(t, ".3f") + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")


def status_table(found, first, classes, band):
    """Any other plan's table (fan, bn_free): per experiment and run, the validation and test
    accuracy and whether it trained, stuck at chance or diverged."""
    cols = list(found)
    lines = [f"Stuck at chance: validation accuracy below {band:.3f} (1/{classes} plus 2.58 "
             "binomial standard errors of the validation split).", "",
             "| experiment | " + " | ".join(f"{c}: val / test / status" for c in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for e in first["experiments"]:
        ms = [found[c][1].get(f"metrics/{e}.json", {}) for c in cols]
        lines.append(f"| {e} | " + " | ".join(
            f"{fmt(m.get('val_accuracy'), '.3f')} / {fmt(m.get('test_accuracy'), '.3f')} / "
            f"{status(m, band, classes)}"
            for m in ms) + " |")
    return lines


def exp_show():
    """Every finished experiment, as {name: (params, metrics)}. `dvc exp show` also lists
    queued and running ones (with the workspace's results), `dvc exp list` only finished ones."""
    finished = set(dvc("exp", "list", "--all-commits", "--name-only").split())
    found = {}
    for commit in dvc_json("exp", "show", "--all-commits") or []:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                params = data.get("params", {}).get("params.yaml", {}).get("data", {})
                metrics = {path: m.get("data", {}) for path, m in data.get("metrics", {}).items()}
                if rev.get("name") in finished:
                    found[rev["name"]] = (params, metrics)
    return found


def committed_file(exp, path):
    """A file of an experiment's commit (DVC keeps each experiment as a git commit under
    refs/exps/.../<name>)."""
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"],
                          capture_output=True, text=True).stdout.split()
    ref = next((r for r in refs if r.endswith("/" + exp)), None)
    if ref is None:
        raise StudyError(f"no git ref for experiment {exp}: see dvc exp list --all-commits")
    return subprocess.run(["git", "show", f"{ref}:{path}"], capture_output=True,
                          text=True).stdout


def report_section(exp, heading):
    """A section of an experiment's committed report/summary.md."""
    summary = committed_file(exp, "report/summary.md").splitlines()
    if heading not in summary:
        raise StudyError(f"{exp}'s report/summary.md has no '{heading}' section")
    start = summary.index(heading) + 1
    end = next((i for i in range(start, len(summary)) if summary[i].startswith("## ")),
               len(summary))
    return "\n".join(summary[start:end]).strip().splitlines()


def finished(runs, found):
    """{experiment: (params, metrics)} of a plan's `runs`, in order, all of them finished."""
    missing = [exp for exp, _ in runs if exp not in found]
    if missing:
        raise StudyError(f"not finished (dvc exp show): {', '.join(missing)}; "
                         "see dvc queue status")
    return {exp: found[exp] for exp, _ in runs}


def published_advice():
    """The reference's closing table: {activation: initializer}."""
    return read_yaml(os.path.join("reference", "published.yaml"))["advice"]


def grid_table(sweeps, names):
    """findings/trained_grid.md (or `--out PATH`, the first of `names`) from the grid's
    per-run tables (findings/runs/NAME.tsv)."""
    from tools.runs import read_runs

    out = os.path.join("findings", "trained_grid.md")
    if names[0] == "--out":
        if len(names) < 3 or not names[1].endswith(".md"):
            raise StudyError(f"--out {' '.join(names[1:2])}: give a .md path, then the tables")
        out, names = names[1], names[2:]
        command = f"--out {out} {' '.join(names)}"
    else:
        command = " ".join(names)

    grid, params = sweeps["trained_grid"], read_yaml(PARAMS)
    fan = grid["set"].get("model.depthwise_fan", params["model"]["depthwise_fan"])
    step0 = {cell_name(c["activation"], c["initializer"]): float(c["drift"])
             for c in read_tsv(os.path.join("grid", "cells.tsv"))
             if c["batch_norm"] is False and c["depthwise_fan"] == fan}  # read_tsv parses bools
    rows = [r for n in names for r in read_runs(n)]
    text = grid_markdown(rows, published_advice(), step0,
                         grid_settings(grid, params, command, rows), networks(grid, params))
    write_text(out, text)
    print(text)


def grid_settings(grid, params, command, rows):
    """The line that says what the grid trained, from its plan's overrides, and on which
    CPU kinds (trained numbers differ between them)."""
    def value(key):
        section, name = key.split(".")
        return hydra(grid["set"].get(key, params[section][name]))
    return (f"Built by `python -m tools.sweep table trained_grid {command}` from the "
            f"committed per-run tables. {value('prepare.max_per_class')} images per class "
            f"({value('prepare.validation_per_class')} of them validate), "
            f"{value('model.image_size')}px, batch {value('train.batch_size')}, plain SGD, "
            f"{value('train.schedule')} schedule, batch_norm {value('model.batch_norm')}, "
            f"depthwise_fan {value('model.depthwise_fan')}, residual_scale "
            f"{value('model.residual_scale')}. CPU: "
            + "; ".join(sorted({r.get("cpu") or "not recorded" for r in rows})) + ".")


def networks(grid, params):
    """How the step-0 grid's network differs from the trained one ("" if it does not)."""
    trained = {"image size": grid["set"].get("model.image_size", params["model"]["image_size"]),
               "residual scale": grid["set"].get("model.residual_scale",
                                                 params["model"]["residual_scale"])}
    step0 = {"image size": params["grid"]["image_size"], "residual scale": "none"}
    differ = [f"{k} {step0[k]} at step 0, {trained[k]} trained" for k in trained
              if str(step0[k]) != str(trained[k])]
    return ("the step-0 drift is measured on another network than the trained one ("
            + "; ".join(differ) + ")") if differ else ""


def grid_next(sweeps, names):
    """The `dvc exp run --queue` commands that would settle the grid (tools.trained_grid
    .next_runs), printed for the user to run: DVC's queue and run cache make them resumable."""
    import hashlib
    import shlex

    from tools.runs import read_runs

    grid = sweeps["trained_grid"]
    rows = [r for n in names for r in read_runs(n)]
    epochs = grid["set"].get("train.epochs", read_yaml(PARAMS)["train"]["epochs"])
    todo = next_runs(rows, published_advice(), list(grid["seeds"]))
    for why, cells, factor, seeds in todo:
        # named by what it trains: printed twice, the same experiment, which DVC refuses to
        # queue twice under one name; a later round's is another
        kind = ("long" if factor > 1 else "seeds" if why.startswith("seeds") else
                f"edge-{next(iter(cells.values())):g}".replace(".", "p"))
        digest = hashlib.sha1(repr((sorted(cells.items()), seeds)).encode()).hexdigest()[:6]
        exp = f"grid-{kind}-{digest}"
        plan_ = {**grid, "set": {**grid["set"], "train.epochs": epochs * factor,
                                 "train.seeds": seeds}}
        overrides = grid_overrides(plan_, {c: {**grid_cells(grid)[c], "learning_rate": rate}
                                           for c, rate in cells.items()})
        print(f"# {why}: {', '.join(cells)}")
        print(" ".join(["dvc", "exp", "run", "--queue", "-n", exp]
                       + [f"-S {shlex.quote(o)}" for o in overrides] + ["evaluate"]))
    print("# then: python -m tools.queue 1; per experiment: dvc exp apply NAME && "
          "python -m tools.runs export NAME" if todo else "# nothing left: the grid is settled")


def waiting(status_table):
    """The experiments `dvc queue status` (its table) lists as queued or running."""
    rows = [line.split() for line in status_table.splitlines()]
    return {row[1] for row in rows if len(row) >= 4 and row[-1] in ("Queued", "Running")}


def queue(name, runs):
    check_plan(runs)  # a bad override stops here, not in five background runs
    finished = set(dvc("exp", "list", "--all-commits", "--name-only").split())
    skip = finished | waiting(dvc("queue", "status"))
    for exp in [exp for exp, _ in runs if exp in skip]:
        print(f"{exp} already {'finished' if exp in finished else 'in the queue'}: "
              "not queued again")
    runs = [(exp, overrides) for exp, overrides in runs if exp not in skip]
    for exp, overrides in runs:
        args = ["exp", "run", "--queue", "-n", exp]
        for o in overrides:
            args += ["-S", o]
        print(dvc(*args, TARGETS[name]).strip())
    # one seed per experiment trains in one process: two experiments at once fill 2 cores
    workers = 2 if name == "trained_grid" else 1
    print(f"queued {len(runs)} experiments; run them: python -m tools.queue {workers}")


def table(name, runs):
    found = finished(runs, exp_show())
    study = load_study()
    names = next(iter(found.values()))[0]["experiments"]
    study_rates = {e: study.experiments[e].learning_rate if e in study.experiments
                   else study.train.learning_rate for e in names}
    lines = sweep_markdown(name, found, prepared_data(), study_rates)
    if TARGETS[name] == "report":
        for exp, _ in runs:
            lines += ["", f"## {exp}: which differences are real (its report/summary.md)", "",
                      *report_section(exp, "## Which differences are real")]
    text = "\n".join(lines) + "\n"
    os.makedirs("findings", exist_ok=True)
    write_text(os.path.join("findings", f"{name}.md"), text)
    print(text)


def main():
    action, name, names = (sys.argv[1:3] + [None, None])[:2] + [sys.argv[3:]]
    grid = name == "trained_grid"
    if (action not in ("queue", "table", "next") or name not in PLANS or bool(names) != (
            grid and action != "queue") or (action == "next" and not grid)):
        raise StudyError("usage: python -m tools.sweep queue|table lr|lr_seeds|bn_free, "
                         "queue trained_grid, table|next trained_grid NAME [NAME ...] (got "
                         f"{' '.join(sys.argv[1:]) or 'nothing'})")
    sweeps = load_sweeps()
    if grid and action != "queue":  # from the committed per-run tables only
        return (grid_table if action == "table" else grid_next)(sweeps, names)
    require_dvc()
    if action == "queue":  # before anything is read or queued
        require_params_at_head("every experiment queued now would carry it")
    (queue if action == "queue" else table)(name, plan(sweeps, name))


if __name__ == "__main__":
    run_stage(main, tensorflow=False)
