"""The report's figures (PNG, matplotlib): curves, final accuracy, step-0 depth profiles,
kernel std against its formula, and the grid's heatmaps."""
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from initstudy.files import atomic  # noqa: E402
from initstudy.verdicts import panel_name, panels  # noqa: E402


def save(fig, path, tight=True):
    if tight:
        fig.tight_layout()
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def nan_if_none(x):
    return np.nan if x is None else x


def label(e):
    diverged = e["metrics"]["diverged"]
    return e["experiment"] + (f" ({diverged} diverged run(s) left out)" if diverged else "")


def curves(experiments, key, ylabel, path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, e in enumerate(experiments):
        epochs = [h["epoch"] for h in e["curve"]]
        ax.plot(epochs, [h[key] for h in e["curve"]], "--", color=f"C{i}", alpha=0.6)
        ax.plot(epochs, [h["inference_" + key] for h in e["curve"]], ":", color=f"C{i}")
        ax.plot(epochs, [h["val_" + key] for h in e["curve"]], "-o", color=f"C{i}", label=label(e))
    ax.set(xlabel="epoch", ylabel=ylabel, title=f"{ylabel}: validation (solid), train in "
                                                f"inference mode (dotted), Keras' running train "
                                                f"value (dashed)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)


def test_accuracy(experiments, baseline, path):
    """Mean test accuracy with its 95% interval per experiment; BN as trained (x) where the
    runs were also scored so; the test split's baseline (larger of chance and majority class)
    and the limit below which an accuracy is within noise of it."""
    fig, ax = plt.subplots(figsize=(7, 4))
    names = [e["experiment"] for e in experiments]
    metrics = [e["metrics"] for e in experiments]
    means = [m["test_accuracy"] or 0 for m in metrics]
    errors = [[mean - (m["test_accuracy_ci95_low"] or mean) for mean, m in zip(means, metrics)],
              [(m["test_accuracy_ci95_high"] or mean) - mean for mean, m in zip(means, metrics)]]
    bars = ax.bar(names, means, yerr=errors, capsize=6,
                  color=[f"C{i}" for i in range(len(experiments))])
    ax.bar_label(bars, labels=["diverged" if m["test_accuracy"] is None else
                               f"{m['test_accuracy']:.3f}" for m in metrics], padding=8)
    if any(m.get("test_accuracy_raw") is not None for m in metrics):
        ax.plot(names, [nan_if_none(m.get("test_accuracy_raw")) for m in metrics], "kx",
                label="BN as trained")
    ax.axhline(max(baseline["chance"], baseline["majority"]), color="gray", lw=1,
               label="baseline (chance or majority class)")
    ax.axhline(baseline["noise_limit"], color="gray", lw=1, ls="--",
               label="within noise of it below")
    ax.set(ylabel="final test accuracy (mean, 95% CI)", ylim=(0, 1))
    ax.legend(fontsize=8)
    save(fig, path)


def step0_depth(experiments, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, e in enumerate(experiments):
        rows = [r for r in e["step0"] if r["kind"] != "residual"]
        residual = [r for r in e["step0"] if r["kind"] == "residual"]
        depth = [r["depth"] for r in rows]
        axes[0].plot(depth, [r["signal_std"] for r in rows], "-", color=f"C{i}",
                     label=f"{e['experiment']} ({e['initializer']} + {e['activation']})")
        axes[0].plot([r["depth"] for r in residual], [r["signal_std"] for r in residual], "s",
                     color=f"C{i}", ms=4, ls="none")
        axes[1].plot(depth, [r["grad_out_std"] for r in rows], "-", color=f"C{i}")
    axes[0].set(title="per-unit signal std across the batch after each conv (line; after BN "
                      "and activation where present) and after each residual add (squares)",
                ylabel="std")
    axes[0].title.set_fontsize(8)
    axes[1].set(title="std of d loss / d conv output", ylabel="std")
    for ax in axes:
        ax.set(xlabel="conv layer (depth order)", yscale="log")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    save(fig, path)


def kernel_std(experiments, fan, path):
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, e in enumerate(experiments):
        rows = [r for r in e["step0"] if r["kind"] != "residual"]
        # LSUV has no formula (None): the data set its scale
        ax.plot([r["depth"] for r in rows], [nan_if_none(r["kernel_std_formula"]) for r in rows], "-",
                color=f"C{i}", alpha=0.5)
        for kind, marker in (("conv", "o"), ("depthwise", "^")):
            pts = [r for r in rows if r["kind"] == kind]
            ax.plot([r["depth"] for r in pts], [r["kernel_std"] for r in pts], marker,
                    color=f"C{i}", ms=4, ls="none",
                    label=f"{e['experiment']}" if kind == "conv" else None)
        dw = [r for r in rows if r["kind"] == "depthwise"]
        ax.plot([r["depth"] for r in dw], [nan_if_none(r["kernel_std_per_channel_fan"]) for r in dw], "x",
                color=f"C{i}", ms=6, ls="none")
    ax.set(yscale="log", xlabel="conv layer (depth order)", ylabel="kernel std",
           title=f"kernel std: measured (o conv, ^ depthwise), formula with depthwise_fan={fan} "
                 "(line), per-channel-fan formula for depthwise (x)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save(fig, path)


def weight_updates(experiments, path):
    """||dW|| / ||W|| per step, median over the layers of each kind, one panel per experiment;
    a kind whose median never moves (0 at every step: off a log axis) is named in its panel."""
    fig, axes = plt.subplots(1, len(experiments), figsize=(3.6 * len(experiments), 3.6),
                             sharey=True, squeeze=False)
    # log: the ratios span decades; linear where nothing moved at all (no positive value)
    log = any(v > 0 for e in experiments for c in e["updates"] for k, v in c.items()
              if k != "step")
    for ax, e in zip(axes[0], experiments):
        still = []
        for kind, style in (("depthwise", "-"), ("conv", "--"), ("dense", ":")):
            points = [(c["step"], c[kind]) for c in e["updates"] if kind in c]
            if points:
                ax.plot(*zip(*points), style, label=kind)
                if not any(v > 0 for _, v in points):
                    still.append(kind)
        if still:
            ax.text(0.5, 0.04, "no measurable update (median ||dW|| = 0): " + ", ".join(still),
                    transform=ax.transAxes, ha="center", va="bottom", fontsize=7)
        ax.set(title=e["experiment"], xlabel="step", yscale="log" if log else "linear")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("||dW|| / ||W|| (median over layers)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("effective learning rate: relative kernel change per SGD step", fontsize=10)
    save(fig, path)


def grid_heatmaps(cells, key, title, path):
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
        ax.set_title(panel_name(bn, fan), fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="log10 ratio (0 = preserved)")
    fig.suptitle(title, fontsize=10)
    save(fig, path, tight=False)
