"""Statistics across seeds: mean, std, 95% t intervals, Welch's t-tests with Holm's correction."""
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
