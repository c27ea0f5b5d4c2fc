"""The effective learning rate: how much each SGD step changes each layer's kernel.

With BatchNorm after a conv the network ignores the kernel's scale, so what a step does is
the relative change ||dW|| / ||W|| (about lr * ||grad|| / ||W||, and grad itself shrinks as
1/||W||): a kernel initialized small moves fast. Recorded over a training's first steps."""
import math

import keras
import numpy as np

KINDS = ("depthwise", "conv", "dense")


def kind(layer):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return "depthwise"
    return "conv" if isinstance(layer, keras.layers.Conv2D) else "dense"


class WeightUpdates(keras.callbacks.Callback):
    """One row per step and layer with a kernel (conv, depthwise, dense) for the first `steps`
    optimizer steps: step, layer, kind, ||W|| before the step, ||dW|| / ||W||. With several
    steps per execution a row spans them (Keras calls back once per execution)."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.rows = steps, []

    def _kernels(self):
        return [layer.kernel.numpy().astype(np.float64) for layer in self.layers]

    def on_train_begin(self, logs=None):
        self.layers = [layer for layer in self.model.layers
                       if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                             keras.layers.Dense))]
        self.before = self._kernels() if self._step() < self.steps else None

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        if self.before is None:
            return
        step, after = self._step(), self._kernels()
        for layer, w0, w1 in zip(self.layers, self.before, after):
            norm = float(np.linalg.norm(w0))
            ratio = float(np.linalg.norm(w1 - w0)) / norm if norm else math.nan
            self.rows.append({"step": step, "layer": layer.name, "kind": kind(layer),
                              "weight_norm": norm,  # a diverging run's NaNs are left empty
                              "update_ratio": ratio if math.isfinite(ratio) else None})
        self.before = after if step < self.steps else None


def median_by_kind(rows):
    """Per step, the median ||dW|| / ||W|| over the layers of each kind (weight_updates.tsv
    rows): what the effective-learning-rate plots show."""
    out = {}
    for r in rows:
        if r["update_ratio"] is not None:
            out.setdefault(r["step"], {}).setdefault(r["kind"], []).append(r["update_ratio"])
    return [{"step": step, **{k: float(np.median(v)) for k, v in kinds.items()}}
            for step, kinds in sorted(out.items())]


def mean_updates(runs_rows):
    """median_by_kind per run, averaged over the runs (seeds) step by step; a kind over the
    runs that logged it at that step (a diverged run's NaN steps log none)."""
    curves = [median_by_kind(rows) for rows in runs_rows if rows]
    curves = [c for c in curves if c]
    if not curves:
        return []
    steps = min(len(c) for c in curves)
    return [{"step": curves[0][i]["step"],
             **{k: float(np.mean([c[i][k] for c in curves if k in c[i]]))
                for k in KINDS if any(k in c[i] for c in curves)}}
            for i in range(steps)]


def unchanged_layers(runs_rows):
    """Per kind: how many of its layers' kernels a logged step left exactly unchanged
    (||dW|| / ||W|| = 0: a zero gradient, or a step below float32's resolution of the
    weights), the least and the most over the steps and runs, and how many layers it has:
    {kind: {"min": ..., "max": ..., "layers": ...}}."""
    zero, layers = {}, {}
    for run, rows in enumerate(runs_rows):
        for r in rows:
            layers.setdefault(r["kind"], set()).add(r["layer"])
            if r["update_ratio"] is not None:
                counts = zero.setdefault(r["kind"], {})
                counts[run, r["step"]] = counts.get((run, r["step"]), 0) + (r["update_ratio"] == 0)
    return {k: {"min": min(c.values()), "max": max(c.values()), "layers": len(layers[k])}
            for k, c in zero.items()}
