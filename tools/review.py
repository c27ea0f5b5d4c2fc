"""review: a markdown report of this workspace against a base revision, for a pull request,
from DVC's own diffs (`dvc params diff`, `dvc metrics diff --all`, `dvc plots diff`).

Usage: python -m tools.review [BASE]   (default: main) -> review/review.md, review/plots/

Like with like: a difference in test accuracy says something about a change only when both
sides trained and scored alike. Where base and branch differ in the data, the test split,
`train.epochs` or `train.seeds`, the report says so at its top and labels every experiment's
difference not comparable; a raw `dvc metrics diff` would show the numbers without a word.
"""
import json
import os
import shutil
import subprocess
import sys

import yaml

from initstudy.errors import StudyError
from initstudy.files import write_text
from initstudy.stats import welch_from_summary
from initstudy.runner import run_stage
from initstudy.formatting import fmt
from tools.dvc import dvc_json, require_dvc

OUT = "review"
KEY = "test_accuracy"
# The report's record of the prepared data's manifest (source with its sha256, split
# counts). data/prepared itself is DVC-cached, not in git, so a CI checkout of either side
# has only this.
SUMMARY = "report/summary.json"
# params whose change means the sides trained or scored differently: any prepare param (most
# change the images or the splits; one rule a reader can predict, where the manifest's
# source sha256 is the direct check once both sides record it), and the epochs and seeds
DATA_PARAMS = "prepare."
RUN_PARAMS = ("train.epochs", "train.seeds")


# ---------------------------------------------------------------- the numbers
def experiments(metrics_diff):
    """experiment -> (base metrics, branch metrics) from `dvc metrics diff --all --json`;
    a side is None where the experiment does not exist there."""
    found = {}
    for path, values in metrics_diff.items():
        folder, name = os.path.split(path.replace("\\", "/"))
        if folder != "metrics" or not name.endswith(".json"):
            continue  # metrics/step0/* and timings are not the experiment's results

        def side(which):
            got = {k: v.get(which) for k, v in values.items()}
            return got if any(v is not None for v in got.values()) else None
        found[name[:-len(".json")]] = (side("old"), side("new"))
    return dict(sorted(found.items()))


def runs(m):
    return (m.get("seeds") or 0) - (m.get("diverged") or 0)


def compare(base, branch):
    """One row of the experiments table: the difference branch - base with its interval and
    whether these seeds can tell it from run-to-run noise."""
    if base is None or branch is None or base.get(KEY) is None or branch.get(KEY) is None:
        return None
    diff, low, high = welch_from_summary(branch[KEY], branch.get(KEY + "_std"), runs(branch),
                                       base[KEY], base.get(KEY + "_std"), runs(base))
    if low is None:
        verdict = "no: needs 2+ runs with a spread on each side (train.seeds)"
    elif low > 0 or high < 0:
        verdict = "yes: the interval excludes 0"
    else:
        verdict = "no: within run-to-run noise"
    return {"diff": diff, "ci_low": low, "ci_high": high, "resolvable": verdict}


# ---------------------------------------------------------------- params and comparability
def flatten(tree, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}: the dotted keys `dvc params diff` names."""
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def show(value):
    """A param value as YAML writes it: a null param reads null (a removed one reads -)."""
    if value is None or isinstance(value, (bool, list, dict)):
        return json.dumps(value)
    return str(value)


def param_rows(params_diff, base_files, branch_files):
    """(key, base, branch) for every changed param. DVC's JSON gives None both for a param
    that is null and one that is absent, so each side's params file (flattened; None when
    unreadable) tells them apart: absent is "-", null is "null"."""
    rows = []
    for path, changed in params_diff.items():
        for key, v in sorted(changed.items()):
            cells = []
            for files, value in ((base_files, v.get("old")), (branch_files, v.get("new"))):
                flat = files.get(path)
                if flat is None:
                    cells.append("-" if value is None else show(value))
                else:
                    cells.append(show(flat[key]) if key in flat else "-")
            rows.append((key, *cells))
    return rows


def not_comparable(params, base_data, branch_data):
    """What makes base and branch results unlike: the data or the test split (from the
    params and the report's record of each side's manifest, where both have one), epochs or
    seeds. Empty when they compare."""
    data = [f"`{k}` {old} → {new}" for k, old, new in params if k.startswith(DATA_PARAMS)]
    test = None
    if base_data and branch_data:
        old, new = ((d.get("source") or {}).get("sha256") for d in (base_data, branch_data))
        if old and new and old != new:
            data.append(f"source sha256 {old[:12]}… → {new[:12]}…")
        old, new = ((d.get("splits") or {}).get("test") for d in (base_data, branch_data))
        if old and new and old != new:
            test = (f"{old.get('count', 0):,} → {new.get('count', 0):,} images"
                    if old.get("count") != new.get("count") else "its per-class counts")
    reasons = [f"the data ({'; '.join(data)})"] if data else []
    if test:
        reasons.append(f"the test split ({test})")
    return reasons + [f"`{k}` ({old} → {new})" for k, old, new in params if k in RUN_PARAMS]


def unlike_runs(base, branch):
    """Epochs or seed counts the two sides' metrics were computed over, where they differ."""
    return [f"{k} {base[k]} → {branch[k]}" for k in ("epochs", "seeds")
            if base.get(k) is not None and branch.get(k) is not None and base[k] != branch[k]]


# ---------------------------------------------------------------- the report
def markdown(base, params, metrics_diff, images, reasons=()):
    """The review a reader takes top to bottom: whether the sides compare at all, params,
    experiments, what is new, gone or diverged, then the plots that changed (`params`:
    (key, base, branch) rows; `images`: plot -> (base file, branch file); `reasons`: what
    makes the sides not comparable)."""
    lines = [f"# Review: this branch against `{base}`", ""]
    if reasons:
        lines += [f"**Not comparable: base and branch differ in {', '.join(reasons)}.** The "
                  "test accuracies below were not measured alike, so their differences are not "
                  "this branch's effect; compare runs on the same data, test split, epochs "
                  "and seeds.", ""]
    lines += ["## Params changed", ""]
    if params:
        lines += ["| param | base | branch |", "|---|---|---|"]
        lines += [f"| `{k}` | {old} | {new} |" for k, old, new in params]
    else:
        lines.append("None.")
    table = experiments(metrics_diff)
    lines += ["", "## Test accuracy per experiment", "",
              "Mean over the runs that did not diverge; difference = branch - base with its "
              "95% Welch interval from each side's mean, std and number of runs.", "",
              "| experiment | base | branch | difference | 95% CI | resolvable at these seeds? |",
              "|---|---|---|---|---|---|"]
    for name, (old, new) in table.items():
        row = compare(old, new)
        if row is None:
            state = "new" if old is None else "removed" if new is None else "no result"
            lines.append(f"| {name} | {fmt(old and old.get(KEY))} | {fmt(new and new.get(KEY))} "
                         f"| - | - | {state} |")
            continue
        unlike = unlike_runs(old, new)
        verdict = ("not comparable (above)" if reasons else
                   f"not comparable ({', '.join(unlike)})" if unlike else row["resolvable"])
        ci = "-" if row["ci_low"] is None else f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"
        lines.append(f"| {name} | {fmt(old[KEY])} | {fmt(new[KEY])} | {row['diff']:+.4f} "
                     f"| {ci} | {verdict} |")
    new = [n for n, (o, _) in table.items() if o is None]
    gone = [n for n, (_, b) in table.items() if b is None]
    diverged = [f"{n} ({b['diverged']} of {b['seeds']} runs)" for n, (_, b) in table.items()
                if b and b.get("diverged")]
    lines += ["", f"New experiments: {', '.join(new) or 'none'}. "
                  f"Removed: {', '.join(gone) or 'none'}. "
                  f"Diverged on this branch: {', '.join(diverged) or 'none'}."]
    if images:
        lines += ["", "## Plots that changed", ""]
        for plot, (old, new) in images.items():
            lines += [f"### {plot}", "", "| base | branch |", "|---|---|",
                      f"| {'![base](' + old + ')' if old else 'absent'} | "
                      f"{'![branch](' + new + ')' if new else 'absent'} |", ""]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- reading both sides
def read(base, path):
    """A file's text at revision `base`, or in the workspace (base None); None if absent."""
    if base is None:
        return open(path).read() if os.path.exists(path) else None
    run = subprocess.run(["git", "show", f"{base}:{path}"], capture_output=True, text=True)
    return run.stdout if run.returncode == 0 else None


def params_files(base, paths):
    """{params file: its flattened params} at one side; None where absent or unreadable."""
    found = {}
    for path in paths:
        try:
            tree = yaml.safe_load(read(base, path) or "null")
        except yaml.YAMLError:
            tree = None
        found[path] = flatten(tree) if isinstance(tree, dict) else None
    return found


def data_record(base):
    """The report's record of one side's prepared data (SUMMARY's "data"), or None."""
    try:
        return json.loads(read(base, SUMMARY) or "{}").get("data")
    except ValueError:
        return None


def changed_images(base, folder):
    """plot -> (base image, branch image), relative to OUT, for PNG plots whose bytes differ."""
    plots = dvc_json("plots", "diff", base, "-o", folder).get("data", {})
    images = {}
    for plot, entries in plots.items():
        by_rev = {e["revisions"][0]: e["url"] for e in entries if e.get("type") == "image"}
        old, new = by_rev.get(base), by_rev.get("workspace")
        if not by_rev or (old and new and open(old, "rb").read() == open(new, "rb").read()):
            continue
        images[plot] = tuple(p and os.path.relpath(p, OUT) for p in (old, new))
    return images


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else "main"
    if subprocess.run(["git", "rev-parse", "--verify", "--quiet", base],
                      capture_output=True).returncode:
        raise StudyError(f"base revision {base!r} not found: name a branch, tag or commit")
    require_dvc("the review is built from dvc's own diffs")
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    params_diff = dvc_json("params", "diff", base)
    params = param_rows(params_diff, params_files(base, params_diff),
                        params_files(None, params_diff))
    reasons = not_comparable(params, data_record(base), data_record(None))
    text = markdown(base, params, dvc_json("metrics", "diff", base, "--all"),
                    changed_images(base, os.path.join(OUT, "plots")), reasons)
    write_text(os.path.join(OUT, "review.md"), text)
    print(text)


if __name__ == "__main__":
    run_stage(main, tensorflow=False)
