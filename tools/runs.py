"""Per-run results kept in git (findings/runs/*.tsv), and the findings built from them.

An experiment's runs live in DVC's cache (eval/<experiment>/runs.json) or in its report
(report/summary.json); neither is a table a reader can recompute a finding from. `export`
writes one row per run; the findings tables are built from those rows only.

Usage:
  python -m tools.runs export NAME   this workspace's runs -> findings/runs/NAME.tsv
                                     (report/summary.json, else eval/*/runs.json)
  python -m tools.runs seeds NAME..  the default experiments pooled over the named tables'
                                     seeds, seed-blocked -> findings/seeds.md
  python -m tools.runs factorial NAME..  initializer x activation over the named tables
                                     (interaction, Tukey within each activation)
                                     -> findings/factorial.md
  python -m tools.runs rates NAME    a rate search's table: each optimizer's rates by mean
                                     validation accuracy, the best and whether it is
                                     bracketed -> findings/rates.md
  python -m tools.runs recipes OUT BASE NAME..  the experiments under each table's recipe
                                     (optimizer, rate, budget), seed-blocked per recipe,
                                     each pair's gap against BASE's -> findings/OUT.md
"""
import os
import sys

from initstudy.config import load_study
from initstudy.errors import StudyError
from initstudy.files import read_json, read_tsv, write_text, write_tsv
from initstudy.runner import run_stage

RUNS = os.path.join("findings", "runs")
COLUMNS = ("experiment", "initializer", "activation", "optimizer", "learning_rate", "schedule",
           "epochs", "steps", "batch_size", "seed", "diverged", "val_accuracy", "test_accuracy",
           "test_accuracy_raw", "data", "classes", "val_images", "cpu")
INTEGERS = ("epochs", "steps", "batch_size", "seed", "diverged")  # read_tsv reads floats
SEEDS_MD = os.path.join("findings", "seeds.md")
RATES_MD = os.path.join("findings", "rates.md")
FACTORIAL_MD = os.path.join("findings", "factorial.md")


def runs_path(name):
    return os.path.join(RUNS, f"{name}.tsv")


def run_rows(study, manifest, runs_by_experiment):
    """One row per run: what it trained (the experiment, the rate, the budget in SGD steps)
    and what it scored. runs_by_experiment: {experiment: [run dict as evaluate writes it]}."""
    from initstudy.report_text import data_id

    from initstudy.training import steps_per_epoch

    steps = steps_per_epoch(manifest, study.train.batch_size) * study.train.epochs
    rows, cpu = [], cpu_kind()
    for name, runs in runs_by_experiment.items():
        e = study.experiment(name)
        for r in runs:
            rows.append({"experiment": name, "initializer": e.initializer,
                         "activation": e.activation, "optimizer": study.train.optimizer,
                         "learning_rate": e.learning_rate,
                         "schedule": study.train.schedule, "epochs": r["epochs"],
                         "steps": steps, "batch_size": study.train.batch_size,
                         "seed": r["seed"], "diverged": int(bool(r["diverged"])),
                         "val_accuracy": r.get("val_accuracy"),
                         "test_accuracy": r.get("test_accuracy"),
                         "test_accuracy_raw": r.get("test_accuracy_raw"),
                         "data": data_id(manifest), "classes": len(manifest["classes"]),
                         "val_images": manifest["splits"]["validation"]["count"], "cpu": cpu})
    return rows


def cpu_kind():
    """This machine's CPU, as a row names it: model and the best instruction set TensorFlow's
    kernels use (trained numbers differ between kinds: findings/cpu-kinds.md). The runs a
    workspace exports trained here unless DVC pulled them from another machine's cache."""
    from initstudy.device import ISA_FLAGS, cpu_info

    model, flags = cpu_info() or ("unknown", set())
    return f"{model} ({next((f for f in ISA_FLAGS if f in flags), 'unknown')})"


def workspace_runs(study):
    """{experiment: runs} of this workspace: each evaluate stage's, else (a fresh clone, where
    eval/ is in DVC's cache only) the report's. Never the report beside an eval/: an
    experiment run to `evaluate` leaves the report of an earlier run in place."""
    if all(os.path.exists(f"eval/{e}/runs.json") for e in study.experiments):
        return {e: read_json(f"eval/{e}/runs.json") for e in study.experiments}  # lists of runs
    summary = os.path.join("report", "summary.json")
    if not os.path.exists("eval") and os.path.exists(summary):
        found = {e["experiment"]: e["runs"] for e in read_json(summary)["experiments"]}
        if set(found) == set(study.experiments):
            return found
    missing = [e for e in study.experiments if not os.path.exists(f"eval/{e}/runs.json")]
    raise StudyError(f"no finished runs of {', '.join(missing)} in this workspace: run "
                     "`dvc repro evaluate` (or the plan's experiment) first")


def export(name):
    from initstudy.shards import PREPARED, load_manifest

    study = load_study()
    rows = run_rows(study, load_manifest(PREPARED, verify=False), workspace_runs(study))
    os.makedirs(RUNS, exist_ok=True)
    write_tsv(runs_path(name), rows, COLUMNS)
    print(f"{len(rows)} runs -> {runs_path(name)}")


def read_runs(name):
    """The rows of findings/runs/NAME.tsv, its whole numbers as int."""
    if not os.path.exists(runs_path(name)):
        raise StudyError(f"{runs_path(name)} does not exist: export it first "
                         f"(python -m tools.runs export {name})")
    return [{**r, **{c: int(r[c]) for c in INTEGERS}} for r in read_tsv(runs_path(name))]


def pooled(names):
    """The rows of the named tables, refused if two tables hold the same run (experiment,
    seed) or differ in what was trained (budget, data): pooled seeds must be exchangeable."""
    rows, seen = [], {}
    for name in names:
        for r in read_runs(name):
            key = (r["experiment"], r["seed"])
            setting = tuple(r[c] for c in ("initializer", "activation", "optimizer",
                                           "learning_rate", "schedule", "steps", "data"))
            if key in seen:
                raise StudyError(f"{r['experiment']} seed {r['seed']} is in two tables")
            other = next((s for (e, _), s in seen.items() if e == r["experiment"]), setting)
            if other != setting:
                raise StudyError(f"{r['experiment']}: the tables differ in what was trained "
                                 f"({other} vs {setting}); they cannot be pooled")
            seen[key] = setting
            rows.append(r)
    return rows


def seeds_markdown(rows, names):
    """The default experiments over every seed of the pooled tables: per-experiment mean and
    t interval, the seed-blocked analysis (Tukey, its detectable gap and each gap's power),
    and the He question answered by the numbers."""
    from initstudy.formatting import interval
    from initstudy.report_text import analysis_lines
    from initstudy.stats import seed_analysis, summarize

    groups = {}
    for r in rows:
        if not r["diverged"] and r["test_accuracy"] is not None:
            groups.setdefault(r["experiment"], {})[r["seed"]] = r["test_accuracy"]
    seeds = sorted({r["seed"] for r in rows})
    first = rows[0]
    lines = [f"# The default study over {len(seeds)} seeds", "",
             f"Built by `python -m tools.runs seeds {' '.join(names)}` from the committed "
             f"per-run tables ({', '.join(f'`{runs_path(n)}`' for n in names)}): seeds "
             f"{', '.join(map(str, seeds))}, each {first['epochs']} epochs = {first['steps']} "
             f"SGD steps of batch {first['batch_size']}, {first['schedule']} schedule, data "
             f"{first['data']}. Test accuracy after precise BN.", "",
             "| experiment | runs | test acc mean | 95% t interval |", "|---|---|---|---|"]
    for e, g in groups.items():
        s = summarize(list(g.values()))
        lines.append(f"| {e} | {s['n']} | {s['mean']:.4f} | "
                     f"{interval(s['ci_low'], s['ci_high'])} |")
    analysis = seed_analysis(groups)
    lines += ["", *analysis_lines(analysis), "", *he_answer(analysis)]
    return "\n".join(lines) + "\n"


def he_answer(analysis):
    """Is He behind Glorot and random normal? One line per pair, chosen by the numbers."""
    if analysis is None:
        return ["Fewer than 2 complete seeds: no answer."]
    b = analysis["blocked"]
    out = ["**Is He behind Glorot and random normal?**", ""]
    for t in b["pairs"]:
        if {t["a"], t["b"]} not in ({"he_normal", "glorot_normal"},
                                    {"he_normal", "random_normal"}):
            continue
        other = t["b"] if t["a"] == "he_normal" else t["a"]
        gap = t["diff"] if t["b"] == "he_normal" else -t["diff"]  # other - He
        low, high = sorted((t["ci_low"], t["ci_high"]) if t["b"] == "he_normal"
                           else (-t["ci_high"], -t["ci_low"]))
        if t["significant"] and gap > 0:
            verdict = f"yes: He trails {other} by {gap:.4f}"
        elif t["significant"]:
            verdict = f"no: He is ahead of {other} by {-gap:.4f}"
        else:
            verdict = (f"not detected: {other} - He = {gap:+.4f}; at {b['seeds']} seeds Tukey "
                       f"detects {b['mdd_tukey']:.4f} with {analysis['power']:.0%} power, and "
                       f"a true gap of this size with power {t['power_tukey']:.2f}")
        out.append(f"- {other} vs He: {verdict} (Tukey 95% interval of {other} - He "
                   f"[{low:.4f}, {high:.4f}], p = {t['p_tukey']:.3g}).")
    return out


def factorial_markdown(rows, names):
    """Initializer x activation with seeds as blocks: the cell means, the interaction test,
    Tukey within each activation, and "LeCun or SELU?" answered by the numbers."""
    from initstudy.formatting import interval
    from initstudy.stats import factorial_analysis, summarize

    runs = [{"initializer": r["initializer"], "activation": r["activation"], "seed": r["seed"],
             "value": r["test_accuracy"]} for r in rows
            if not r["diverged"] and r["test_accuracy"] is not None]
    budgets = {(r["optimizer"], r["steps"], r["schedule"], r["learning_rate"], r["data"])
               for r in rows}
    if len(budgets) != 1:
        raise StudyError(f"the tables' runs differ in budget, rate or data ({sorted(budgets)}): "
                         "a factorial compares cells trained alike")
    result = factorial_analysis(runs)
    first, t = rows[0], result["terms"]
    activations = list(result["within"])
    lines = ["# Initializer x activation, with BN", "",
             f"Built by `python -m tools.runs factorial {' '.join(names)}` from the committed "
             f"per-run tables ({', '.join(f'`{runs_path(n)}`' for n in names)}): "
             f"{first['epochs']} epochs = {first['steps']} SGD steps of batch "
             f"{first['batch_size']}, {first['schedule']} schedule from {first['learning_rate']:g}, "
             f"data {first['data']}, seeds {sorted({r['seed'] for r in runs})} as blocks; test "
             "accuracy after precise BN.", "",
             "Cell means with the 95% t interval across the cell's seeds:", "",
             "| initializer | " + " | ".join(activations) + " |",
             "|---|" + "---|" * len(activations)]
    cells = {}
    for r in runs:
        cells.setdefault((r["initializer"], r["activation"]), []).append(r["value"])
    for i in sorted({r["initializer"] for r in runs}):
        row = []
        for a in activations:
            s = summarize(cells[(i, a)]) if (i, a) in cells else None
            row.append(f"{s['mean']:.4f} {interval(s['ci_low'], s['ci_high'])}" if s else "-")
        lines.append(f"| {i} | " + " | ".join(row) + " |")
    lines += ["", f"Seed-blocked two-way ANOVA with the interaction (statsmodels): residual sd "
              f"{result['residual_sd']:.4f} on {result['df']} df.", "",
              "| term | F | p |", "|---|---|---|"]
    lines += [f"| {name} | F({v['df'][0]}, {v['df'][1]}) = {v['f']:.2f} | {v['p']:.3g} |"
              for name, v in t.items()]
    for activation, w in result["within"].items():
        lines += ["", f"**{activation}**: cell means "
                  + ", ".join(f"{i} {m:.4f}" for i, m in w["means"].items())
                  + f"; Tukey detects {w['mdd_tukey']:.4f} with 80% power.", ""]
        lines += [f"- {p['a']} - {p['b']}: {p['diff']:+.4f} {interval(p['ci_low'], p['ci_high'])}"
                  + (" (differ)" if p["significant"] else "") for p in w["pairs"]]
    return "\n".join(lines + ["", lecun_or_selu(result, len({r["seed"] for r in runs}))]) + "\n"


def lecun_or_selu(result, seeds):
    """Does LeCun + SELU's lead belong to LeCun, to SELU, or to the pair? From the two simple
    effects (LeCun against the best other initializer at SELU, Tukey; SELU against ReLU6 for
    LeCun, a t interval on the residual variance, each cell over `seeds` seeds) and the
    interaction term."""
    from scipy import stats

    within, alpha = result["within"], result["alpha"]
    interaction = result["terms"]["interaction"]
    selu = within.get("selu", {}).get("means", {})
    relu6 = within.get("relu6", {}).get("means", {})
    if "lecun_normal" not in selu or "lecun_normal" not in relu6:
        return "LeCun or SELU? This table lacks LeCun at both activations."
    rival = max((i for i in selu if i != "lecun_normal"), key=selu.get)
    pair = next(p for p in within["selu"]["pairs"] if {p["a"], p["b"]} == {"lecun_normal", rival})
    sign = 1 if pair["a"] == "lecun_normal" else -1  # LeCun - rival
    low, high = sorted((sign * pair["ci_low"], sign * pair["ci_high"]))
    act_gap = selu["lecun_normal"] - relu6["lecun_normal"]
    half = (stats.t.ppf(1 - alpha / 2, result["df"]) * result["residual_sd"]
            * (2 / seeds) ** 0.5)
    act_real = abs(act_gap) > half
    verdict = {(False, True): "The lead is SELU's, not LeCun's",
               (True, False): "The lead is LeCun's, not SELU's",
               (True, True): "Both LeCun and SELU carry part of it",
               (False, False): "Neither is separated"}[(pair["significant"], act_real)]
    words = (f"**LeCun or SELU? {verdict}.** At SELU, LeCun - "
             f"{rival} (the best other initializer) = {sign * pair['diff']:+.4f} (Tukey 95% "
             f"interval [{low:.4f}, {high:.4f}]); for LeCun, SELU - ReLU6 = {act_gap:+.4f} "
             f"(95% t interval [{act_gap - half:.4f}, {act_gap + half:.4f}], residual sd, "
             f"{result['df']} df).")
    if interaction["p"] >= alpha:
        return words + (f" Interaction F = {interaction['f']:.2f}, p = {interaction['p']:.3g}: "
                        "no evidence that the initializers' differences depend on the activation.")
    parts = []
    for activation, w in within.items():
        real = [p for p in w["pairs"] if p["significant"]]
        parts.append(f"at {activation} " + ("; ".join(
            f"{p['a']} - {p['b']} = {p['diff']:+.4f}" for p in real) if real else
            f"no pair differs (Tukey detects {w['mdd_tukey']:.4f})"))
    return words + (f" Interaction F = {interaction['f']:.2f}, p = {interaction['p']:.3g}: the "
                    "initializers' differences depend on the activation (" + "; ".join(parts)
                    + ").")


def best_rates(rows):
    """{optimizer: {"rates": {rate: mean validation accuracy over the searched experiments},
    "best": rate, "bracketed": a lower mean at a rate on each side of the best}}."""
    found = {}
    for r in rows:
        found.setdefault(r["optimizer"], {}).setdefault(r["learning_rate"], []).append(
            0.0 if r["diverged"] else r["val_accuracy"])
    out = {}
    for optimizer, by_rate in found.items():
        means = {rate: sum(v) / len(v) for rate, v in sorted(by_rate.items())}
        best = max(means, key=means.get)
        out[optimizer] = {"rates": means, "best": best,
                          "bracketed": min(means) < best < max(means)}
    return out


def rates_markdown(rows, names):
    """A rate search's table: validation accuracy per experiment and rate, each optimizer's
    best rate by the mean, and whether a lower rate and a higher one were tried beside it."""
    first = rows[0]
    experiments = sorted({r["experiment"] for r in rows})
    lines = ["# The rate search for each optimizer", "",
             f"Built by `python -m tools.runs rates {' '.join(names)}` from "
             f"`{runs_path(names[0])}`: {', '.join(experiments)}, seed(s) "
             f"{sorted({r['seed'] for r in rows})}, {first['epochs']} epoch(s) = {first['steps']} "
             f"steps of batch {first['batch_size']}, {first['schedule']} schedule, data "
             f"{first['data']}. Validation accuracy after precise BN (a diverged run counts 0); "
             "each optimizer's rate is the one with the best mean over the experiments.", "",
             "| optimizer | rate | " + " | ".join(experiments) + " | mean |",
             "|---|---|" + "---|" * (len(experiments) + 1)]
    values = {(r["optimizer"], r["learning_rate"], r["experiment"]): r for r in rows}
    chosen = best_rates(rows)
    for optimizer, c in chosen.items():
        for rate, mean in c["rates"].items():
            cells = [cell(values.get((optimizer, rate, e))) for e in experiments]
            mark = "**" if rate == c["best"] else ""
            lines.append(f"| {optimizer} | {mark}{rate:g}{mark} | " + " | ".join(cells)
                         + f" | {mark}{mean:.4f}{mark} |")
    lines.append("")
    for optimizer, c in chosen.items():
        where = ("bracketed: the rates on either side scored lower" if c["bracketed"] else
                 f"at the {'top' if c['best'] == max(c['rates']) else 'bottom'} of the rates "
                 "tried: not bracketed, search further")
        lines.append(f"- {optimizer}: {c['best']:g} (mean {c['rates'][c['best']]:.4f}), {where}.")
    return "\n".join(lines) + "\n"


def cell(run):
    """A run's validation accuracy in a table: "-" if not run, "diverged" if it diverged."""
    if run is None:
        return "-"
    return "diverged" if run["diverged"] else f"{run['val_accuracy']:.4f}"


def recipe(rows, name):
    """The one recipe a table's runs trained with, in words: optimizer, rate(s), budget."""
    kinds = {(r["optimizer"], r["schedule"], r["epochs"], r["steps"], r["batch_size"], r["data"])
             for r in rows}
    if len(kinds) != 1:
        raise StudyError(f"{runs_path(name)}: its runs trained with {len(kinds)} recipes "
                         f"({sorted(kinds)}); a recipes table is one recipe per table")
    optimizer, _, epochs, *_ = kinds.pop()
    rates = "/".join(f"{x:g}" for x in sorted({r["learning_rate"] for r in rows}))
    return f"{optimizer} {rates}, {epochs} epochs"


def recipes_markdown(tables, out, alpha=0.05):
    """The same experiments under several recipes (tables: {name: rows}, the first the base):
    each recipe's seed-blocked analysis (Tukey), the recipe x experiment interaction, each
    pair's gap under a recipe against the base's (Bonferroni t intervals on the two recipes'
    own residual variances, Welch-Satterthwaite df), and whether the ranking held, chosen by
    the numbers."""
    from scipy import stats

    from initstudy.formatting import interval
    from initstudy.stats import factorial_analysis, seed_analysis, summarize

    recipes = {n: recipe(rows, n) for n, rows in tables.items()}
    labels = (recipes if len(set(recipes.values())) == len(recipes)
              else {n: n for n in tables})  # one recipe run twice: the tables' names
    groups = {n: {} for n in tables}
    for n, rows in tables.items():
        for r in rows:
            if not r["diverged"] and r["test_accuracy"] is not None:
                groups[n].setdefault(r["experiment"], {})[r["seed"]] = r["test_accuracy"]
    names = [e for e in groups[next(iter(tables))] if all(e in g for g in groups.values())]
    if len(names) < 2:
        raise StudyError(f"the tables share {len(names)} experiment(s) with finished runs: a "
                         "ranking needs 2 or more in every table")
    analyses = {n: seed_analysis({e: g[e] for e in names}) for n, g in groups.items()}
    if any(a is None for a in analyses.values()):
        raise StudyError("a table has fewer than 2 seeds finished in every experiment")
    base = next(iter(tables))
    lines = [f"# The same experiments in {len(tables)} tables: " + " vs ".join(labels.values()),
             "", f"Built by `python -m tools.runs recipes {out} {' '.join(tables)}` "
             f"from the committed per-run tables: "
             + "; ".join(f"`{runs_path(n)}`: {recipes[n]} ({tables[n][0]['steps']} steps of "
                         f"batch {tables[n][0]['batch_size']}, {tables[n][0]['schedule']}, "
                         f"seeds {sorted({r['seed'] for r in tables[n]})})" for n in tables)
             + ". Test accuracy after precise BN; mean with its 95% t interval across seeds.",
             "", "| experiment | " + " | ".join(labels.values()) + " |",
             "|---|" + "---|" * len(tables)]
    for e in names:
        cells = []
        for n in tables:
            s = summarize(list(groups[n][e].values()))
            cells.append(f"{s['mean']:.4f} {interval(s['ci_low'], s['ci_high'])}")
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    diverged = {n: sum(r["diverged"] for r in rows) for n, rows in tables.items()}
    lines += ["", "Diverged runs (left out): " + "; ".join(f"{labels[n]}: {d}"
                                                            for n, d in diverged.items()) + "."]

    lines += ["", "Each recipe on its own (seed-blocked ANOVA; Tukey's HSD 95% intervals, in bold "
              "where they exclude 0):", "", "| pair | " + " | ".join(labels.values()) + " |",
              "|---|" + "---|" * len(tables)]
    calls = {n: {(t["a"], t["b"]): t for t in a["blocked"]["pairs"]} for n, a in analyses.items()}
    for pair in calls[base]:
        cells = []
        for n in tables:
            t = calls[n][pair]
            text = f"{t['diff']:+.4f} {interval(t['ci_low'], t['ci_high'])}"
            cells.append(f"**{text}**" if t["significant"] else text)
        lines.append(f"| {pair[0]} - {pair[1]} | " + " | ".join(cells) + " |")
    lines += ["", "Per recipe: " + "; ".join(
        f"{labels[n]}: F({a['blocked']['df'][0]}, {a['blocked']['df'][1]}) = "
        f"{a['blocked']['f']:.2f}, p = {a['blocked']['p']:.3g}, residual sd "
        f"{a['blocked']['residual_sd']:.4f}, Tukey detects {a['blocked']['mdd_tukey']:.4f} with "
        "80% power" for n, a in analyses.items()) + "."]

    runs = [{"initializer": e, "activation": labels[n], "seed": s, "value": v}
            for n, g in groups.items() for e in names for s, v in g[e].items()]
    two_way = factorial_analysis(runs, alpha)
    inter, sd, df = two_way["terms"]["interaction"], two_way["residual_sd"], two_way["df"]
    changed = len(calls[base]) * (len(tables) - 1)
    sds = [a["blocked"]["residual_sd"] for a in analyses.values()]
    caveat = ("" if max(sds) <= 2 * min(sds) else
              f" The recipes' residual sds differ {max(sds) / min(sds):.1f}-fold, which this F "
              "test assumes they do not; the intervals below use each recipe's own.")
    lines += ["", f"Recipe x experiment, seeds as blocks (statsmodels two-way ANOVA): "
              f"interaction F({inter['df'][0]}, {inter['df'][1]}) = {inter['f']:.2f}, "
              f"p = {inter['p']:.3g}; residual sd {sd:.4f} on {df} df.{caveat} Each gap under a "
              f"recipe minus the same gap under {labels[base]}, with a 95% t interval from the "
              "two recipes' own residual variances (Welch-Satterthwaite df), "
              f"Bonferroni-corrected for the {changed} comparisons:", ""]
    for n in list(tables)[1:]:
        # a gap's variance under one recipe: 2 MSE / seeds; the change's, the two summed
        v = [2 * a["blocked"]["residual_sd"] ** 2 / a["blocked"]["seeds"]
             for a in (analyses[n], analyses[base])]
        dfs = [analyses[n]["blocked"]["df"][1], analyses[base]["blocked"]["df"][1]]
        welch_df = sum(v) ** 2 / sum(x ** 2 / d for x, d in zip(v, dfs))
        half = stats.t.ppf(1 - alpha / 2 / changed, welch_df) * sum(v) ** 0.5
        for pair, t in calls[n].items():
            b = calls[base][pair]
            change = t["diff"] - b["diff"]
            if t["significant"] and b["significant"] and t["diff"] * b["diff"] < 0:
                word = "reversed"
            elif abs(change) <= half:
                word = "no change detected"
            else:
                word = "grew" if abs(t["diff"]) > abs(b["diff"]) else "shrank"
            lines.append(f"- {labels[n]}, {pair[0]} - {pair[1]}: {b['diff']:+.4f} -> "
                         f"{t['diff']:+.4f}, {word} (change {change:+.4f}, "
                         f"{interval(change - half, change + half)}).")
    return "\n".join(lines + ["", ranking_answer(calls, labels, inter, alpha)]) + "\n"


def ranking_answer(calls, labels, interaction, alpha):
    """Did the ranking hold across the recipes? A pair reverses when two recipes decide it
    (Tukey) in opposite directions; otherwise the recipes agree, or decide different pairs."""
    def decided(n):
        return {p: t["diff"] > 0 for p, t in calls[n].items() if t["significant"]}

    said = {n: decided(n) for n in calls}
    reversed_ = sorted({p for n in said for m in said for p in said[n]
                        if p in said[m] and said[n][p] != said[m][p]})
    test = (f"interaction F = {interaction['f']:.2f}, p = {interaction['p']:.3g}"
            + (": the experiments' differences depend on the recipe" if interaction["p"] < alpha
               else ": no evidence that the experiments' differences depend on the recipe"))
    if reversed_:
        return ("**Does the ranking hold? No: it reversed** on " + "; ".join(
            f"{a} vs {b} (" + ", ".join(f"{labels[n]} {calls[n][(a, b)]['diff']:+.4f}"
                                        for n in calls if (a, b) in said[n]) + ")"
            for a, b in reversed_) + f"; {test}.")
    if not any(said.values()):
        return f"**Does the ranking hold? No recipe separates any pair**; {test}."
    if all(s == next(iter(said.values())) for s in said.values()):
        return (f"**Does the ranking hold? Yes**: every recipe decides the same "
                f"{len(next(iter(said.values())))} pair(s) the same way; {test}.")
    only = [f"{a} {'>' if up else '<'} {b} under " + ", ".join(
        labels[n] for n in said if said[n].get((a, b)) == up)
        for (a, b), up in sorted({(p, u) for s in said.values() for p, u in s.items()})
        if not all(said[n].get((a, b)) == up for n in said)]
    return ("**Does the ranking hold? No decided pair reversed**, but not every recipe decides "
            "the same pairs: " + "; ".join(only) + f" (elsewhere undecided); {test}.")


def main():
    commands = {"export": None, "seeds": (seeds_markdown, SEEDS_MD),
                "factorial": (factorial_markdown, FACTORIAL_MD), "rates": None, "recipes": None}
    if len(sys.argv) < 3 or sys.argv[1] not in commands:
        raise StudyError("usage: python -m tools.runs export NAME | seeds NAME [NAME ...] | "
                         "factorial NAME [NAME ...] | rates NAME | recipes OUT BASE NAME [NAME ...]")
    if sys.argv[1] == "export":
        return export(sys.argv[2])
    if sys.argv[1] == "rates":
        rows = read_runs(sys.argv[2])
        write_text(RATES_MD, rates_markdown(rows, sys.argv[2:3]))
        return print(f"-> {RATES_MD}")
    if sys.argv[1] == "recipes":
        if len(sys.argv) < 5:
            raise StudyError("usage: python -m tools.runs recipes OUT BASE NAME [NAME ...]: "
                             "OUT names findings/OUT.md; BASE and each NAME a findings/runs table")
        out, names = sys.argv[2], sys.argv[3:]
        path = os.path.join("findings", f"{out}.md")
        write_text(path, recipes_markdown({n: pooled([n]) for n in names}, out))
        return print(f"-> {path}")
    build, path = commands[sys.argv[1]]
    names = sys.argv[2:]
    write_text(path, build(pooled(names), names))
    print(f"-> {path}")


if __name__ == "__main__":
    run_stage(main, tensorflow=False)
