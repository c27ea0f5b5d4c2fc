"""The review report: this workspace against a base revision, from the JSON of DVC's own
`dvc params diff`, `dvc metrics diff --all` and `dvc plots diff` (stages/review.py runs them)."""
import math
import os

from scipy import stats

KEY = "test_accuracy"


def welch_from_stats(mean_a, std_a, n_a, mean_b, std_b, n_b, confidence=0.95):
    """Difference of means a - b and its Welch interval from summary statistics (what the
    committed metrics keep); None where either side has fewer than 2 runs."""
    diff = mean_a - mean_b
    # a std of 0 is one rounded below the metrics' 4 decimals: unknown, not exact
    if n_a < 2 or n_b < 2 or not std_a or not std_b:
        return diff, None, None
    va, vb = std_a ** 2 / n_a, std_b ** 2 / n_b
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    half = stats.t.ppf((1 + confidence) / 2, df) * math.sqrt(va + vb)
    return diff, diff - half, diff + half


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
    diff, low, high = welch_from_stats(branch[KEY], branch.get(KEY + "_std"), runs(branch),
                                       base[KEY], base.get(KEY + "_std"), runs(base))
    if low is None:
        verdict = "no: needs 2+ runs with a spread on each side (train.seeds)"
    elif low > 0 or high < 0:
        verdict = "yes: the interval excludes 0"
    else:
        verdict = "no: within run-to-run noise"
    return {"diff": diff, "ci_low": low, "ci_high": high, "resolvable": verdict}


def fmt(x, spec=".4f"):
    return "-" if x is None else format(x, spec)


def markdown(base, params_diff, metrics_diff, images):
    """The review a reader takes top to bottom: params, experiments, what is new, gone or
    diverged, then the plots that changed (`images`: plot -> (base file, branch file))."""
    lines = [f"# Review: this branch against `{base}`", "", "## Params changed", ""]
    changed = {k: v for f in params_diff.values() for k, v in f.items()}
    if changed:
        lines += ["| param | base | branch |", "|---|---|---|"]
        lines += [f"| `{k}` | {fmt(v.get('old'), '')} | {fmt(v.get('new'), '')} |"
                  for k, v in sorted(changed.items())]
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
        else:
            ci = "-" if row["ci_low"] is None else f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"
            lines.append(f"| {name} | {fmt(old[KEY])} | {fmt(new[KEY])} | {row['diff']:+.4f} "
                         f"| {ci} | {row['resolvable']} |")
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
