"""report: the seed's table for our runs with 95% intervals across seeds, pairwise tests,
the seed's published numbers beside ours, per-epoch curves and plots."""
import os

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from initstudy.files import atomic, read_json, write_json, write_text  # noqa: E402
from initstudy.params import fan_name, load_params, run_stage  # noqa: E402
from initstudy.stats import pairwise  # noqa: E402

OUT = "report"
# The seed's published final-epoch numbers: CIFAR-10 from tfds at 224x224, one run each,
# 5 or 10 epochs (the post says both), batch size and learning rate not stated.
SEED_TABLE = {
    "random_normal": ("random_normal", "relu6", 0.8434, 0.7788, 0.7016),
    "glorot_normal": ("glorot_normal", "relu6", 0.8459, 0.8206, 0.5632),
    "he_normal": ("he_normal", "relu6", 0.8408, 0.7348, 0.8109),
    "lecun_normal": ("lecun_normal", "selu", 0.7345, 0.6193, 1.1013),
}
CURVE_KEYS = ("accuracy", "loss", "val_accuracy", "val_loss")
TIMINGS = ("train_seconds", "images_per_second")  # not in git-tracked files: never repeat
# The seed's closing table: which initializer goes with which activation.
SEED_ADVICE = {"sigmoid": "glorot_normal", "tanh": "glorot_normal", "relu": "he_normal",
               "relu6": "he_normal", "selu": "lecun_normal"}
GRID = os.path.join("grid", "cells.tsv")


def load_experiments(params):
    experiments = []
    for name, exp in params["experiments"].items():
        runs = read_json(os.path.join("eval", name, "runs.json"))
        histories = [read_json(os.path.join("models", name, f"seed{r['seed']}", "history.json"))
                     for r in runs if not r["diverged"]]
        experiments.append({"experiment": name, **exp,
                            **read_json(os.path.join("metrics", f"{name}.json")),
                            "runs": runs, "curve": mean_curve(histories)})
    return experiments


def mean_curve(histories):
    """Per-epoch mean over the runs that did not diverge."""
    if not histories:
        return []
    epochs = min(len(h["history"]) for h in histories)
    return [{"epoch": e + 1, **{k: float(np.mean([h["history"][e][k] for h in histories]))
                                for k in CURVE_KEYS}} for e in range(epochs)]


def fmt(x, spec=".4f"):
    return "-" if x is None else format(x, spec)


def interval(lo, hi):
    return "-" if lo is None else f"[{lo:.4f}, {hi:.4f}]"


def setting_line(params):
    p, m, t = params["prepare"], params["model"], params["train"]
    source = f"image folder {os.path.basename(p['folder'])}" if p["source"] == "folder" \
        else f"tfds {p['tfds_name']}"
    subset = f", first {p['max_per_class']} images per class" if p["max_per_class"] else ""
    return (f"{source}{subset}, {m['image_size']}x{m['image_size']}, {t['epochs']} epochs, "
            f"batch {t['batch_size']}, plain SGD lr {t['learning_rate']}, seeds {t['seeds']}, "
            f"batch_norm {m['batch_norm']}, depthwise_fan {m['depthwise_fan']}")


def verdicts(tests, seeds):
    if seeds < 2:
        return ["With one seed per experiment there is no estimate of run-to-run noise, so no "
                "difference between these experiments can be called real; set `train.seeds` "
                "to 3 or more."]
    lines = []
    for t in tests:
        if t["p_holm"] is None:
            continue
        better, worse = (t["a"], t["b"]) if t["diff"] > 0 else (t["b"], t["a"])
        if t["significant"]:
            lines.append(f"- **{better}** beats {worse} by {abs(t['diff']):.4f} test accuracy "
                         f"(95% CI of {t['a']} - {t['b']}: {interval(t['ci_low'], t['ci_high'])}, "
                         f"Holm-adjusted p = {t['p_holm']:.3g}): a real difference at these seeds.")
        else:
            lines.append(f"- {t['a']} vs {t['b']}: {t['diff']:+.4f} "
                         f"(95% CI {interval(t['ci_low'], t['ci_high'])}, Holm-adjusted "
                         f"p = {t['p_holm']:.3g}): not distinguishable from run-to-run noise.")
    return lines


def markdown(params, experiments, tests):
    seeds = len(params["train"]["seeds"])
    lines = ["# Weight-initialization study: results", "",
             f"Ours: {setting_line(params)}. Validation = the test split, as in the seed. "
             f"Mean over {seeds} seed(s); 95% t-interval of the mean.", "",
             "| experiment | initializer | activation | train acc | val acc | val acc 95% CI "
             "| val loss | val loss 95% CI | seeds | diverged |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in experiments:
        lines.append(
            f"| {e['experiment']} | {e['initializer']} | {e['activation']} | "
            f"{fmt(e['train_accuracy'])} | {fmt(e['test_accuracy'])} | "
            f"{interval(e['test_accuracy_ci95_low'], e['test_accuracy_ci95_high'])} | "
            f"{fmt(e['test_loss'])} | {interval(e['test_loss_ci95_low'], e['test_loss_ci95_high'])} "
            f"| {e['seeds']} | {e['diverged']} |")
    for e in experiments:
        bad = [r for r in e["runs"] if r["diverged"]]
        if bad:
            lines.append("")
            where = ", ".join(f"{r['seed']}/{r['diverged_epoch']}" for r in bad)
            lines.append(f"**{e['experiment']}: {len(bad)} of {len(e['runs'])} run(s) diverged** "
                         f"(loss not finite; seed/epoch: {where}); "
                         "left out of the means, intervals, tests and curves.")
    lines += ["", "## At initialization (step 0, one batch, before any training)", "",
              "| experiment | last/first signal std | first/last gradient std | "
              "min signal std | dead units (ReLU family) |", "|---|---|---|---|---|"]
    for e in experiments:
        h = e["step0_headline"]
        lines.append(f"| {e['experiment']} | {fmt(h['signal_ratio'], '.3g')} | "
                     f"{fmt(h['gradient_ratio'], '.3g')} | {fmt(h['min_signal_std'], '.3g')} | "
                     f"{fmt(h['dead_units'], '.3f')} |")
    lines += ["", "## Which differences are real",
              "", "Welch's t-test on test accuracy across seeds for every pair, p-values "
              "Holm-corrected for the number of pairs, significant at 0.05.", ""]
    lines += verdicts(tests, seeds)
    if seeds >= 2:
        lines += ["", "| a | b | a - b | 95% CI | p (Welch) | p (Holm) | significant |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {t['a']} | {t['b']} | {t['diff']:+.4f} | {interval(t['ci_low'], t['ci_high'])}"
                  f" | {fmt(t['p'], '.3g')} | {fmt(t['p_holm'], '.3g')} | "
                  f"{'yes' if t['significant'] else 'no'} |" for t in tests]
    lines += ["", "## The seed's published numbers, for comparison", "",
              "CIFAR-10 from tfds (genuine, not a JPEG re-encode), 224x224, 5 or 10 epochs "
              "(the post says both), one run each, batch size and learning rate not stated. "
              "Where our settings above differ, the numbers are not comparable one to one.", "",
              "| experiment | initializer | activation | train acc | val acc | val loss |",
              "|---|---|---|---|---|---|"]
    for name, (init, act, tr, va, vl) in SEED_TABLE.items():
        lines.append(f"| {name} | {init} | {act} | {tr:.4f} | {va:.4f} | {vl:.4f} |")
    return "\n".join(lines) + "\n"


def save(fig, path):
    fig.tight_layout()
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def label(e):
    return e["experiment"] + (f" ({e['diverged']} diverged run(s) left out)" if e["diverged"] else "")


def plot_curves(experiments, key, ylabel, path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, e in enumerate(experiments):
        epochs = [h["epoch"] for h in e["curve"]]
        ax.plot(epochs, [h[key] for h in e["curve"]], "--", color=f"C{i}", alpha=0.6)
        ax.plot(epochs, [h["val_" + key] for h in e["curve"]], "-o", color=f"C{i}", label=label(e))
    ax.set(xlabel="epoch", ylabel=ylabel, title=f"{ylabel}: test (solid) and train (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)


def plot_test_accuracy(experiments, path):
    fig, ax = plt.subplots(figsize=(7, 4))
    names = [e["experiment"] for e in experiments]
    means = [e["test_accuracy"] or 0 for e in experiments]
    errors = [[m - (e["test_accuracy_ci95_low"] or m) for m, e in zip(means, experiments)],
              [(e["test_accuracy_ci95_high"] or m) - m for m, e in zip(means, experiments)]]
    bars = ax.bar(names, means, yerr=errors, capsize=6,
                  color=[f"C{i}" for i in range(len(experiments))])
    ax.bar_label(bars, labels=["diverged" if e["test_accuracy"] is None else
                               f"{e['test_accuracy']:.3f}" for e in experiments], padding=8)
    ax.set(ylabel="final test accuracy (mean, 95% CI)", ylim=(0, 1))
    save(fig, path)


def read_tsv(path):
    with open(path) as f:
        header, *rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]

    def value(v):
        try:
            return float(v)
        except ValueError:
            return None if v == "" else v
    return [dict(zip(header, map(value, row))) for row in rows]


def plot_step0(experiments, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, e in enumerate(experiments):
        rows = e["step0"]
        depth = [r["depth"] for r in rows]
        axes[0].plot(depth, [r["signal_std"] for r in rows], "-", color=f"C{i}",
                     label=f"{e['experiment']} ({e['initializer']} + {e['activation']})")
        axes[1].plot(depth, [r["grad_out_std"] for r in rows], "-", color=f"C{i}")
    axes[0].set(title="signal std after each conv (after BN and activation where present)",
                ylabel="std")
    axes[1].set(title="std of d loss / d conv output", ylabel="std")
    for ax in axes:
        ax.set(xlabel="conv layer (depth order)", yscale="log")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    save(fig, path)


def plot_kernel_std(experiments, fan, path):
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, e in enumerate(experiments):
        rows = e["step0"]
        ax.plot([r["depth"] for r in rows], [r["kernel_std_formula"] for r in rows], "-",
                color=f"C{i}", alpha=0.5)
        for kind, marker in (("conv", "o"), ("depthwise", "^")):
            pts = [r for r in rows if r["kind"] == kind]
            ax.plot([r["depth"] for r in pts], [r["kernel_std"] for r in pts], marker,
                    color=f"C{i}", ms=4, ls="none",
                    label=f"{e['experiment']}" if kind == "conv" else None)
        dw = [r for r in rows if r["kind"] == "depthwise"]
        ax.plot([r["depth"] for r in dw], [r["kernel_std_true_fan"] for r in dw], "x",
                color=f"C{i}", ms=6, ls="none")
    ax.set(yscale="log", xlabel="conv layer (depth order)", ylabel="kernel std",
           title=f"kernel std: measured (o conv, ^ depthwise), formula with depthwise_fan={fan} "
                 "(line), true-fan formula for depthwise (x)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save(fig, path)


def panels(cells):
    return sorted({(c["batch_norm"], c["depthwise_fan"]) for c in cells}, reverse=True)


def plot_grid(cells, key, title, path):
    acts = list(dict.fromkeys(c["activation"] for c in cells))
    inits = list(dict.fromkeys(c["initializer"] for c in cells))
    combos = panels(cells)
    fig, axes = plt.subplots(1, len(combos), figsize=(4.2 * len(combos), 3.6), squeeze=False)
    for ax, (bn, fan) in zip(axes[0], combos):
        grid = np.full((len(acts), len(inits)), np.nan)
        for c in cells:
            if (c["batch_norm"], c["depthwise_fan"]) == (bn, fan) and c[key]:
                grid[acts.index(c["activation"]), inits.index(c["initializer"])] = np.log10(c[key])
        image = ax.imshow(np.clip(grid, -8, 8), cmap="RdBu_r", vmin=-8, vmax=8)
        for (y, x), v in np.ndenumerate(grid):
            ax.text(x, y, "-" if np.isnan(v) else f"1e{v:+.0f}" if abs(v) >= 1 else f"{10 ** v:.2g}",
                    ha="center", va="center", fontsize=7,
                    color="white" if abs(np.nan_to_num(v)) > 5 else "black")
        ax.set_xticks(range(len(inits)), [i.replace("_normal", "") for i in inits], fontsize=8)
        ax.set_yticks(range(len(acts)), acts, fontsize=8)
        ax.set_title(f"BN {'on' if bn == 'true' else 'off'}, {fan} depthwise fan", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="log10 ratio (0 = preserved)")
    fig.suptitle(title, fontsize=10)
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def grid_verdicts(cells):
    """Per activation: the initializer whose signal ratio is closest to 1, in each panel."""
    combos = panels(cells)
    key = ("false", "true") if ("false", "true") in combos else combos[0]
    head = " | ".join(f"best with BN {'on' if bn == 'true' else 'off'}, {fan} fan"
                      for bn, fan in combos)
    lines = [f"| activation | {head} | the seed says | agrees (BN off, true fan)? |",
             "|---" * (len(combos) + 3) + "|"]
    for act in dict.fromkeys(c["activation"] for c in cells):
        best = {}
        for combo in combos:
            pool = [c for c in cells if c["activation"] == act and c["signal_ratio"]
                    and (c["batch_norm"], c["depthwise_fan"]) == combo]
            best[combo] = min(pool, key=lambda c: abs(np.log10(c["signal_ratio"]))) if pool else None
        shown = " | ".join("-" if b is None else f"{b['initializer']} ({b['signal_ratio']:.3g})"
                           for b in best.values())
        advice = SEED_ADVICE.get(act, "-")
        verdict = best[key] and ("yes" if best[key]["initializer"] == advice else
                                 f"no: {best[key]['initializer']} keeps the signal better")
        lines.append(f"| {act} | {shown} | {advice} | {verdict or '-'} |")
    return ["## The seed's closing table, tested at step 0", "",
            "Ratio of the last to the first conv layer's signal std on one batch at "
            "initialization (1 = preserved), per activation: the initializer closest to 1. "
            "With BN on, BN re-normalizes every layer and hides the initializer; with Keras' "
            "depthwise fan and no BN every cell collapses; BN off with the true fan shows "
            "the initializers' own effect, so the verdict is taken there.", ""] + lines


def main():
    params = load_params()
    params["model"]["depthwise_fan"] = fan_name(params["model"]["depthwise_fan"])
    experiments = load_experiments(params)
    for e in experiments:
        e["step0"] = read_tsv(os.path.join("metrics", "step0", f"{e['experiment']}.tsv"))
        e["step0_headline"] = read_json(os.path.join("metrics", "step0", f"{e['experiment']}.json"))
    groups = {e["experiment"]: [r["test_accuracy"] for r in e["runs"] if not r["diverged"]]
              for e in experiments}
    tests = pairwise({k: v for k, v in groups.items() if v})
    os.makedirs(OUT, exist_ok=True)
    write_json(os.path.join(OUT, "summary.json"), {
        "settings": setting_line(params),
        "experiments": [{**{k: v for k, v in e.items() if k not in (
            "curve", "step0", "step0_headline", "runs")},
            "runs": [{k: v for k, v in r.items() if k not in TIMINGS} for r in e["runs"]]}
            for e in experiments],
        "pairwise_test_accuracy": tests})
    write_json(os.path.join(OUT, "history.json"),
               [{"experiment": e["experiment"], **h} for e in experiments for h in e["curve"]], 1)
    cells = read_tsv(GRID)
    text = markdown(params, experiments, tests) + "\n" + "\n".join(grid_verdicts(cells)) + "\n"
    write_text(os.path.join(OUT, "summary.md"), text)
    plot_step0(experiments, os.path.join(OUT, "step0_depth.png"))
    plot_kernel_std(experiments, params["model"]["depthwise_fan"],
                    os.path.join(OUT, "step0_kernel_std.png"))
    plot_grid(cells, "signal_ratio", "signal preservation at step 0: last / first conv signal std",
              os.path.join(OUT, "grid_signal.png"))
    plot_grid(cells, "gradient_ratio", "gradient preservation at step 0: first / last conv "
              "output-gradient std", os.path.join(OUT, "grid_gradient.png"))
    plot_curves(experiments, "accuracy", "accuracy", os.path.join(OUT, "accuracy.png"))
    plot_curves(experiments, "loss", "cross-entropy loss", os.path.join(OUT, "loss.png"))
    plot_test_accuracy(experiments, os.path.join(OUT, "test_accuracy.png"))
    print(text)


if __name__ == "__main__":
    run_stage(main)
