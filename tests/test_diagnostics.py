"""Step-0 diagnostics against known results (He et al. 2015; Klambauer et al. 2017)."""
import keras
import numpy as np
import pytest

from initstudy.diagnostics import grid_cell, headline, layer_stats, unit_std
from initstudy.verdicts import winner
from initstudy.initializers import expected_std, make_initializer
from initstudy.model import build_mobilenet_v2


def plain_conv_stack(initializer, seed=0, depth=30, channels=64, size=32):
    """depth x (3x3 conv, ReLU) without BN, named like the study's model for layer_stats."""
    inputs = keras.Input((size, size, channels))
    x = inputs
    for i in range(1, depth + 1):
        init = make_initializer(initializer, seed=seed * 100 + i, shape=(3, 3, channels, channels))
        x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False,
                                kernel_initializer=init, name=f"conv{i}")(x)
        x = keras.layers.Activation("relu", name=f"conv{i}_act")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def pre_activation_variances(initializer, networks=16):
    """Per-layer variance, geometric mean over independently initialized stacks: at 64
    channels the log-variance of one stack random-walks, and the theory speaks of the
    typical network."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 32, 32, 64)).astype("float32")  # standardised input
    labels = rng.integers(0, 10, 2)
    variances = [[r["pre_std"] ** 2 for r in layer_stats(plain_conv_stack(initializer, seed),
                                                         images, labels, initializer, "relu")]
                 for seed in range(networks)]
    return np.exp(np.mean(np.log(variances), axis=0))


@pytest.mark.slow
def test_he_normal_keeps_relu_pre_activation_variance_across_30_layers():
    var = pre_activation_variances("he_normal")
    assert len(var) == 30
    assert np.all(var / var[0] > 0.5) and np.all(var / var[0] < 2)
    per_layer = (var[-1] / var[1]) ** (1 / 28)  # from layer 2 on, inputs are ReLU outputs
    assert per_layer == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("initializer", ["glorot_normal", "lecun_normal"])
def test_glorot_and_lecun_halve_relu_variance_per_layer(initializer):
    var = pre_activation_variances(initializer)
    per_layer = (var[-1] / var[1]) ** (1 / 28)
    assert per_layer == pytest.approx(0.5, abs=0.05)


def test_selu_with_lecun_normal_is_self_normalizing_over_30_dense_layers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 512)).astype("float32")
    for i in range(30):
        dense = keras.layers.Dense(512, activation="selu", use_bias=False,
                                   kernel_initializer=make_initializer("lecun_normal", seed=i))
        x = dense(x).numpy()
        assert abs(x.mean()) < 0.1, (i, x.mean())
        assert 0.8 <= x.var() <= 1.25, (i, x.var())


@pytest.mark.parametrize("name", ["random_normal", "glorot_normal", "he_normal", "lecun_normal",
                                  "glorot_uniform", "he_uniform", "lecun_uniform"])
def test_kernel_std_within_two_percent_of_formula(name):
    shape = (3, 3, 64, 64)
    kernel = make_initializer(name, seed=1)(shape).numpy()
    assert kernel.std() == pytest.approx(expected_std(name, shape), rel=0.02)


@pytest.mark.parametrize("name,factor", [
    ("he_normal", lambda c: np.sqrt(c)), ("lecun_normal", lambda c: np.sqrt(c)),
    ("glorot_normal", lambda c: np.sqrt((c + 1) / 2))])
def test_per_channel_depthwise_fan_rescales_std(name, factor):
    c = 512
    shape = (3, 3, c, 1)
    keras_fan = make_initializer(name, 3, shape, depthwise=True, depthwise_fan="keras")(shape)
    per_channel = make_initializer(name, 3, shape, depthwise=True, depthwise_fan="per_channel")(shape)
    want = expected_std(name, shape, True, "keras") * factor(c)
    assert expected_std(name, shape, True, "per_channel") == pytest.approx(want)
    assert float(np.std(per_channel)) == pytest.approx(want, rel=0.05)
    assert float(np.std(per_channel) / np.std(keras_fan)) == pytest.approx(factor(c), rel=0.05)


def test_reference_model_step0_shows_bn_hiding_and_the_keras_fan_collapse():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3)).astype("uint8")
    labels = rng.integers(0, 10, 16)

    def ratio(bn, fan):
        model = build_mobilenet_v2(10, 32, "he_normal", "relu6", batch_norm=bn, depthwise_fan=fan)
        return headline(layer_stats(model, images, labels, "he_normal", "relu6", fan))["signal_ratio"]

    assert 0.5 < ratio(True, "keras") < 2  # BN re-normalizes every layer
    assert ratio(False, "keras") < 1e-4  # depthwise kernels sqrt(C) too small: collapse
    assert 0.1 < ratio(False, "per_channel") < 10  # with the per-channel fan He keeps the signal


def test_a_fixed_offset_per_unit_is_not_signal():
    """Zero kernel + a random bias per channel: every image gives the same output, so the
    per-unit std across the batch is 0 while the pooled std counts the offsets."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", kernel_initializer="zeros",
                            bias_initializer=keras.initializers.RandomNormal(0, 1, seed=0),
                            name="conv1")(inputs)
    x = keras.layers.Activation("tanh", name="conv1_act")(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    images = np.random.default_rng(0).standard_normal((32, 8, 8, 3)).astype("float32")
    row = layer_stats(model, images, np.zeros(32, int), "random_normal", "tanh")[0]
    assert row["signal_std"] < 1e-6
    assert row["signal_pooled_std"] > 0.3
    # and on data: a per-unit std is the RMS of each unit's std across the batch
    x = np.stack([np.full((2, 2), 5.0), np.full((2, 2), 7.0)])  # two images, 4 units each
    assert unit_std(x) == pytest.approx(1.0) and x.std() == pytest.approx(1.0)
    assert unit_std(x + np.arange(4.0).reshape(2, 2)) == pytest.approx(1.0)  # offsets ignored


def test_the_residual_stream_is_tapped_after_the_conv_that_feeds_it():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 3)).astype("uint8")
    model = build_mobilenet_v2(10, 32, "he_normal", "relu6")
    rows = layer_stats(model, images, rng.integers(0, 10, 8), "he_normal", "relu6")
    residual = [r for r in rows if r["kind"] == "residual"]
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert [r["layer"] for r in residual] == adds and len(adds) == 10  # MobileNetV2's 10 adds
    for r in residual:
        feeder = rows[rows.index(r) - 1]
        assert feeder["kind"] == "conv" and feeder["depth"] == r["depth"]  # the project conv
        assert r["signal_std"] > 0 and r["grad_out_std"] > 0
    assert headline(rows)["max_residual_std"] == max(r["signal_std"] for r in residual)


@pytest.mark.slow
def test_grid_verdict_is_stable_across_initialization_seeds():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3)).astype("uint8")
    labels = rng.integers(0, 10, 16)
    inputs = {"num_classes": 10, "input_size": 32, "input_mean": [127.0] * 3,
              "input_std": [64.0] * 3}

    def verdict(seeds):
        cells = [{"initializer": init, **grid_cell("relu", init, False, "per_channel", seeds, 32,
                                                   images, labels, inputs)}
                 for init in ("he_normal", "lecun_normal", "glorot_normal")]
        return winner(sorted(cells, key=lambda c: c["drift"]))[0]

    assert verdict((0, 1, 2)) == verdict((3, 4, 5)) == "he_normal"
