"""Numbers as the study writes them: in the report's tables (fmt, interval), in the report
JSON (rounded, by the PRECISION rule) and in git-tracked metrics (significant)."""
import math

# report/summary.json and history.json: rounded so that the files are byte-stable
SIGNIFICANT = ("f", "p", "block_f", "block_p", "levene_p", "p_tukey", "p_holm", "learning_rate")
PRECISION = ("Numbers in report/summary.json and report/history.json: F statistics, p-values "
             "and learning rates to 4 significant digits, every other number (accuracies, "
             "losses and what is on their scale: differences, intervals, sds, minimum "
             "detectable differences, baselines) to 4 decimals; an undefined number as null.")


def fmt(x, spec=".4f"):
    return "-" if x is None else format(x, spec)


def interval(lo, hi):
    return "-" if lo is None else f"[{lo:.4f}, {hi:.4f}]"


def rounded(obj, key=None):
    """obj (JSON-like) with every float rounded by the PRECISION rule: 4 significant digits
    under a key in SIGNIFICANT, else 4 decimals; non-finite floats become None, -0.0 0.0."""
    if isinstance(obj, dict):
        return {k: rounded(v, k) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v, key) for v in obj]
    if not isinstance(obj, float):
        return obj
    if not math.isfinite(obj):
        return None
    return (float(f"{obj:.4g}") if key in SIGNIFICANT else round(obj, 4)) + 0.0


def significant(summary, digits=4):
    """Headline numbers to `digits` significant digits: what git-tracked metrics keep."""
    return {k: None if v is None else float(f"{v:.{digits}g}") for k, v in summary.items()}
