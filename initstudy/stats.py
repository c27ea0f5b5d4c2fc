"""Statistics across seeds: the headline ANOVA / Tukey HSD / minimum detectable difference,
and Welch's t-tests with Holm's correction as a sensitivity check."""
import itertools
import math

import numpy as np
from scipy import stats


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
    """The headline analysis of one measure across experiments and seeds.

    groups: {experiment: {seed: value}}. One-way ANOVA (scipy) with Levene's check that
    pooling the variances is fair; the seed-blocked ANOVA (statsmodels' AnovaRM) when every
    experiment ran the same seeds, because a seed fixes the batch order and the standardized
    weight draws in every experiment; Tukey's HSD (scipy) for every pair, with simultaneous
    95% intervals; and the minimum detectable difference (MDD): the smallest true gap a
    two-sample t-test at these seeds finds with `power`, at `alpha` and after a Bonferroni
    correction for the number of pairs. None when a group has fewer than 2 values."""
    names = list(groups)
    samples = [np.asarray(list(groups[n].values()), float) for n in names]
    if len(samples) < 2 or min(len(s) for s in samples) < 2:
        return None
    from statsmodels.stats.power import TTestIndPower

    oneway = stats.f_oneway(*samples)
    df_within = sum(len(s) for s in samples) - len(samples)
    pooled_sd = math.sqrt(sum(((s - s.mean()) ** 2).sum() for s in samples) / df_within)
    tukey = stats.tukey_hsd(*samples)
    ci = tukey.confidence_interval(1 - alpha)
    pairs = [{"a": names[i], "b": names[j], "diff": float(samples[i].mean() - samples[j].mean()),
              "ci_low": float(ci.low[i, j]), "ci_high": float(ci.high[i, j]),
              "p_tukey": float(tukey.pvalue[i, j]),
              "significant": bool(tukey.pvalue[i, j] < alpha)}
             for i, j in itertools.combinations(range(len(names)), 2)]
    n = min(len(s) for s in samples)

    def mdd(a):
        return float(TTestIndPower().solve_power(nobs1=n, alpha=a, power=power)) * pooled_sd

    return {"experiments": names, "seeds_per_experiment": n, "alpha": alpha, "power": power,
            "anova_f": float(oneway.statistic), "anova_p": float(oneway.pvalue),
            "anova_df": [len(samples) - 1, df_within],
            "levene_p": float(stats.levene(*samples).pvalue),
            **blocked_anova(groups),
            "pooled_sd": pooled_sd, "mdd": mdd(alpha), "mdd_corrected": mdd(alpha / len(pairs)),
            "pairs": pairs}


def blocked_anova(groups):
    """F and p of the experiment effect with seeds as blocks (a repeated-measures ANOVA);
    None values unless every experiment ran the same seeds (2 or more)."""
    seeds = [sorted(g) for g in groups.values()]
    if any(s != seeds[0] for s in seeds) or len(seeds[0]) < 2:
        return {"blocked_f": None, "blocked_p": None, "blocked_df": None}
    import pandas as pd
    from statsmodels.stats.anova import AnovaRM

    table = pd.DataFrame([{"experiment": e, "seed": s, "value": v}
                          for e, g in groups.items() for s, v in g.items()])
    row = AnovaRM(table, "value", "seed", within=["experiment"]).fit().anova_table.iloc[0]
    return {"blocked_f": float(row["F Value"]), "blocked_p": float(row["Pr > F"]),
            "blocked_df": [int(row["Num DF"]), int(row["Den DF"])]}
