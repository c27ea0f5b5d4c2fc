import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from initstudy.stats import holm, pairwise, seed_analysis, summarize, welch

# Welch's t-test, example 1 of the Wikipedia article (t = -2.46, df = 24.99, p = 0.021).
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_summary_of_a_hand_computed_sample():
    s = summarize([1, 2, 3, 4, 5])
    assert s["mean"] == 3 and s["n"] == 5
    assert s["std"] == pytest.approx(math.sqrt(2.5))
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4 df) from a t table
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((3 - half, 3 + half), abs=1e-5)


def test_one_run_has_no_interval():
    assert summarize([0.7]) == {"mean": 0.7, "std": None, "ci_low": None, "ci_high": None, "n": 1}


def test_welch_matches_the_textbook_example():
    t = welch(A1, A2)
    diff = np.mean(A1) - np.mean(A2)
    assert t["diff"] == pytest.approx(diff)
    assert t["p"] == pytest.approx(0.021, abs=0.001)
    # the interval from the example's t = -2.46 and df = 24.99
    half = scipy_stats.t.ppf(0.975, 24.99) * diff / -2.46  # t quantile x standard error
    assert (t["ci_low"], t["ci_high"]) == pytest.approx((diff - half, diff + half), rel=0.01)


def test_holm_correction_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.06, 0.04*1) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # a missing p-value (one seed) is skipped, and adjusted values never decrease
    assert holm([0.5, None, 0.9]) == [1.0, None, 1.0]


def test_pairwise_flags_only_corrected_significance():
    groups = {"a": A1, "b": A2, "c": [x + 0.01 for x in A1]}
    tests = {(t["a"], t["b"]): t for t in pairwise(groups)}
    assert len(tests) == 3
    # a vs b alone has p = 0.021 < 0.05, but Holm over three pairs multiplies it (2 or 3 x)
    assert tests["a", "b"]["p"] < 0.05 and tests["a", "b"]["p_holm"] > 0.05
    assert not tests["a", "b"]["significant"] and not tests["a", "c"]["significant"]


# Published worked examples for the headline analysis.
# Tukey's HSD: the NIST/SEMATECH e-Handbook's headache-relief data (section 7.4.7.1, as in
# scipy's documentation): p = 0.014 (0 vs 1), 0.980 (0 vs 2), 0.020 (1 vs 2).
NIST = {"brand0": [24.5, 23.5, 26.4, 27.1, 29.9], "brand1": [28.4, 34.2, 29.5, 32.2, 30.1],
        "brand2": [26.1, 28.3, 24.3, 26.2, 27.8]}
# One-way ANOVA: McDonald's mussel shell lengths (Handbook of Biological Statistics):
# F = 7.12, p = 0.000281.
MUSSELS = [[0.0571, 0.0813, 0.0831, 0.0976, 0.0817, 0.0859, 0.0735, 0.0659, 0.0923, 0.0836],
           [0.0873, 0.0662, 0.0672, 0.0819, 0.0749, 0.0649, 0.0835, 0.0725],
           [0.0974, 0.1352, 0.0817, 0.1016, 0.0968, 0.1064, 0.105],
           [0.1033, 0.0915, 0.0781, 0.0685, 0.0677, 0.0697, 0.0764, 0.0689],
           [0.0703, 0.1026, 0.0956, 0.0973, 0.1039, 0.1045]]


def by_seed(values):
    return dict(enumerate(values))


def test_tukey_hsd_matches_the_nist_worked_example():
    result = seed_analysis({k: by_seed(v) for k, v in NIST.items()})
    p = {(t["a"], t["b"]): t["p_tukey"] for t in result["pairs"]}
    assert p[("brand0", "brand1")] == pytest.approx(0.014, abs=5e-4)
    assert p[("brand0", "brand2")] == pytest.approx(0.980, abs=5e-4)
    assert p[("brand1", "brand2")] == pytest.approx(0.020, abs=5e-4)
    pair01 = result["pairs"][0]
    assert (pair01["diff"], pair01["ci_low"], pair01["ci_high"]) == \
        pytest.approx((-4.6, -8.249, -0.951), abs=5e-4)
    assert [t["significant"] for t in result["pairs"]] == [True, False, True]


def test_one_way_anova_matches_the_mussel_worked_example():
    result = seed_analysis({f"site{i}": by_seed(v) for i, v in enumerate(MUSSELS)})
    assert result["anova_f"] == pytest.approx(7.121, abs=1e-3)
    assert result["anova_p"] == pytest.approx(0.000281, abs=1e-6)
    assert result["anova_df"] == [4, 34]
    assert result["blocked_f"] is None  # unequal seeds: no blocked analysis


def test_blocked_anova_of_two_groups_is_the_paired_t_test_squared():
    a, b = [0.50, 0.47, 0.52, 0.46], [0.48, 0.44, 0.51, 0.43]
    result = seed_analysis({"a": by_seed(a), "b": by_seed(b)})
    paired = scipy_stats.ttest_rel(a, b)
    assert result["blocked_f"] == pytest.approx(paired.statistic ** 2)
    assert result["blocked_p"] == pytest.approx(paired.pvalue)
    # the shared seed effect is noise to the one-way test, so only blocking finds the gap
    assert result["blocked_p"] < 0.05 < result["anova_p"]


def test_minimum_detectable_difference_follows_cohens_table():
    # Cohen (1988): 64 per group detect d = 0.5 with 80% power at alpha 0.05, two-sided
    rng = np.random.default_rng(0)
    groups = {k: by_seed(rng.normal(0, 1, 64)) for k in "ab"}
    result = seed_analysis(groups)
    assert result["mdd"] / result["pooled_sd"] == pytest.approx(0.5, abs=0.005)
    assert result["mdd_corrected"] == pytest.approx(result["mdd"])  # one pair: no correction
    three = seed_analysis({k: by_seed(rng.normal(0, 1, 3)) for k in "abcd"})
    assert three["mdd_corrected"] > three["mdd"] > 2.5 * three["pooled_sd"]


def test_no_analysis_without_two_seeds_per_experiment():
    assert seed_analysis({"a": {0: 0.5}, "b": {0: 0.4}}) is None
