"""The reference's closing table, trained (sweeps.yaml `trained_grid`): each activation x
initializer cell's best rate from the rate search, its seeds' test accuracy, the seed-blocked
comparison within each activation, the reference's advice cell by cell, and whether the
step-0 grid predicts the trained ranking."""
import math

import numpy as np

from initstudy.stats import seed_analysis, summarize
from initstudy.formatting import fmt
from tools.plans import cell_name, grid_cells


def search_results(grid, found):
    """{cell: {rate: its metrics/<cell>.json}} from the rate search's finished experiments
    (`found`: {experiment: (params, metrics)}, as tools.sweep.exp_show gives them)."""
    out = {cell: {} for cell in grid_cells(grid)}
    for params, metrics in found.values():
        rate = float(params["train"]["learning_rate"])
        for cell in out:
            if f"metrics/{cell}.json" in metrics:
                out[cell][rate] = metrics[f"metrics/{cell}.json"]
    return out


def best_run(by_rate):
    """(rate, metrics) of the run with the highest validation accuracy among those that did
    not diverge ({rate: metrics}), the lower rate on a tie; None if every run diverged."""
    finite = {r: m for r, m in by_rate.items()
              if not m.get("diverged") and m.get("val_accuracy") is not None}
    if not finite:
        return None
    rate = max(sorted(finite), key=lambda r: finite[r]["val_accuracy"])
    return rate, finite[rate]


def best_rates(search, band):
    """({cell: the rate with the highest validation accuracy}, {cell: why it gets no seeds}):
    a diverged run never wins, and a cell whose best validation accuracy is below `band`
    (chance) learned at no rate."""
    best, left_out = {}, {}
    for cell, by_rate in search.items():
        found = best_run(by_rate)
        if not by_rate:
            left_out[cell] = "not run"
        elif found is None:
            left_out[cell] = "diverged at every rate"
        elif found[1]["val_accuracy"] < band:
            left_out[cell] = ("stuck at chance at every rate "
                              f"(best val {found[1]['val_accuracy']:.3f})")
        else:
            best[cell] = found[0]
    return best, left_out


def seeded_runs(grid, search, best, runs):
    """{cell: {seed: test accuracy}} of every seeded cell: the first seed from the rate
    search's run at the cell's best rate, the others from the seeds step (`runs`: {cell:
    {seed: test accuracy}}, its report's runs)."""
    first = grid["seeds"][0]
    return {cell: {first: search[cell][rate]["test_accuracy"], **runs.get(cell, {})}
            for cell, rate in best.items()}


def advice_verdict(advised, blocked):
    """The reference's advice for one activation against the blocked Tukey comparison of its
    trained cells (`blocked`: initstudy.stats.blocked_anova's result over initializers):
    contradicted when another initializer is significantly better, confirmed when the advised
    one is significantly better than every other, otherwise undecided."""
    better, worse = [], []
    for pair in blocked["pairs"]:
        if advised not in (pair["a"], pair["b"]) or not pair["significant"]:
            continue
        other = pair["b"] if pair["a"] == advised else pair["a"]
        ahead = pair["diff"] > 0 if pair["a"] == advised else pair["diff"] < 0
        (worse if ahead else better).append(other)
    names = {p[k] for p in blocked["pairs"] for k in ("a", "b")}
    if better:
        return f"contradicted: {', '.join(better)} significantly better"
    if worse and len(worse) == len(names) - 1:
        return "confirmed: significantly better than every other"
    return ("undecided: none significantly better; "
            + (f"it beats {', '.join(worse)}" if worse else "it beats none"))


def activation_verdict(activation, advised, runs, left_out):
    """(blocked analysis or None, verdict) for one activation; `runs`: {initializer: {seed:
    test accuracy}} of its seeded cells."""
    if advised not in runs:
        why = left_out.get(cell_name(activation, advised))
        if why is None:
            return None, f"undecided: {advised} is not in the plan"
        if runs:
            return None, f"contradicted: {advised} {why}, {', '.join(runs)} trained"
        return None, f"undecided: no initializer trained ({advised} {why})"
    analysis = seed_analysis(runs) if len(runs) > 1 else None
    if analysis is None:
        return None, "confirmed: the only initializer that trained" if len(runs) == 1 \
            else "undecided: too few seeds"
    return analysis, advice_verdict(advised, analysis["blocked"])


def spearman_interval(x, y, confidence=0.95):
    """Spearman's rank correlation with its interval (Fisher's z, standard error
    sqrt(1.06 / (n - 3)): Fieller, Hartley & Pearson 1957); None below 4 pairs."""
    from scipy import stats

    if len(x) < 4:
        return None
    rho = float(stats.spearmanr(x, y).statistic)
    z, se = math.atanh(max(min(rho, 0.9999), -0.9999)), math.sqrt(1.06 / (len(x) - 3))
    q = stats.norm.ppf(0.5 + confidence / 2)
    return {"n": len(x), "rho": rho, "ci_low": math.tanh(z - q * se),
            "ci_high": math.tanh(z + q * se)}


def grid_markdown(grid, search, best, left_out, seeded, advice, step0, band, settings,
                  diverged=None):
    """findings/trained_grid.md's tables. `seeded`: {cell: {seed: test accuracy}} from the
    seeds step's report; `step0`: {cell: the step-0 grid's drift} (lower keeps signal and
    gradient better; its own column); `settings`: the line that states data, epochs and model;
    `diverged`: {cell: seeds that diverged at its best rate}, named beside its accuracy."""
    lines = [settings, "",
             f"Rate search on seed {grid['seeds'][0]}: validation accuracy per rate "
             f"(chance: below {band:.3f}); the best rate then trained on seeds "
             f"{', '.join(map(str, grid['seeds']))}: test accuracy, mean and 95% interval "
             f"(Student's t across the seeds; seed {grid['seeds'][0]}'s run is the search's "
             "own).", ""]
    for activation in grid["activations"]:
        lines += activation_section(grid, activation, advice.get(activation), search, best,
                                    left_out, seeded, step0, diverged or {})
    return lines + step0_section(grid, search, seeded, step0)


def activation_section(grid, activation, advised, search, best, left_out, seeded, step0,
                       diverged):
    """One activation's verdict on the reference's advice, its table (a row per initializer)
    and, where its initializers were seeded, the blocked ANOVA behind the verdict."""
    rates = list(grid["learning_rates"])
    runs = {i: seeded[cell_name(activation, i)] for i in grid["initializers"]
            if cell_name(activation, i) in seeded}
    analysis, verdict = activation_verdict(activation, advised, runs, left_out)
    unseeded = [i for i in grid["initializers"] if cell_name(activation, i) in left_out]
    lines = [f"### {activation}", "", f"The reference: {advised or '-'}. Verdict: {verdict}."
             + (f" Learned at no rate (stuck at chance or diverged; rows below), so no seeds: "
                f"{', '.join(unseeded)}." if unseeded and runs else ""),
             "",
             "| initializer | " + " | ".join(f"val at lr {r:g}" for r in rates)
             + " | best lr | test acc over seeds | 95% interval | step-0 drift |",
             "|---" * (len(rates) + 5) + "|"]
    for initializer in grid["initializers"]:
        cell = cell_name(activation, initializer)
        drift = step0.get(cell)
        lines.append(f"| {initializer} | " + " | ".join(search_columns(search[cell], rates))
                     + f" | {seeded_columns(cell, runs.get(initializer), best, left_out, diverged)}"
                     + " | " + ("-" if drift is None else f"{drift:.2f}") + " |")
    if analysis:
        lines += ["", anova_line(analysis["blocked"], len(runs))]
    return lines + [""]


def search_columns(by_rate, rates):
    """A cell's validation accuracy at each searched rate ("-" where it did not run)."""
    return ["-" if m is None else "diverged" if m.get("diverged") else fmt(m.get("val_accuracy"), ".3f")
            for m in (by_rate.get(r) for r in rates)]


def seeded_columns(cell, accuracies, best, left_out, diverged):
    """A cell's best rate, mean test accuracy over its seeds (naming those that diverged) and
    its interval; for a cell that was not seeded, why."""
    if accuracies is None:
        return f"- | {left_out.get(cell, 'not seeded')} | -"
    s = summarize(list(accuracies.values()))
    lost = diverged.get(cell)
    return (f"{best[cell]:g} | {s['mean']:.3f}"
            + (f" (seed {', '.join(map(str, lost))} diverged)" if lost else "")
            + " | "
            + (f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if s["ci_low"] is not None else "-"))


def anova_line(b, trained):
    """The seed-blocked ANOVA over an activation's `trained` initializers, in one sentence."""
    return (f"Seed-blocked ANOVA over the {trained} trained initializers: "
            f"F({b['df'][0]}, {b['df'][1]}) = {b['f']:.2f}, p = {b['p']:.3g}; "
            f"Tukey half-width {b['pairs'][0]['ci_high'] - b['pairs'][0]['diff']:.3f}"
            f", residual sd {b['residual_sd']:.4f}.")


def step0_section(grid, search, seeded, step0):
    """Does step 0 predict training: the rank correlation of the step-0 drift with the
    trained accuracy, over the seeded cells and over every cell the search trained."""
    trained = {cell: float(np.mean(list(v.values()))) for cell, v in seeded.items()}
    lines = ["### Does step 0 predict training?", "",
             "Spearman's rank correlation between a cell's step-0 drift (the grid, "
             "`grid/cells.tsv`; lower is better) and its trained test accuracy, with its 95% "
             "interval (Fisher's z); negative means the cells that keep signal and gradient "
             "at step 0 train better. Cells without a finite drift (not in the grid) are "
             "left out.", ""]
    for what, accuracy in (("the seeded cells, mean over the seeds", trained),
                           ("every cell that did not diverge at every rate, seed "
                            f"{grid['seeds'][0]} at its best rate", search_test(search))):
        pairs = [(step0[c], accuracy[c]) for c in accuracy
                 if c in step0 and math.isfinite(step0[c])]
        corr = spearman_interval([p[0] for p in pairs], [p[1] for p in pairs])
        lines.append(f"- {what}: " + (
            f"too few cells ({len(pairs)})" if corr is None else
            f"{corr['rho']:.2f} [{corr['ci_low']:.2f}, {corr['ci_high']:.2f}] over "
            f"{corr['n']} cells"))
    return lines


def search_test(search):
    """{cell: the search's test accuracy at the rate with the best validation accuracy},
    stuck cells included; cells that diverged at every rate left out."""
    out = {}
    for cell, by_rate in search.items():
        found = best_run(by_rate)
        if found and found[1].get("test_accuracy") is not None:
            out[cell] = found[1]["test_accuracy"]
    return out
