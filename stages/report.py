"""report: the seed's table for our runs (markdown + JSON), per-epoch curves and plots."""
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from initstudy.params import load_params, run_stage  # noqa: E402

OUT = "report"
# The seed's published final-epoch numbers (CIFAR-10 via tfds, 224x224; it says 5 or 10 epochs).
SEED_TABLE = {
    "random_normal": ("random_normal", "relu6", 0.8434, 0.7788, 0.7016),
    "glorot_normal": ("glorot_normal", "relu6", 0.8459, 0.8206, 0.5632),
    "he_normal": ("he_normal", "relu6", 0.8408, 0.7348, 0.8109),
    "lecun_normal": ("lecun_normal", "selu", 0.7345, 0.6193, 1.1013),
}


def load_runs(params):
    runs = []
    for name, exp in params["experiments"].items():
        with open(os.path.join("metrics", f"{name}.json")) as f:
            metrics = json.load(f)
        with open(os.path.join("models", name, "history.json")) as f:
            history = json.load(f)["history"]
        runs.append({"experiment": name, **exp, **metrics, "history": history})
    return runs


def markdown_table(params, runs):
    p, m = params["prepare"], params["model"]
    source = p["folder"] if p["source"] == "folder" else f"tfds {p['tfds_name']}"
    lines = [
        "# Weight-initialization study: results",
        "",
        f"Ours: {source}, {m['image_size']}x{m['image_size']}, "
        f"{params['train']['epochs']} epochs, batch {params['train']['batch_size']}, "
        f"SGD lr {params['train']['learning_rate']}, seed {params['train']['seed']}, "
        f"batch_norm {m['batch_norm']}, depthwise_fan {m['depthwise_fan']}. "
        "Validation = the test split, as in the seed.",
        "",
        "| experiment | initializer | activation | train acc | val acc | val loss | epochs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r['experiment']} | {r['initializer']} | {r['activation']} | "
                     f"{r['train_accuracy']:.4f} | {r['test_accuracy']:.4f} | "
                     f"{r['test_loss']:.4f} | {r['epochs']} |")
    lines += [
        "",
        "The seed's published table (CIFAR-10 from tfds, 224x224, 5-10 epochs on Colab, "
        "one run each; its batch size and learning rate are not stated):",
        "",
        "| experiment | initializer | activation | train acc | val acc | val loss |",
        "|---|---|---|---|---|---|",
    ]
    for name, (init, act, tr, va, vl) in SEED_TABLE.items():
        lines.append(f"| {name} | {init} | {act} | {tr:.4f} | {va:.4f} | {vl:.4f} |")
    return "\n".join(lines) + "\n"


def plot_curves(runs, key, ylabel, path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, r in enumerate(runs):
        epochs = [h["epoch"] for h in r["history"]]
        color = f"C{i}"
        ax.plot(epochs, [h[key] for h in r["history"]], "--", color=color, alpha=0.6,
                label=f"{r['experiment']} (train)")
        ax.plot(epochs, [h["val_" + key] for h in r["history"]], "-o", color=color,
                label=f"{r['experiment']} (test)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_test_accuracy(runs, path):
    fig, ax = plt.subplots(figsize=(7, 4))
    names = [r["experiment"] for r in runs]
    values = [r["test_accuracy"] for r in runs]
    bars = ax.bar(names, values, color=[f"C{i}" for i in range(len(runs))])
    ax.bar_label(bars, fmt="%.3f")
    ax.set_ylabel("final test accuracy")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    params = load_params()
    runs = load_runs(params)
    os.makedirs(OUT, exist_ok=True)
    summary = [{k: v for k, v in r.items() if k != "history"} for r in runs]
    history = [{"experiment": r["experiment"], **h} for r in runs for h in r["history"]]
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(OUT, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    with open(os.path.join(OUT, "summary.md"), "w") as f:
        f.write(markdown_table(params, runs))
    plot_curves(runs, "accuracy", "accuracy", os.path.join(OUT, "accuracy.png"))
    plot_curves(runs, "loss", "cross-entropy loss", os.path.join(OUT, "loss.png"))
    plot_test_accuracy(runs, os.path.join(OUT, "test_accuracy.png"))
    print(open(os.path.join(OUT, "summary.md")).read())


if __name__ == "__main__":
    run_stage(main)
