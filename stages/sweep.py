"""sweep: where the initializer decides, as experiments outside `dvc repro`, through DVC's
queue. Each queued experiment trains and scores (`evaluate`) the study's experiments plus
params.yaml `sweep.add_experiments`, with the plan's `set` overrides:
  lr       one experiment per `sweep.lr.learning_rates` entry (the study's model, BN on)
  lr_seeds the same at `sweep.lr_seeds.learning_rates` (the best ones) with more seeds
  bn_free  one per `sweep.bn_free.fans` entry, batch_norm false, the shared learning rate

Usage: python -m stages.sweep queue lr|lr_seeds|bn_free   (then: python -m stages.queue 1)
       python -m stages.sweep table lr|lr_seeds|bn_free   (the finished experiments' table)
"""
import json
import math
import os
import shutil
import subprocess
import sys

import yaml

from initstudy.errors import StudyError, run_stage
from initstudy.files import write_text
from initstudy.tables import fmt

PLANS = ("lr", "lr_seeds", "bn_free")
RATE_PLANS = ("lr", "lr_seeds")  # one experiment per learning rate
# how far each plan's experiments run: lr_seeds up to the report, whose seed analysis
# (ANOVA, Tukey intervals) its table quotes; the others to the per-experiment metrics
TARGETS = {"lr": "evaluate", "lr_seeds": "report", "bn_free": "evaluate"}


def hydra(value):
    """A value in the override syntax of `dvc exp run -S` (Hydra's)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {hydra(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(hydra(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def plan(sweep, name):
    """(experiment name, its -S overrides) for every queued experiment of a plan."""
    common = [f"{k}={hydra(v)}" for k, v in (sweep[name].get("set") or {}).items()]
    common += [f"+experiments.{k}={hydra(v)}" for k, v in sweep["add_experiments"].items()]
    if name in RATE_PLANS:
        suffix = "-seeds" if name == "lr_seeds" else ""
        return [(f"lr-{rate:g}{suffix}".replace(".", "p"), [f"train.learning_rate={rate}", *common])
                for rate in sweep[name]["learning_rates"]]
    return [(f"bn-free-{fan}".replace("_", "-"),
             ["model.batch_norm=false", f"model.depthwise_fan={fan}", *common])
            for fan in sweep["bn_free"]["fans"]]


def chance_band(params):
    """Validation accuracy below which a run is indistinguishable from guessing: 1/classes
    plus 2.58 binomial standard errors (99%, one-sided) of the validation split's size."""
    classes = 10  # CIFAR-10, the sweep's data
    n = params["prepare"]["validation_per_class"] * classes
    p = 1 / classes
    return p + 2.58 * (p * (1 - p) / n) ** 0.5


def status(m, band):
    """trains, diverged (loss not finite), or stuck at chance, and how: a validation loss at
    ln(10) is a constant output (the signal vanished), far above it exploded logits."""
    if m.get("diverged"):
        return f"diverged ({m['diverged']} of {m['seeds']})"
    if (m.get("val_accuracy") or 0) >= band:
        return "trains"
    loss = m.get("val_loss")
    if loss is not None and abs(loss - math.log(10)) < 0.01:
        return "stuck at chance (constant output)"
    return f"stuck at chance (loss {loss:.3g})" if loss is not None else "stuck at chance"


def sweep_markdown(name, found):
    """The plan's table from {experiment name: (params, metrics)} in the plan's order."""
    first = next(iter(found.values()))[0]
    names = list(first["experiments"])
    seeds = first["train"]["seeds"]
    lines = [f"Validation accuracy (mean of seeds {seeds}); test accuracy with its 95% interval "
             f"across seeds where there are two or more. Data: {first['prepare']['max_per_class']}"
             f" images per class, {first['prepare']['validation_per_class']} of them validate; "
             f"{first['train']['epochs']} epochs, batch {first['train']['batch_size']}.", ""]
    band = chance_band(first)
    if name in RATE_PLANS:
        from statsmodels.stats.proportion import proportion_confint

        cols = sorted(found, key=lambda c: found[c][0]["train"]["learning_rate"])
        rates = [found[c][0]["train"]["learning_rate"] for c in cols]
        n_test = 10 * min(first["prepare"]["max_per_class"] or 1000, 1000)  # CIFAR-10's test
        lines += [f"One seed: Wilson's interval over its {n_test:,} test images (the test set's "
                  f"noise only, not the seed's). "
                  f"(chance): validation accuracy below {band:.3f}.", "",
                  "| experiment | " + " | ".join(f"lr {r:g}" for r in rates)
                  + " | best lr (val) | test at best | test at lr 0.05 |",
                  "|---" * (len(cols) + 4) + "|"]
        for e in names:
            ms = [found[c][1].get(f"metrics/{e}.json", {}) for c in cols]
            vals = [None if m.get("diverged") else m.get("val_accuracy") for m in ms]
            best = max(range(len(cols)), key=lambda i: -1 if vals[i] is None else vals[i])
            shared = rates.index(0.05) if 0.05 in rates else None

            def test(m):
                t = m.get("test_accuracy")
                lo, hi = m.get("test_accuracy_ci95_low"), m.get("test_accuracy_ci95_high")
                if lo is None and t is not None:
                    lo, hi = proportion_confint(t * n_test, n_test, method="wilson")
                return fmt(t, ".3f") + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")

            cells = ["diverged" if v is None else fmt(v, ".3f") + (" (chance)" if v < band else "")
                     for v in vals]
            lines.append(f"| {e} | " + " | ".join(cells) + f" | {rates[best]:g} | "
                         f"{test(ms[best])} | {test(ms[shared]) if shared is not None else '-'} |")
        return lines
    cols = list(found)
    lines += [f"Stuck at chance: validation accuracy below {band:.3f} (1/10 plus 2.58 binomial "
              "standard errors of the validation split).", "",
              "| experiment | " + " | ".join(f"{c}: val / test / status" for c in cols) + " |",
              "|---" * (len(cols) + 1) + "|"]
    for e in names:
        ms = [found[c][1].get(f"metrics/{e}.json", {}) for c in cols]
        lines.append(f"| {e} | " + " | ".join(
            f"{fmt(m.get('val_accuracy'), '.3f')} / {fmt(m.get('test_accuracy'), '.3f')} / "
            f"{status(m, band)}"
            for m in ms) + " |")
    return lines


def dvc(*args):
    out = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if out.returncode:
        raise StudyError(f"dvc {' '.join(args)} failed: {out.stderr.strip().splitlines()[-1]}")
    return out.stdout


def exp_show():
    """Every finished experiment, as {name: (params, metrics)}. `dvc exp show` also lists
    queued and running ones (with the workspace's results), `dvc exp list` only finished ones."""
    finished = set(dvc("exp", "list", "--all-commits", "--name-only").split())
    found = {}
    for commit in json.loads(dvc("exp", "show", "--all-commits", "--json")):
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                params = data.get("params", {}).get("params.yaml", {}).get("data", {})
                metrics = {path: m.get("data", {}) for path, m in data.get("metrics", {}).items()}
                if rev.get("name") in finished:
                    found[rev["name"]] = (params, metrics)
    return found


def report_section(exp, heading):
    """A section of an experiment's committed report/summary.md (DVC keeps each experiment
    as a git commit under refs/exps/.../<name>)."""
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"],
                          capture_output=True, text=True).stdout.split()
    ref = next((r for r in refs if r.endswith("/" + exp)), None)
    if ref is None:
        raise StudyError(f"no git ref for experiment {exp}: see dvc exp list --all-commits")
    summary = subprocess.run(["git", "show", f"{ref}:report/summary.md"], capture_output=True,
                             text=True).stdout.splitlines()
    if heading not in summary:
        raise StudyError(f"{exp}'s report/summary.md has no '{heading}' section")
    start = summary.index(heading) + 1
    end = next((i for i in range(start, len(summary)) if summary[i].startswith("## ")),
               len(summary))
    return "\n".join(summary[start:end]).strip().splitlines()


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("queue", "table") or sys.argv[2] not in PLANS:
        raise StudyError(f"usage: python -m stages.sweep queue|table {'|'.join(PLANS)} "
                         f"(got {' '.join(sys.argv[1:]) or 'nothing'})")
    action, name = sys.argv[1:]
    if shutil.which("dvc") is None:
        raise StudyError("dvc is not on PATH: activate the study's environment first")
    with open("params.yaml") as f:
        sweep = yaml.safe_load(f)["sweep"]
    runs = plan(sweep, name)
    if action == "queue":
        for exp, overrides in runs:
            args = ["dvc", "exp", "run", "--queue", "-n", exp]
            for o in overrides:
                args += ["-S", o]
            subprocess.run(args + [TARGETS[name]], check=True)
        print(f"queued {len(runs)} experiments; run them: python -m stages.queue 1")
        return
    found = exp_show()
    missing = [exp for exp, _ in runs if exp not in found]
    if missing:
        raise StudyError(f"not finished (dvc exp show): {', '.join(missing)}; "
                         "see dvc queue status")
    lines = sweep_markdown(name, {exp: found[exp] for exp, _ in runs})
    if TARGETS[name] == "report":
        for exp, _ in runs:
            lines += ["", f"## {exp}: which differences are real (its report/summary.md)", "",
                      *report_section(exp, "## Which differences are real")]
    text = "\n".join(lines) + "\n"
    os.makedirs("findings", exist_ok=True)
    write_text(os.path.join("findings", f"{name}.md"), text)
    print(text)


if __name__ == "__main__":
    run_stage(main, tensorflow=False)
