"""Initializers by name, one seeded instance per layer, with Keras' or the per-channel
depthwise fan; orthogonal with the gain its activation needs; LSUV's data-dependent pass."""
import math

import numpy as np

# name -> (scale, fan mode, distribution) of keras.initializers.VarianceScaling,
# exactly as keras.initializers.GlorotNormal, HeNormal, LecunNormal, ... define them.
VARIANCE_SCALING = {
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
}
RANDOM_NORMAL_STD = 0.05  # keras.initializers.RandomNormal's default stddev
# Orthogonal (Saxe et al. 2014) scaled by the gain that keeps the variance through the
# activation: PyTorch's torch.nn.init.calculate_gain, except SELU, which wants variance 1/n
# (gain 1, as PyTorch's own docs advise for self-normalizing networks).
ORTHOGONAL_GAIN = {"sigmoid": 1.0, "tanh": 5 / 3, "relu": math.sqrt(2), "relu6": math.sqrt(2),
                   "selu": 1.0}
# LSUV (Mishkin & Matas 2016, Algorithm 1): orthonormal start, then each conv rescaled on a
# batch until its output variance is within Tol_var of 1, at most T_max passes per layer.
LSUV_TOLERANCE, LSUV_MAX_PASSES = 0.1, 10
ORTHOGONAL = ("orthogonal", "lsuv")
INITIALIZERS = ("random_normal", *VARIANCE_SCALING, *ORTHOGONAL)
DEPTHWISE_FANS = ("keras", "per_channel")


def fan(mode, shape, depthwise=False, depthwise_fan="keras"):
    """The n of std = sqrt(scale / n) for a conv kernel of `shape` (kh, kw, in, out).

    Keras reads a depthwise kernel (kh, kw, C, 1) like a dense conv: fan_in = kh*kw*C,
    although each output channel sees only kh*kw inputs (keras-team/keras#11773).
    depthwise_fan="per_channel" counts what a depthwise output really sees.
    """
    receptive = math.prod(shape[:-2])
    fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
    if depthwise and depthwise_fan == "per_channel":
        fan_in = receptive
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


def orthogonal_gain(name, activation):
    """LSUV starts orthonormal (gain 1) and lets the data set the scale."""
    return 1.0 if name == "lsuv" else ORTHOGONAL_GAIN[activation]


def expected_std(name, shape, depthwise=False, depthwise_fan="keras", activation="relu"):
    """The std the initializer's formula promises for a kernel of this shape; None for LSUV,
    whose scale the data decides."""
    if name == "random_normal":
        return RANDOM_NORMAL_STD
    if name == "lsuv":
        return None
    if name == "orthogonal":
        # Keras flattens to (rows, cols) = (kh*kw*in, out) and makes the shorter side
        # orthonormal: every entry has mean square 1 / max(rows, cols). Per channel, a
        # depthwise channel's kh*kw taps are one unit vector.
        rows = math.prod(shape[:-2]) if depthwise and depthwise_fan == "per_channel" \
            else math.prod(shape[:-1])
        return ORTHOGONAL_GAIN[activation] / math.sqrt(max(rows, shape[-1]))
    scale, mode, _ = VARIANCE_SCALING[name]
    return math.sqrt(scale / fan(mode, shape, depthwise, depthwise_fan))


def make_initializer(name, seed, shape=None, depthwise=False, depthwise_fan="keras",
                     activation="relu"):
    """A fresh initializer instance (never share one: Keras 3 would repeat its weights).
    Orthogonal's per-channel depthwise variant is finished by `unit_channels` once the
    kernel exists."""
    import keras  # here, so that validating names never pays for importing TensorFlow

    if name == "random_normal":
        return keras.initializers.RandomNormal(stddev=RANDOM_NORMAL_STD, seed=seed)
    if name in ORTHOGONAL:
        return keras.initializers.Orthogonal(orthogonal_gain(name, activation), seed=seed)
    scale, mode, distribution = VARIANCE_SCALING[name]
    if depthwise and depthwise_fan == "per_channel":
        # Keras will divide by its own fan; rescale so the result uses the per-channel one.
        scale *= fan(mode, shape, True, "keras") / fan(mode, shape, True, "per_channel")
    return keras.initializers.VarianceScaling(scale, mode, distribution, seed=seed)


def unit_channels(kernel, gain):
    """A depthwise kernel (kh, kw, C, 1) whose every channel's kh*kw taps have norm `gain`:
    orthogonal per channel (one column is orthonormal when its norm is 1). Keras' Orthogonal
    makes the whole (kh*kw*C, 1) column one unit vector instead, each channel ~1/sqrt(C) of it."""
    columns = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-2] * kernel.shape[-1])
    columns *= gain / np.linalg.norm(columns, axis=0)
    return columns.reshape(kernel.shape).astype(kernel.dtype)


def conv_layers(model):
    import keras

    return [layer for layer in model.layers
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]


def lsuv(model, images, tolerance=LSUV_TOLERANCE, max_passes=LSUV_MAX_PASSES):
    """LSUV's data-dependent pass on a built model, conv by conv in depth order: rescale the
    kernel by 1/sqrt(variance of its output on `images`) until the variance is within
    `tolerance` of 1. BN runs in training mode, as in the first step; its moving statistics
    are restored afterwards. One row per conv: layer, passes, variance before and after."""
    import keras

    bn_state = [v.numpy() for v in model.non_trainable_variables]
    rows = []
    for conv in conv_layers(model):
        probe = keras.Model(model.inputs[0], conv.output)
        variance = before = float(np.var(probe(images, training=True).numpy()))
        passes = 0
        while abs(variance - 1) >= tolerance and passes < max_passes and 0 < variance < math.inf:
            conv.kernel.assign(conv.kernel / math.sqrt(variance))
            variance = float(np.var(probe(images, training=True).numpy()))
            passes += 1
        rows.append({"layer": conv.name, "passes": passes, "variance_before": before,
                     "variance": variance})
    for v, value in zip(model.non_trainable_variables, bn_state):
        v.assign(value)
    return rows
