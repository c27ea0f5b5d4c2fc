import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from initstudy.stats import holm, mdd, pairwise, seed_analysis, summarize, welch

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
    result = seed_analysis({k: by_seed(v) for k, v in NIST.items()})["oneway"]
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
    oneway = result["oneway"]  # the unblocked check uses every value
    assert oneway["f"] == pytest.approx(7.121, abs=1e-3)
    assert oneway["p"] == pytest.approx(0.000281, abs=1e-6)
    assert oneway["df"] == [4, 34] and oneway["runs"] == 39
    # the blocked analysis keeps the 6 seeds every site has, and names the ones it drops
    assert result["blocked"]["seeds"] == 6 and result["blocked"]["df"] == [4, 20]
    assert result["dropped_blocks"] == [
        {"seed": 6, "missing_in": ["site4"]}, {"seed": 7, "missing_in": ["site2", "site4"]},
        {"seed": 8, "missing_in": ["site1", "site2", "site3", "site4"]},
        {"seed": 9, "missing_in": ["site1", "site2", "site3", "site4"]}]


def test_blocked_anova_of_two_groups_is_the_paired_t_test_squared():
    a, b = [0.50, 0.47, 0.52, 0.46], [0.48, 0.44, 0.51, 0.43]
    result = seed_analysis({"a": by_seed(a), "b": by_seed(b)})
    paired = scipy_stats.ttest_rel(a, b)
    assert result["blocked"]["f"] == pytest.approx(paired.statistic ** 2)
    assert result["blocked"]["p"] == pytest.approx(paired.pvalue)
    # with two treatments Tukey's HSD is the paired t-test too
    assert result["blocked"]["pairs"][0]["p_tukey"] == pytest.approx(paired.pvalue)
    # the shared seed effect is noise to the one-way test, so only blocking finds the gap
    assert result["blocked"]["p"] < 0.05 < result["oneway"]["p"]


def test_minimum_detectable_difference_follows_cohens_table():
    # Cohen (1988): 64 per group detect d = 0.5 with 80% power at alpha 0.05, two-sided
    rng = np.random.default_rng(0)
    groups = {k: by_seed(rng.normal(0, 1, 64)) for k in "ab"}
    result = seed_analysis(groups)["oneway"]
    assert result["mdd"] / result["pooled_sd"] == pytest.approx(0.5, abs=0.005)
    assert result["mdd_corrected"] == pytest.approx(result["mdd"])  # one pair: no correction
    three = seed_analysis({k: by_seed(rng.normal(0, 1, 3)) for k in "abcd"})["oneway"]
    assert three["mdd_corrected"] > three["mdd"] > 2.5 * three["pooled_sd"]


def test_minimum_detectable_difference_by_its_definition():
    # many df: the normal approximation, (z(0.975) + z(0.8)) standard errors = 2.8016
    assert mdd(1.0, 10 ** 6, 0.05, 0.8) == pytest.approx(1.95996 + 0.84162, abs=1e-4)
    # few df: at d = mdd a two-sided t-test rejects with probability 0.8 (noncentral t)
    d = mdd(0.02, 6, 0.05, 0.8)
    critical = scipy_stats.t.ppf(0.975, 6)
    power = scipy_stats.nct.sf(critical, 6, d / 0.02) + scipy_stats.nct.cdf(-critical, 6, d / 0.02)
    assert power == pytest.approx(0.8, abs=1e-6)


def test_no_analysis_without_two_seeds_per_experiment():
    assert seed_analysis({"a": {0: 0.5}, "b": {0: 0.4}}) is None
    # two seeds each, but only seed 0 in both: one complete block is no estimate of noise
    assert seed_analysis({"a": {0: 0.5, 1: 0.6}, "b": {0: 0.4, 2: 0.3}}) is None


# Randomized complete block design: Montgomery, Design and Analysis of Experiments, 8th ed.
# (Wiley, 2013), Example 4.1, the vascular graft experiment (Table 4.3): yield of 4 extrusion
# pressures (the treatments) on 6 batches of resin (the blocks).
GRAFT = {"8500": [90.3, 89.2, 98.2, 93.9, 87.4, 97.9],
         "8700": [92.5, 89.5, 90.6, 94.7, 87.0, 95.8],
         "8900": [85.5, 90.8, 89.6, 86.2, 88.0, 93.4],
         "9100": [82.5, 89.5, 85.6, 87.4, 78.9, 90.7]}


def test_blocked_anova_matches_montgomerys_vascular_graft_example():
    """Montgomery, Design and Analysis of Experiments, 8th ed., Example 4.1, its ANOVA
    (Table 4.4): treatments SS 178.17 on 3 df, MS 59.39, F0 = 8.11, P = 0.0019; blocks SS
    192.25 on 5 df, MS 38.45; error SS 109.89 on 15 df, MSE 7.33. Tukey's test in an RCBD is
    the book's Chapter 3 test with n -> b and the error df (a-1)(b-1):
    T0.05 = q0.05(4, 15) sqrt(MSE / b) = 4.08 sqrt(7.33 / 6) = 4.51 (q from the book's
    appendix table of the studentized range), so of the treatment means 92.82, 91.68, 88.92,
    85.77 only 8500 vs 9100 (7.05) and 8700 vs 9100 (5.92) differ."""
    result = seed_analysis({k: by_seed(v) for k, v in GRAFT.items()})
    b = result["blocked"]
    assert b["f"] == pytest.approx(8.11, abs=0.005) and b["p"] == pytest.approx(0.0019, abs=5e-5)
    assert b["df"] == [3, 15] and b["block_df"] == [5, 15] and b["seeds"] == 6
    assert b["residual_sd"] ** 2 == pytest.approx(7.33, abs=0.005)
    assert b["block_f"] == pytest.approx(38.45 / 7.33, abs=0.01)
    pairs = {(t["a"], t["b"]): t for t in b["pairs"]}
    assert pairs["8500", "9100"]["diff"] == pytest.approx(7.05)
    assert pairs["8700", "9100"]["diff"] == pytest.approx(5.9167, abs=1e-4)
    for t in b["pairs"]:
        assert (t["ci_high"] - t["ci_low"]) / 2 == pytest.approx(4.51, abs=0.01)
    assert {k for k, t in pairs.items() if t["significant"]} == {("8500", "9100"),
                                                                 ("8700", "9100")}
    assert result["dropped_blocks"] == []
    # the sensitivity check ignores the batches: their variation joins the error
    # (SS 109.89 + 192.25 = 302.14 on 20 df, MS 15.11: F = 59.39 / 15.11 = 3.93)
    o = result["oneway"]
    assert o["df"] == [3, 20] and o["f"] == pytest.approx(3.93, abs=0.005)
    assert o["pooled_sd"] ** 2 == pytest.approx(15.11, abs=0.005)
    assert o["mdd"] > b["mdd"]  # blocking removes the batch noise: smaller gaps detectable


def test_a_block_with_a_missing_run_is_dropped_and_named():
    groups = {k: by_seed(v) for k, v in GRAFT.items()}
    del groups["8900"][2]  # a run that diverged: batch 3 is no longer a complete block
    result = seed_analysis(groups)
    assert result["dropped_blocks"] == [{"seed": 2, "missing_in": ["8900"]}]
    five = seed_analysis({k: {s: v for s, v in g.items() if s != 2} for k, g in groups.items()})
    assert result["blocked"] == five["blocked"]  # the same as the five complete batches
    assert result["blocked"]["df"] == [3, 12]
    assert result["oneway"]["runs"] == 23  # the unblocked check keeps every run


def test_anova_power_reproduces_cohens_published_sample_sizes():
    """Cohen (1992), "A power primer", Table 2: one-way ANOVA with 4 groups at alpha 0.05
    needs 274, 45 and 18 per group for power 0.80 at f = 0.10, 0.25, 0.40. His tables come
    from approximations and give power to two decimals: at his sizes the exact power is 0.80
    to within 0.005, and one run fewer per group falls below it."""
    from initstudy.stats import anova_power

    for f, n in [(0.10, 274), (0.25, 45), (0.40, 18)]:
        assert anova_power(f, 4, n) == pytest.approx(0.80, abs=0.005)
        assert anova_power(f, 4, n - 1) < anova_power(f, 4, n)
    assert anova_power(0.25, 4, 44) < 0.795


@pytest.mark.parametrize("gap", [0.0, 1.0, 2.0])
def test_tukey_power_matches_simulated_tukey_tests(gap):
    """tukey_power against simulated Tukey tests: 4 groups of 3 (df 8), one pair `gap` sd
    apart, 20,000 data sets (the rate's standard error <= 0.004). The decision rule is
    checked against scipy's own Tukey HSD on the first 50 data sets."""
    from initstudy.stats import tukey_power

    rng = np.random.default_rng(0)
    groups = rng.normal(size=(20000, 4, 3))
    groups[:, 0] += gap
    means = groups.mean(axis=2)
    mse = ((groups - means[..., None]) ** 2).sum(axis=(1, 2)) / 8
    q = np.abs(means[:, 0] - means[:, 1]) / np.sqrt(mse / 3)
    rejected = q > scipy_stats.studentized_range.ppf(0.95, 4, 8)
    library = [scipy_stats.tukey_hsd(*g).pvalue[0, 1] < 0.05 for g in groups[:50]]
    assert list(rejected[:50]) == library
    want = tukey_power(gap, np.sqrt(2 / 3), 4, 8)
    assert rejected.mean() == pytest.approx(want, abs=0.015)
    if gap == 0:
        assert want < 0.05  # one pair of six: below the familywise alpha


def test_tukey_needs_a_larger_gap_than_one_t_test():
    """The study's case (k = 4, 3 seeds as blocks, df 6): the pairwise t-test's detectable
    gap understates what Tukey, which the decisions use, can detect."""
    import math

    from initstudy.stats import mdd, tukey_mdd, tukey_power

    se_diff = 0.0118 * math.sqrt(2 / 3)
    t_gap, q_gap = mdd(se_diff, 6, 0.05, 0.8), tukey_mdd(se_diff, 4, 6, 0.05, 0.8)
    assert q_gap > 1.2 * t_gap
    assert tukey_power(q_gap, se_diff, 4, 6) == pytest.approx(0.8, abs=1e-6)
    assert 0.4 < tukey_power(t_gap, se_diff, 4, 6) < 0.6  # the t-test's gap: about a coin flip


@pytest.mark.parametrize("interaction", [False, True])
def test_factorial_analysis_finds_an_interaction_only_where_there_is_one(interaction):
    """4 initializers x 2 activations x 3 seeds as blocks. Additive: each initializer is 2
    points apart at both activations. With an interaction: the order reverses at SELU."""
    from initstudy.stats import factorial_analysis

    rng = np.random.default_rng(3)
    inits = ["random_normal", "glorot_normal", "he_normal", "lecun_normal"]
    runs = []
    for a, activation in enumerate(["relu6", "selu"]):
        for i, init in enumerate(inits):
            effect = 0.02 * (3 - i if interaction and a else i)
            for seed in range(3):
                runs.append({"initializer": init, "activation": activation, "seed": seed,
                             "value": 0.5 + effect + 0.01 * seed + rng.normal(0, 0.002)})
    result = factorial_analysis(runs)
    assert result["df"] == 24 - 8 - 2  # runs - cells - (seeds - 1)
    p = result["terms"]["interaction"]["p"]
    assert (p < 0.001) if interaction else (p > 0.01)
    assert result["terms"]["seed"]["p"] < 0.001  # the shared per-seed shift is a block effect
    best = {act: max(w["means"], key=w["means"].get) for act, w in result["within"].items()}
    assert best == ({"relu6": "lecun_normal", "selu": "random_normal"} if interaction
                    else {"relu6": "lecun_normal", "selu": "lecun_normal"})
    pair = next(t for t in result["within"]["relu6"]["pairs"]
                if {t["a"], t["b"]} == {"random_normal", "lecun_normal"})
    assert pair["significant"] and abs(pair["diff"]) == pytest.approx(0.06, abs=0.01)
