"""The effective learning rate: how much each SGD step changes each layer's kernel.

With BatchNorm after a conv the network ignores the kernel's scale, so what a step does is
the relative change ||dW|| / ||W|| (about lr * ||grad|| / ||W||, and grad itself shrinks as
1/||W||): a kernel initialized small moves fast. Recorded over a training's first steps."""
import math
import time

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
    steps per execution a row spans them (Keras calls back once per execution). `seconds`:
    the time it took (the train stage logs it)."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.rows, self.seconds = steps, [], 0.0

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        start = time.perf_counter()
        self.layers = [layer for layer in self.model.layers
                       if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                             keras.layers.Dense))]
        kernels = [layer.kernel for layer in self.layers]

        # One compiled call per step (eagerly, layer by layer through NumPy, the logger cost
        # 5-8% of a two-epoch run beside others: docs/speed.md): the kernels now, in float64,
        # and the norms of those before and of the change.
        @tf.function
        def measure(before):
            now = [tf.cast(k, tf.float64) for k in kernels]
            return now, [tf.norm(w) for w in before], [tf.norm(w1 - w0)
                                                       for w0, w1 in zip(before, now)]

        self.measure = measure
        self.before = [tf.cast(k, tf.float64) for k in kernels] \
            if self._step() < self.steps else None
        self.seconds += time.perf_counter() - start

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        if self.before is None:
            return
        start = time.perf_counter()
        step = self._step()
        after, norms, changes = self.measure(self.before)
        for layer, norm, change in zip(self.layers, norms, changes):
            norm = float(norm)
            ratio = float(change) / norm if norm else math.nan
            self.rows.append({"step": step, "layer": layer.name, "kind": kind(layer),
                              "weight_norm": norm,  # a diverging run's NaNs are left empty
                              "update_ratio": ratio if math.isfinite(ratio) else None})
        self.before = after if step < self.steps else None
        self.seconds += time.perf_counter() - start


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
