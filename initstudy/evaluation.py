"""Scoring trained runs on the test split and summarizing one experiment across its seeds."""
import numpy as np

from initstudy.stats import summarize

SETTINGS = ("device", "precision", "jit_compile", "steps_per_execution", "deterministic")


def score(model, dataset):
    """(labels, predicted labels, accuracy, mean cross-entropy) of a model on a dataset."""
    import keras

    # predict runs compiled: 5x faster than calling the model batch by batch, same logits
    logits = model.predict(dataset, verbose=0)
    labels = np.concatenate([batch_labels.numpy() for _, batch_labels in dataset])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    predicted = logits.argmax(axis=1)
    return labels, predicted, float((predicted == labels).mean()), float(loss)


def run_record(seed, history):
    """One run's row of eval/<experiment>/runs.json from its training history.json."""
    last = history["last_finite"] or {}
    return {"seed": seed, "diverged": history["diverged"],
            "diverged_epoch": history["diverged_epoch"], "epochs": history["epochs"],
            "train_accuracy": last.get("accuracy"), "train_loss": last.get("loss"),
            "inference_accuracy": last.get("inference_accuracy"),
            "val_accuracy": last.get("val_accuracy"), "val_loss": last.get("val_loss"),
            "val_accuracy_raw": last.get("val_accuracy_raw"),
            "test_accuracy": None, "test_loss": None,
            "test_accuracy_raw": None, "test_loss_raw": None,
            **history["settings"]}


def r4(x):
    return None if x is None else round(x, 4)


def experiment_metrics(runs):
    """metrics/<experiment>.json: mean, std and 95% interval across the runs that did not
    diverge, how many diverged, and how the runs were trained."""
    finite = [r for r in runs if not r["diverged"]]
    metrics = {}
    for key in ("test_accuracy", "test_loss"):
        s = summarize([r[key] for r in finite])
        metrics.update({key: r4(s["mean"]), f"{key}_std": r4(s["std"]),
                        f"{key}_ci95_low": r4(s["ci_low"]), f"{key}_ci95_high": r4(s["ci_high"])})
    # precise BN's scores are the headline; `_raw`: with BN's statistics as training left them
    for key in ("test_accuracy_raw", "test_loss_raw", "train_accuracy", "train_loss",
                "inference_accuracy", "val_accuracy", "val_accuracy_raw", "val_loss"):
        metrics[key] = r4(summarize([r[key] for r in finite if r.get(key) is not None])["mean"])
    metrics.update(epochs=max(r["epochs"] for r in runs), seeds=len(runs),
                   diverged=sum(r["diverged"] for r in runs))
    # the same for every seed of one experiment on one machine
    metrics.update({k: runs[0][k] for k in SETTINGS})
    return metrics


CURVE_KEYS = ("accuracy", "inference_accuracy", "loss", "inference_loss", "val_accuracy",
              "val_loss")


def mean_curve(histories):
    """Per-epoch mean of the training histories (history.json) of the runs that did not diverge."""
    if not histories:
        return []
    epochs = min(len(h["history"]) for h in histories)
    return [{"epoch": e + 1, **{k: float(np.mean([h["history"][e][k] for h in histories]))
                                for k in CURVE_KEYS}} for e in range(epochs)]
