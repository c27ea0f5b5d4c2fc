"""Step-0 diagnostics: what an initializer does to the signal and the gradient, per layer."""
import math

import numpy as np

from initstudy.initializers import expected_std

RELU_FAMILY = ("relu", "relu6")
COLUMNS = ("depth", "layer", "kind", "kernel_std", "kernel_std_formula",
           "kernel_std_per_channel_fan",
           "pre_mean", "pre_std", "bn_mean", "bn_std", "act_mean", "act_std", "signal_std",
           "signal_pooled_std", "zero_fraction", "dead_units", "saturated_fraction", "grad_out_std",
           "grad_kernel_std")


def _saturated(x, activation):
    """Fraction of outputs pinned at a bound, where the activation's slope is (near) zero."""
    if activation == "relu6":
        return float(np.mean(x >= 6.0))
    if activation == "sigmoid":
        return float(np.mean((x < 0.01) | (x > 0.99)))
    if activation == "tanh":
        return float(np.mean(np.abs(x) > 0.99))
    return 0.0


def unit_std(x):
    """The std of each unit (position x channel) across the batch, as a root mean square over
    units: what varies with the input. A pooled std over batch x H x W x C would also count
    fixed per-unit offsets, which carry no information about the image, as signal."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return float(np.sqrt(x.var(axis=0).mean()))


def layer_stats(model, images, labels, initializer, activation, depthwise_fan="keras"):
    """One forward pass (BN in training mode, as in the first training step) and one backward
    pass of the loss; per conv layer in depth order: the kernel's std and its formula, the
    output's mean and pooled std before BN, after BN and after the activation, the signal it
    hands on (per-unit std across the batch, and pooled), dead and saturated fractions, and
    the std of the gradient w.r.t. the layer's output and its kernel. The residual stream is
    tapped too: one `residual` row per Add, after the conv that feeds it."""
    convs, adds, taps, probe = probe_model(model)
    values, grads = forward_and_backward(probe, convs, taps, len(adds), images, labels)
    rows = [{"depth": depth, "layer": conv.name,
             **kernel_columns(conv, initializer, activation, depthwise_fan),
             **signal_columns(conv, values, taps, activation),
             **gradient_columns(grads["out"][depth - 1], grads["kernel"][depth - 1])}
            for depth, conv in enumerate(convs, start=1)]
    rows += residual_rows(model, adds, values[len(taps):len(taps) + len(adds)],
                          grads["residual"], rows)
    return sorted(rows, key=lambda r: (r["depth"], r["kind"] == "residual"))


def probe_model(model):
    """The model's convs and Adds, where each conv's stages sit among the outputs of a probe
    (`taps`: (conv name, "pre" | "bn" | "act") -> index; a stage the conv lacks is left out),
    and the probe: a model whose outputs are those stages, then each Add's, then the logits."""
    import keras

    names = {layer.name for layer in model.layers}
    convs = [layer for layer in model.layers
             if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    taps = {}
    outputs = []
    for conv in convs:
        for stage, suffix in (("pre", ""), ("bn", "_bn"), ("act", "_act")):
            if conv.name + suffix in names:
                taps[conv.name, stage] = len(outputs)
                outputs.append(model.get_layer(conv.name + suffix).output)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    outputs += [add.output for add in adds]
    return convs, adds, taps, keras.Model(model.inputs[0], outputs + [model.outputs[0]])


def forward_and_backward(probe, convs, taps, n_adds, images, labels):
    """The probe's outputs on `images` (BN in training mode), and the loss's gradients with
    respect to each conv's output before BN ("out"), each kernel and each Add's output."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        values = probe(images, training=True)
        loss = loss_fn(labels, values[-1])
    pre = [values[taps[c.name, "pre"]] for c in convs]
    residual = values[len(taps):len(taps) + n_adds]
    grads = tape.gradient(loss, pre + [c.kernel for c in convs] + list(residual))
    n = len(convs)
    return values, {"out": grads[:n], "kernel": grads[n:2 * n], "residual": grads[2 * n:]}


def kernel_columns(conv, initializer, activation, depthwise_fan):
    """A conv's kind, its kernel's std, and the std the initializer's formula gives it (with
    the study's depthwise fan, and with a per-channel one)."""
    import keras

    depthwise = isinstance(conv, keras.layers.DepthwiseConv2D)
    kernel = conv.kernel.numpy()
    return {"kind": "depthwise" if depthwise else "conv",
            "kernel_std": float(kernel.std()),
            "kernel_std_formula": expected_std(initializer, kernel.shape, depthwise,
                                               depthwise_fan, activation),
            "kernel_std_per_channel_fan": expected_std(initializer, kernel.shape, depthwise,
                                                       "per_channel", activation)}


def signal_columns(conv, values, taps, activation):
    """A conv's output before BN, after BN and after the activation (mean, pooled std), the
    signal it hands on, and how much of its activation is zero, dead or saturated."""
    row = {}
    for stage in ("pre", "bn", "act"):
        x = values[taps[conv.name, stage]].numpy() if (conv.name, stage) in taps else None
        row[f"{stage}_mean"] = None if x is None else float(x.mean())
        row[f"{stage}_std"] = None if x is None else float(x.std())
        if x is not None:
            last = x  # the signal this conv hands on: after act, else after BN, else raw
    row["signal_std"] = unit_std(last)
    row["signal_pooled_std"] = float(last.std())
    act = values[taps[conv.name, "act"]].numpy() if (conv.name, "act") in taps else None
    relu = act is not None and activation in RELU_FAMILY
    row["zero_fraction"] = float(np.mean(act == 0)) if relu else None
    row["dead_units"] = float(np.mean(np.all(act.reshape(-1, act.shape[-1]) == 0, axis=0))) \
        if relu else None
    row["saturated_fraction"] = None if act is None else _saturated(act, activation)
    return row


def gradient_columns(grad_out, grad_kernel):
    import tensorflow as tf

    return {"grad_out_std": float(tf.math.reduce_std(grad_out)),
            "grad_kernel_std": float(tf.math.reduce_std(grad_kernel))}


def residual_rows(model, adds, residual, grad_residual, conv_rows):
    """One `residual` row per Add: the signal and gradient of the residual stream, at the
    depth of the deepest conv before it."""
    import tensorflow as tf

    order = [layer.name for layer in model.layers]
    rows = []
    for add, x, grad in zip(adds, residual, grad_residual):
        feeder = max((r for r in conv_rows if order.index(r["layer"]) < order.index(add.name)),
                     key=lambda r: r["depth"])
        x = x.numpy()
        rows.append({**dict.fromkeys(COLUMNS), "depth": feeder["depth"], "layer": add.name,
                     "kind": "residual", "signal_std": unit_std(x),
                     "signal_pooled_std": float(x.std()),
                     "grad_out_std": float(tf.math.reduce_std(grad))})
    return rows


def headline(rows):
    """A few numbers per experiment: does the signal (per-unit std; pooled, labelled) and the
    gradient survive the depth, and how large does the residual stream grow?"""
    def ratio(a, b):
        return float(a / b) if b else None

    residual = [r for r in rows if r["kind"] == "residual"]
    rows = [r for r in rows if r["kind"] != "residual"]
    first, last = rows[0], rows[-1]
    acts = [r for r in rows if r["act_std"] is not None]
    zero = [r["dead_units"] for r in rows if r["dead_units"] is not None]
    return {
        "signal_ratio": ratio(last["signal_std"], first["signal_std"]),
        "pooled_signal_ratio": ratio(last["signal_pooled_std"], first["signal_pooled_std"]),
        "gradient_ratio": ratio(first["grad_out_std"], last["grad_out_std"]),
        "min_signal_std": min(r["signal_std"] for r in rows),
        "max_signal_std": max(r["signal_std"] for r in rows),
        "max_residual_std": max((r["signal_std"] for r in residual), default=None),
        "dead_units": float(np.mean(zero)) if zero else None,
        "saturated_fraction": float(np.mean([r["saturated_fraction"] for r in acts])) if acts else None,
        "kernel_std_max_error": max((abs(r["kernel_std"] / r["kernel_std_formula"] - 1)
                                     for r in rows if r["kernel_std_formula"]), default=None),
    }


def drift(h):
    """How far one initialization moves the signal (forward) and the gradient (backward) away
    from preserved across the depth, in decades: |log10 signal ratio| + |log10 gradient
    ratio|; inf where either collapses to 0 or overflows."""
    ratios = (h["signal_ratio"], h["gradient_ratio"])
    if any(r is None or not 0 < r < math.inf for r in ratios):
        return math.inf
    return sum(abs(math.log10(r)) for r in ratios)


def grid_cell(activation, initializer, batch_norm, depthwise_fan, seeds, image_size, images,
              labels, inputs):
    """One cell of the grid: the step-0 headline of a freshly built MobileNetV2 per
    initialization seed, summarized by cell_summary. `inputs`: model.data_inputs(manifest)."""
    from initstudy.model import build_mobilenet_v2, initialize

    headlines = []
    for seed in seeds:
        model = build_mobilenet_v2(image_size=image_size, initializer=initializer,
                                   activation=activation, seed=seed, batch_norm=batch_norm,
                                   depthwise_fan=depthwise_fan, **inputs)
        initialize(model, initializer, images)
        headlines.append(headline(layer_stats(model, images, labels, initializer, activation,
                                              depthwise_fan)))
    return cell_summary(headlines)


def cell_summary(headlines):
    """One grid cell over its initialization seeds: the ratios' geometric means and ranges,
    the drift's mean and range, and the means of the other headline numbers."""
    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    out = {}
    for key in ("signal_ratio", "gradient_ratio"):
        values = [h[key] for h in headlines]
        ok = all(v is not None and 0 < v < math.inf for v in values)
        out[key] = float(np.exp(np.mean(np.log(values)))) if ok else None
        out[key + "_min"] = min(values) if ok else None
        out[key + "_max"] = max(values) if ok else None
    drifts = [drift(h) for h in headlines]
    out.update(drift=float(np.mean(drifts)), drift_min=min(drifts), drift_max=max(drifts))
    for key in ("min_signal_std", "max_residual_std", "dead_units", "saturated_fraction"):
        out[key] = mean([h[key] for h in headlines])
    return out
