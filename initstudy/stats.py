"""Statistics across seeds: the headline seed-blocked ANOVA / Tukey HSD / minimum detectable
difference; the unblocked one-way analysis and Welch's t-tests with Holm's correction as
sensitivity checks. The splits' baselines (chance, majority class) and the noise limits an
accuracy is read against."""
import itertools
import math

import numpy as np
from scipy import stats

# an accuracy below max(chance, majority-class rate) + NOISE_Z binomial standard errors at its
# split's size is within noise of that baseline (2.58: the normal's 99.5% quantile)
NOISE_Z = 2.58


def summarize(values, confidence=0.95):
    """mean, sample std and the t-based confidence interval of the mean (None below 2 runs)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean()) if len(x) else None
    if len(x) < 2:
        return {"mean": mean, "std": None, "ci_low": None, "ci_high": None, "n": len(x)}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, len(x) - 1)) * std / math.sqrt(len(x))
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": len(x)}


def welch(a, b, confidence=0.95):
    """Difference of means a - b, its Welch-Satterthwaite confidence interval and p-value."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "ci_low": None, "ci_high": None, "p": None}
    if a.var() == 0 and b.var() == 0:  # constant samples: no evidence unless the means differ
        return {"diff": diff, "ci_low": diff, "ci_high": diff, "p": 1.0 if diff == 0 else 0.0}
    test = stats.ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(confidence)
    return {"diff": diff, "ci_low": float(ci.low), "ci_high": float(ci.high),
            "p": float(test.pvalue)}


def welch_from_summary(mean_a, std_a, n_a, mean_b, std_b, n_b, confidence=0.95):
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


def holm(p_values):
    """Holm-Bonferroni adjusted p-values (same order as given; None stays None)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted, running = [None] * len(p_values), 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (len(indexed) - rank) * p))
        adjusted[i] = running
    return adjusted


def pairwise(groups, alpha=0.05):
    """Welch's t-test for every pair of named samples, Holm-corrected across the pairs."""
    pairs = [(a, b, welch(groups[a], groups[b])) for a, b in itertools.combinations(groups, 2)]
    adjusted = holm([t["p"] for _, _, t in pairs])
    return [{"a": a, "b": b, **t, "p_holm": p,
             "significant": p is not None and p < alpha}
            for (a, b, t), p in zip(pairs, adjusted)]


def seed_analysis(groups, alpha=0.05, power=0.8):
    """The analysis of one measure across experiments and seeds; groups: {experiment: {seed:
    value}}. None below 2 experiments or 2 complete blocks.

    Headline ("blocked"): a seed fixes the batch order and the standardized weight draws in
    every experiment, so the design is a randomized complete block design with experiments as
    the treatments and seeds as the blocks. A block needs every experiment: a seed missing from
    any experiment (a diverged run) is dropped from it and listed in "dropped_blocks".
    Sensitivity check ("oneway"): the unblocked one-way ANOVA / Tukey-Kramer over every value,
    seeds ignored."""
    complete, dropped = complete_blocks(groups)
    if len(groups) < 2 or len(next(iter(complete.values()))) < 2:
        return None
    return {"experiments": list(groups), "alpha": alpha, "power": power,
            "dropped_blocks": dropped, "blocked": blocked_anova(complete, alpha, power),
            "oneway": oneway_anova(groups, alpha, power)}


def complete_blocks(groups):
    """(groups restricted to the seeds every experiment has, [{seed, missing_in}] for the
    seeds left out)."""
    seeds = sorted(set().union(*groups.values()))
    missing = {s: [e for e, g in groups.items() if s not in g] for s in seeds}
    kept = [s for s in seeds if not missing[s]]
    return ({e: {s: g[s] for s in kept} for e, g in groups.items()},
            [{"seed": s, "missing_in": m} for s, m in missing.items() if m])


def blocked_anova(groups, alpha, power):
    """The randomized complete block ANOVA (statsmodels: value ~ C(experiment) + C(seed)),
    groups {experiment: {seed: value}} with the same seeds in every experiment; Tukey's HSD
    for every pair from the residual mean square MSE on (k-1)(b-1) df: the simultaneous
    interval is diff +- q(1-alpha; k, df) sqrt(MSE / b); and the minimum detectable difference
    at the same MSE and df."""
    import pandas as pd
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    names = list(groups)
    k, b = len(names), len(groups[names[0]])
    table = pd.DataFrame([{"experiment": e, "seed": s, "value": v}
                          for e, g in groups.items() for s, v in g.items()])
    anova = anova_lm(ols("value ~ C(experiment) + C(seed)", table).fit())
    treatment, block, residual = (anova.loc[r] for r in ("C(experiment)", "C(seed)", "Residual"))
    df = (k - 1) * (b - 1)
    se = np.sqrt(residual["mean_sq"] / b)  # of an experiment's mean
    half = float(stats.studentized_range.ppf(1 - alpha, k, df) * se)
    means = {e: float(np.mean(list(g.values()))) for e, g in groups.items()}
    pairs = []
    for a, c in itertools.combinations(names, 2):
        diff = means[a] - means[c]
        p = float(stats.studentized_range.sf(abs(diff) / se, k, df))
        pairs.append({"a": a, "b": c, "diff": diff, "ci_low": diff - half,
                      "ci_high": diff + half, "p_tukey": p, "significant": p < alpha})
    se_diff = float(np.sqrt(2) * se)
    for pair in pairs:
        pair["power_tukey"] = tukey_power(pair["diff"], se_diff, k, df, alpha)
    return {"seeds": b, "f": float(treatment["F"]), "p": float(treatment["PR(>F)"]),
            "df": [k - 1, df], "block_f": float(block["F"]), "block_p": float(block["PR(>F)"]),
            "block_df": [b - 1, df], "residual_sd": float(np.sqrt(residual["mean_sq"])),
            "mdd": mdd(se_diff, df, alpha, power),
            "mdd_corrected": mdd(se_diff, df, alpha / len(pairs), power),
            "mdd_tukey": tukey_mdd(se_diff, k, df, alpha, power), "pairs": pairs}


def oneway_anova(groups, alpha, power):
    """The unblocked analysis: one-way ANOVA (scipy) with Levene's check that pooling the
    variances is fair, Tukey's HSD (Tukey-Kramer for unequal seeds; scipy) for every pair, and
    the minimum detectable difference at the pooled sd and the smallest group's size."""
    names = list(groups)
    samples = [np.asarray(list(groups[n].values()), float) for n in names]
    oneway = stats.f_oneway(*samples)
    df = sum(len(s) for s in samples) - len(samples)
    pooled_sd = math.sqrt(sum(((s - s.mean()) ** 2).sum() for s in samples) / df)
    tukey = stats.tukey_hsd(*samples)
    ci = tukey.confidence_interval(1 - alpha)
    pairs = [{"a": names[i], "b": names[j], "diff": float(samples[i].mean() - samples[j].mean()),
              "ci_low": float(ci.low[i, j]), "ci_high": float(ci.high[i, j]),
              "p_tukey": float(tukey.pvalue[i, j]),
              "significant": bool(tukey.pvalue[i, j] < alpha)}
             for i, j in itertools.combinations(range(len(names)), 2)]
    n = min(len(s) for s in samples)
    se_diff = pooled_sd * math.sqrt(2 / n)
    for pair in pairs:
        pair["power_tukey"] = tukey_power(pair["diff"], se_diff, len(samples), df, alpha)
    return {"runs": sum(len(s) for s in samples), "f": float(oneway.statistic),
            "p": float(oneway.pvalue), "df": [len(samples) - 1, df],
            "levene_p": float(stats.levene(*samples).pvalue), "pooled_sd": pooled_sd,
            "mdd": mdd(se_diff, df, alpha, power),
            "mdd_corrected": mdd(se_diff, df, alpha / len(pairs), power),
            "mdd_tukey": tukey_mdd(se_diff, len(samples), df, alpha, power), "pairs": pairs}


def mdd(se_diff, df, alpha, power):
    """Minimum detectable difference: the true difference d that a two-sided t-test with
    standard error se_diff on df degrees of freedom detects at `alpha` with `power`:
    P(t' > t(1 - alpha/2; df)) = power for t' noncentral t with noncentrality d / se_diff
    (the test's other tail adds under 1e-8 at such d and is left out)."""
    from scipy.optimize import brentq

    critical = stats.t.isf(alpha / 2, df)
    return se_diff * brentq(lambda nc: stats.nct.sf(critical, df, nc) - power, 0, 1000)


def tukey_power(gap, se_diff, groups, df, alpha=0.05):
    """The chance that Tukey's HSD over `groups` means declares one pair different when its
    true difference is `gap`: the pair's t = diff / se_diff must pass q(1 - alpha; groups, df)
    / sqrt(2), so the power is P(|t'| > that) for t' noncentral t with noncentrality
    gap / se_diff on df degrees of freedom (both tails; tests/test_stats.py checks it against
    simulated Tukey tests)."""
    critical = stats.studentized_range.isf(alpha, groups, df) / math.sqrt(2)
    nc = abs(gap) / se_diff
    return float(stats.nct.sf(critical, df, nc) + stats.nct.sf(critical, df, -nc))


def tukey_mdd(se_diff, groups, df, alpha=0.05, power=0.8):
    """The smallest true difference that Tukey's HSD detects with `power` (tukey_power)."""
    from scipy.optimize import brentq

    return se_diff * brentq(lambda nc: tukey_power(nc, 1.0, groups, df, alpha) - power, 0, 40)


def anova_power(effect_size, groups, per_group, alpha=0.05):
    """Power of the one-way ANOVA F test for Cohen's effect size f with `per_group` runs in
    each of `groups` groups: P(F' > F(1 - alpha)) for F' noncentral F with noncentrality
    f^2 * N (tests/test_stats.py reproduces Cohen's (1992) sample sizes with it)."""
    n = groups * per_group
    dfn, dfd = groups - 1, n - groups
    return float(stats.ncf.sf(stats.f.isf(alpha, dfn, dfd), dfn, dfd, effect_size ** 2 * n))


def noise_limit(rate, n):
    """An accuracy below this is within noise of `rate` on n images (binomial)."""
    return rate + NOISE_Z * math.sqrt(rate * (1 - rate) / n)


def baselines(manifest):
    """Per split: chance (1 / classes), the majority-class rate (largest class / split size),
    and the noise limit of the larger of the two at the split's size."""
    out = {}
    for split, v in manifest["splits"].items():
        chance = 1 / len(manifest["classes"])
        majority = max(v["per_class"].values()) / v["count"]
        out[split] = {"images": v["count"], "chance": chance, "majority": majority,
                      "noise_limit": noise_limit(max(chance, majority), v["count"])}
    return out


def inference_subset(manifest, images):
    """The class counts of the training images scored in inference mode every epoch, exactly
    as training draws them: the first `images` records of the train split (make_dataset's
    `limit`), which prepare stores class-interleaved (sources.split_validation: one image of each
    class in turn, in the classes' order, a class that has run out skipped). {class: count}."""
    total = manifest["splits"]["train"]["per_class"]
    counts = {c: 0 for c in manifest["classes"]}
    left = min(images, sum(total.values()))
    while left:
        active = [c for c in counts if counts[c] < total[c]]
        rounds = min(left // len(active), min(total[c] - counts[c] for c in active))
        if not rounds:  # the last, partial round: the first `left` classes still in it
            for c in active[:left]:
                counts[c] += 1
            break
        for c in active:
            counts[c] += rounds
        left -= rounds * len(active)
    return counts


def inference_baseline(manifest, images):
    """baselines()' numbers for the training subset scored in inference mode: its own
    majority-class rate (largest class in the subset / subset size), not the whole split's."""
    counts = inference_subset(manifest, images)
    n = sum(counts.values())
    chance, majority = 1 / len(manifest["classes"]), max(counts.values()) / n
    return {"images": n, "per_class": counts, "chance": chance, "majority": majority,
            "noise_limit": noise_limit(max(chance, majority), n)}


def accuracy_limits(manifest, inference_images):
    """The noise limit of each accuracy the results table shows, on the images it is scored on
    (train accuracy in inference mode: the first `inference_images` training images, with
    their own class counts)."""
    base = baselines(manifest)
    return {"train_accuracy": base["train"]["noise_limit"],
            "inference_accuracy": inference_baseline(manifest, inference_images)["noise_limit"],
            "val_accuracy": base["validation"]["noise_limit"],
            "test_accuracy": base["test"]["noise_limit"],
            "test_accuracy_raw": base["test"]["noise_limit"]}


def factorial_analysis(runs, alpha=0.05):
    """The initializer x activation factorial with seeds as blocks; runs: [{initializer,
    activation, seed, value}], every cell on the same seeds. The two-way ANOVA with the
    interaction term and the seed as a block (statsmodels, value ~ C(initializer) *
    C(activation) + C(seed)), each factor's F and p, and Tukey's HSD between the initializers
    within each activation on the same residual variance: does the best initializer change
    with the activation?"""
    import pandas as pd
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    table = pd.DataFrame(runs)
    fit = ols("value ~ C(initializer) * C(activation) + C(seed)", table).fit()
    anova = anova_lm(fit, typ=2)
    residual = anova.loc["Residual"]
    sd, df = float(np.sqrt(residual["sum_sq"] / residual["df"])), int(residual["df"])
    terms = {name: {"f": float(anova.loc[row, "F"]), "p": float(anova.loc[row, "PR(>F)"]),
                    "df": [int(anova.loc[row, "df"]), df]}
             for name, row in (("initializer", "C(initializer)"),
                               ("activation", "C(activation)"),
                               ("interaction", "C(initializer):C(activation)"),
                               ("seed", "C(seed)"))}
    cells = table.groupby(["activation", "initializer"])["value"]
    means, counts = cells.mean(), cells.count()
    within = {}
    for activation in table["activation"].unique():
        names = list(means[activation].index)
        b = int(counts[activation].min())
        se = sd / math.sqrt(b)  # of a cell's mean
        q = float(stats.studentized_range.ppf(1 - alpha, len(names), df))
        pairs = []
        for a, c in itertools.combinations(names, 2):
            diff = float(means[activation][a] - means[activation][c])
            p = float(stats.studentized_range.sf(abs(diff) / se, len(names), df))
            pairs.append({"a": a, "b": c, "diff": diff, "ci_low": diff - q * se,
                          "ci_high": diff + q * se, "p_tukey": p, "significant": p < alpha})
        within[activation] = {"means": {n: float(means[activation][n]) for n in names},
                              "pairs": pairs,
                              "mdd_tukey": tukey_mdd(math.sqrt(2) * se, len(names), df, alpha)}
    return {"alpha": alpha, "residual_sd": sd, "df": df, "terms": terms, "within": within}
