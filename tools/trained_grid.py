"""The reference's closing table, trained (sweeps.yaml `trained_grid`), from the per-run
tables of its experiments (findings/runs/*.tsv, `python -m tools.runs export` of each):
each activation x initializer cell's rate search and whether it brackets the best rate, its
seeds' test accuracy, the steps behind "stuck at chance", the seed-blocked comparison within
each activation, the reference's advice cell by cell, and whether the step-0 grid predicts
the trained ranking. `next_runs` says which experiments would settle what is not settled.

The rows: experiment (the cell, <activation>-<initializer>), its rate, steps and seed. The
search is the shortest budget's first seed; a cell's seeds are that budget at its best rate;
a longer budget (more steps) is the stuck-or-slow check."""
import math

import numpy as np

from initstudy.errors import StudyError
from initstudy.formatting import fmt
from initstudy.stats import noise_limit, seed_analysis, summarize

LONGER = 5  # a cell at chance is called stuck only after this many times the search's steps


def best_run(by_rate):
    """(rate, run) with the highest validation accuracy among the runs that did not diverge
    ({rate: run}), the lower rate on a tie; None if every run diverged."""
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


def bracket(by_rate, rate):
    """Whether a search brackets its best `rate`: "bracketed" when a rate on either side ran
    and scored lower (or diverged above), else which side is open."""
    above = [by_rate[r] for r in by_rate if r > rate]
    if not above:
        return "at the top rate (unbracketed)"
    if not any(r < rate for r in by_rate):
        return "at the bottom rate (unbracketed)"
    return "diverged above" if all(m.get("diverged") for m in above) else "bracketed"


def next_rate(rate, up=True):
    """The next half-decade from `rate` (1, 3, 10, 30, ...): 0.1 -> 0.3 -> 1; 0.003 <- 0.01."""
    exponent = math.floor(math.log10(rate) + 1e-9)
    ladder = [m * 10.0 ** e for e in (exponent - 1, exponent, exponent + 1) for m in (1, 3)]
    step = (min(x for x in ladder if x > rate * 1.01) if up
            else max(x for x in ladder if x < rate / 1.01))
    return float(f"{step:.3g}")


def grid_rows(rows):
    """The grid's runs as (cells {cell: (activation, initializer)} in table order, the
    search's steps, its seed, the chance band); refuses rows of different data or classes."""
    if not rows:
        raise StudyError("no runs: export the grid's experiments first (python -m tools.runs "
                         "export NAME)")
    kinds = {(r["data"], r.get("classes"), r.get("val_images")) for r in rows}
    if len(kinds) != 1 or None in next(iter(kinds))[1:]:
        raise StudyError(f"the grid's runs must share one data set with its classes and "
                         f"validation size (got {sorted(map(str, kinds))})")
    _, classes, val_images = kinds.pop()
    cells = {}
    for r in rows:
        cells.setdefault(r["experiment"], (r["activation"], r["initializer"]))
    steps = min(r["steps"] for r in rows)
    seed = min(r["seed"] for r in rows if r["steps"] == steps)
    return cells, steps, seed, noise_limit(1 / int(classes), int(val_images))


def at(rows, steps, seed=None, rate=None):
    """{cell: {rate (or seed): run}} of the runs with these steps (and seed or rate)."""
    out = {}
    for r in rows:
        if r["steps"] == steps and seed in (None, r["seed"]) and rate in (None, r["learning_rate"]):
            out.setdefault(r["experiment"], {})[r["learning_rate"] if rate is None else r["seed"]] = r
    return out


def identical_cells(rows, cells):
    """{cell: an earlier cell whose every run it repeats to the last digit}: ReLU and ReLU6
    train the same when no unit exceeds 6; such a pair is one observation."""
    def runs(cell):
        return {(r["learning_rate"], r["steps"], r["seed"]):
                (r["diverged"], r["val_accuracy"], r["test_accuracy"])
                for r in rows if r["experiment"] == cell}
    seen, same = {}, {}
    for cell, (_, initializer) in cells.items():
        key = (initializer, tuple(sorted(runs(cell).items())))
        if key in seen:
            same[cell] = seen[key]
        else:
            seen[key] = cell
    return same


def longest(rows, cell, steps):
    """The run of `cell` with the most steps beyond `steps` (its best validation there), or
    None: the longer budget a stuck or advised cell was given."""
    longer = [r for r in rows if r["experiment"] == cell and r["steps"] > steps
              and not r["diverged"] and r["val_accuracy"] is not None]
    most = max((r["steps"] for r in longer), default=None)
    return max((r for r in longer if r["steps"] == most), key=lambda r: r["val_accuracy"],
               default=None)


def stuck_note(rows, cell, steps, band):
    """What a cell at chance in the search showed given more steps: learns slowly, stuck, or
    not trained longer (no verdict from it)."""
    run = longest(rows, cell, steps)
    if run is None:
        return f"at chance after {steps} steps, not trained longer", False
    if run["val_accuracy"] >= band:
        return (f"learns slowly: at chance after {steps} steps, val {run['val_accuracy']:.3f} "
                f"after {run['steps']}"), True
    enough = run["steps"] >= LONGER * steps
    return (f"did not leave chance in {run['steps']} steps (best val "
            f"{run['val_accuracy']:.3f})", enough)


def grid_analysis(rows):
    """Every cell's search, bracket, seeds and status; the base of the table and of
    next_runs."""
    cells, steps, seed, band = grid_rows(rows)
    search = at(rows, steps, seed=seed)
    search = {c: search.get(c, {}) for c in cells}
    best, left_out = best_rates(search, band)
    seeded, diverged = {}, {}
    for cell, rate in best.items():
        runs = at([r for r in rows if r["experiment"] == cell], steps, rate=rate).get(cell, {})
        seeded[cell] = {s: r["test_accuracy"] for s, r in runs.items() if not r["diverged"]}
        diverged[cell] = sorted(s for s, r in runs.items() if r["diverged"])
    brackets = {c: bracket(search[c], best[c]) for c in best}
    stuck = {c: stuck_note(rows, c, steps, band) for c, why in left_out.items()
             if why.startswith("stuck")}
    return {"rows": rows, "cells": cells, "steps": steps, "seed": seed, "band": band, "search": search,
            "best": best, "left_out": left_out, "seeded": seeded, "diverged": diverged,
            "brackets": brackets, "stuck": stuck, "same": identical_cells(rows, cells)}


def settled(g, cell):
    """None if a cell can carry a verdict, else why not: its best rate not bracketed, or at
    chance without the longer budget."""
    b = g["brackets"].get(cell, "")
    if "unbracketed" in b:
        return f"best rate {g['best'][cell]:g} {b.replace(' (unbracketed)', '')}, not bracketed"
    note, decided = g["stuck"].get(cell, (None, True))
    return None if decided else note


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


def activation_verdict(g, activation, advised):
    """(blocked analysis or None, verdict) for one activation. No verdict rests on a cell
    whose rate is not bracketed or that sat at chance without the longer budget: such a cell
    makes a verdict that needs it "undecided" and says why."""
    cells = {i: c for c, (a, i) in g["cells"].items() if a == activation}
    runs = {i: g["seeded"][c] for i, c in cells.items() if len(g["seeded"].get(c, {})) > 0}
    if advised not in cells:
        return None, f"undecided: {advised} is not in the plan"
    mine = cells[advised]
    open_ = settled(g, mine)
    if advised not in runs:
        why = g["stuck"].get(mine, (g["left_out"].get(mine, "not seeded"),))[0]
        if open_:
            return None, f"undecided: {advised} {open_}"
        if runs:
            return None, f"contradicted: {advised} {why}; {', '.join(runs)} trained"
        return None, f"undecided: no initializer trained ({advised} {why})"
    if open_:
        return None, f"undecided: {advised}'s {open_}"
    analysis = seed_analysis(runs) if len(runs) > 1 else None
    if analysis is None:
        return None, ("confirmed: the only initializer that trained" if len(runs) == 1
                      else "undecided: too few seeds")
    verdict = advice_verdict(advised, analysis["blocked"])
    unsettled = [f"{i} ({settled(g, cells[i])})" for i in runs if settled(g, cells[i])]
    if verdict.startswith("confirmed") and unsettled:
        verdict = "undecided: it beats every other, but " + "; ".join(unsettled)
    return analysis, verdict


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


def grid_markdown(rows, advice, step0, settings, networks):
    """findings/trained_grid.md from the grid's runs. `advice`: {activation: initializer};
    `step0`: {cell: drift} from grid/cells.tsv (lower keeps signal and gradient better);
    `settings`: the line stating the data and model; `networks`: how the step-0 network
    differs from the trained one ("" if it is the same)."""
    g = grid_analysis(rows)
    lines = [settings, "",
             f"Rate search on seed {g['seed']} at {g['steps']} steps: validation accuracy per "
             f"rate (chance: below {g['band']:.3f}); a best rate is bracketed when a run on "
             "each side scored lower or diverged above it, and only bracketed cells give a "
             f"verdict. Each cell's best rate then trained on its seeds: test accuracy, mean "
             "and 95% interval (Student's t across the seeds; the search's seed is its own "
             f"run). A cell at chance is stuck only after {LONGER}x the search's steps.", ""]
    for activation in dict.fromkeys(a for a, _ in g["cells"].values()):
        lines += activation_section(g, activation, advice.get(activation), step0)
    return "\n".join(lines + step0_section(g, step0, networks)) + "\n"


def activation_section(g, activation, advised, step0):
    """One activation's verdict on the reference's advice, its table (a row per initializer)
    and, where its initializers were seeded, the blocked ANOVA behind the verdict."""
    cells = {i: c for c, (a, i) in g["cells"].items() if a == activation}
    rates = sorted({r for c in cells.values() for r in g["search"][c]})
    analysis, verdict = activation_verdict(g, activation, advised)
    repeats = [c for c in cells.values() if c in g["same"]]
    lines = [f"### {activation}", "", f"The reference: {advised or '-'}. Verdict: {verdict}."]
    if repeats:
        lines[-1] += (" Cells that repeat another's runs to the last digit (one observation, "
                      "counted once below): "
                      + ", ".join(f"{c} = {g['same'][c]}" for c in repeats) + ".")
    lines += ["", "| initializer | " + " | ".join(f"val at lr {r:g}" for r in rates)
              + " | best lr | bracket | test acc over seeds | 95% interval | val, longer "
              "budget | step-0 drift |", "|---" * (len(rates) + 7) + "|"]
    for initializer, cell in cells.items():
        drift, longer = step0.get(cell), longest(g["rows"], cell, g["steps"])
        lines.append(f"| {initializer} | " + " | ".join(search_columns(g["search"][cell], rates))
                     + f" | {seeded_columns(g, cell)} | "
                     + ("-" if longer is None else f"{longer['val_accuracy']:.3f} after "
                        f"{longer['steps']} steps at lr {longer['learning_rate']:g}") + " | "
                     + ("-" if drift is None else f"{drift:.2f}") + " |")
    if analysis:
        trained = [c for c in cells.values() if g["seeded"].get(c)]
        lines += ["", anova_line(analysis["blocked"], len(trained))]
    return lines + [""]


def search_columns(by_rate, rates):
    """A cell's validation accuracy at each searched rate ("-" where it did not run)."""
    return ["-" if m is None else "diverged" if m.get("diverged") else fmt(m.get("val_accuracy"), ".3f")
            for m in (by_rate.get(r) for r in rates)]


def seeded_columns(g, cell):
    """A cell's best rate, its bracket, its mean test accuracy over its seeds (naming those
    that diverged) and its interval; for a cell that was not seeded, why."""
    if cell not in g["seeded"]:
        why = g["stuck"].get(cell, (g["left_out"].get(cell, "not seeded"),))[0]
        return f"- | - | {why} | -"
    s = summarize(list(g["seeded"][cell].values()))
    lost = g["diverged"].get(cell)
    return (f"{g['best'][cell]:g} | {g['brackets'][cell]} | "
            + ("-" if s["mean"] is None else f"{s['mean']:.3f}")
            + f" ({len(g['seeded'][cell])} seed{'s' if len(g['seeded'][cell]) != 1 else ''}"
            + (f"; seed {', '.join(map(str, lost))} diverged" if lost else "") + ") | "
            + (f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if s["ci_low"] is not None else "-"))


def anova_line(b, trained):
    """The seed-blocked ANOVA over an activation's `trained` initializers, in one sentence."""
    return (f"Seed-blocked ANOVA over the {trained} trained initializers: "
            f"F({b['df'][0]}, {b['df'][1]}) = {b['f']:.2f}, p = {b['p']:.3g}; "
            f"Tukey half-width {b['pairs'][0]['ci_high'] - b['pairs'][0]['diff']:.3f}"
            f", residual sd {b['residual_sd']:.4f}.")


def step0_section(g, step0, networks):
    """Does step 0 predict training: the rank correlation of the step-0 drift with the
    trained accuracy, over the seeded cells and over every cell the search trained, each
    repeated cell counted once."""
    trained = {c: float(np.mean(list(v.values()))) for c, v in g["seeded"].items() if v}
    searched = {c: found[1]["test_accuracy"] for c in g["search"]
                if (found := best_run(g["search"][c])) and found[1]["test_accuracy"] is not None}
    lines = ["### Does step 0 predict training?", "",
             "Spearman's rank correlation between a cell's step-0 drift (the grid, "
             "`grid/cells.tsv`; lower is better) and its trained test accuracy, with its 95% "
             "interval (Fisher's z); negative means the cells that keep signal and gradient "
             "at step 0 train better. Cells without a finite drift are left out, and a cell "
             "that repeats another's runs counts once."
             + (f" **Cross-network**: {networks}." if networks else ""), ""]
    for what, accuracy in (("the seeded cells, mean over the seeds", trained),
                           (f"every cell that did not diverge at every rate, seed {g['seed']} "
                            "at its best rate", searched)):
        pairs = [(step0[c], accuracy[c]) for c in accuracy
                 if c not in g["same"] and c in step0 and math.isfinite(step0[c])]
        corr = spearman_interval([p[0] for p in pairs], [p[1] for p in pairs])
        lines.append(f"- {what}: " + (
            f"too few cells ({len(pairs)})" if corr is None else
            f"{corr['rho']:.2f} [{corr['ci_low']:.2f}, {corr['ci_high']:.2f}] over "
            f"{corr['n']} cells"))
    return lines


def next_runs(rows, advice, seeds):
    """What would settle the grid, as [(why, {cell: rate}, epochs factor, seeds)]: each
    unbracketed cell one half-decade further out (one experiment per rate), the cells at
    chance (at their least-bad rate) and each activation's advised cell (once its rate is
    bracketed) at LONGER x the steps, and the learned, bracketed cells' missing `seeds` (the plan's)."""
    g = grid_analysis(rows)
    out = []
    edges = {}
    for cell, b in g["brackets"].items():
        if "unbracketed" in b:
            rate = next_rate(g["best"][cell], up="top" in b)
            edges.setdefault(rate, {})[cell] = rate
    out += [(f"bracket at lr {rate:g}", cells, 1, [g["seed"]]) for rate, cells in sorted(edges.items())]
    longer = {}
    for cell, (a, i) in g["cells"].items():
        if longest(rows, cell, g["steps"]):
            continue
        rate_found = cell in g["best"] and "unbracketed" not in g["brackets"][cell]
        if cell in g["stuck"] or (advice.get(a) == i and rate_found):
            found = best_run(g["search"][cell])
            if found:
                longer[cell] = found[0]
    if longer:
        out.append((f"{LONGER}x the steps", longer, LONGER, [g["seed"]]))
    missing = {c: g["best"][c] for c in g["best"] if "unbracketed" not in g["brackets"][c]
               and set(seeds) - set(g["seeded"][c]) - set(g["diverged"][c])}
    rest = [s for s in seeds if s != g["seed"]]
    if missing and rest:
        out.append(("seeds at the best rate", missing, 1, rest))
    return out
