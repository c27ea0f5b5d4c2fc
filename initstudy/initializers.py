"""Initializers by name, one seeded instance per layer, with Keras' or the per-channel
depthwise fan."""
import math

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
INITIALIZERS = ("random_normal", *VARIANCE_SCALING)
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


def expected_std(name, shape, depthwise=False, depthwise_fan="keras"):
    """The std the initializer's formula promises for a kernel of this shape."""
    if name == "random_normal":
        return RANDOM_NORMAL_STD
    scale, mode, _ = VARIANCE_SCALING[name]
    return math.sqrt(scale / fan(mode, shape, depthwise, depthwise_fan))


def make_initializer(name, seed, shape=None, depthwise=False, depthwise_fan="keras"):
    """A fresh initializer instance (never share one: Keras 3 would repeat its weights)."""
    import keras  # here, so that validating names never pays for importing TensorFlow

    if name == "random_normal":
        return keras.initializers.RandomNormal(stddev=RANDOM_NORMAL_STD, seed=seed)
    scale, mode, distribution = VARIANCE_SCALING[name]
    if depthwise and depthwise_fan == "per_channel":
        # Keras will divide by its own fan; rescale so the result uses the per-channel one.
        scale *= fan(mode, shape, True, "keras") / fan(mode, shape, True, "per_channel")
    return keras.initializers.VarianceScaling(scale, mode, distribution, seed=seed)
