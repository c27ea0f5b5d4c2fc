"""Orthogonal and LSUV on the study's MobileNetV2, and the ||dW|| / ||W|| logger checked
against a step computed by hand."""
import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from conftest import stage, write_params
from initstudy.initializers import LSUV_TOLERANCE, ORTHOGONAL_GAIN, conv_layers, lsuv
from initstudy.model import build_mobilenet_v2, initialize
from initstudy.updates import WeightUpdates, median_by_kind


def images(n=32, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def output_variances(model, batch):
    """Each conv's output variance on `batch`, BN in training mode (as LSUV measures it)."""
    convs = conv_layers(model)
    probe = keras.Model(model.inputs[0], [c.output for c in convs])
    return {c.name: float(np.var(v)) for c, v in zip(convs, probe(batch, training=True))}


@pytest.mark.slow
@pytest.mark.parametrize("activation,batch_norm", [("relu6", True), ("tanh", False)])
def test_lsuv_brings_every_conv_output_to_unit_variance_and_he_does_not(activation, batch_norm):
    batch = images()
    model = build_mobilenet_v2(10, 32, "lsuv", activation, batch_norm=batch_norm)
    rows = initialize(model, "lsuv", batch)
    assert [r["layer"] for r in rows] == [c.name for c in conv_layers(model)]
    variances = output_variances(model, batch)
    assert all(abs(v - 1) < LSUV_TOLERANCE for v in variances.values()), variances
    assert any(r["passes"] > 0 for r in rows)  # it had something to do
    # Plain He with Keras' depthwise fan: the depthwise outputs are far below 1.
    he = build_mobilenet_v2(10, 32, "he_normal", activation, batch_norm=batch_norm)
    he_variances = output_variances(he, batch)
    depthwise = [n for n in he_variances if n.endswith("_dw")]
    assert len(depthwise) == 17
    assert all(abs(he_variances[n] - 1) >= LSUV_TOLERANCE for n in depthwise)


@pytest.mark.slow
def test_lsuv_leaves_batch_norm_moving_statistics_as_they_were():
    model = build_mobilenet_v2(10, 32, "lsuv", "relu6")
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    lsuv(model, images())
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, model.non_trainable_variables))


@pytest.mark.parametrize("activation", ["relu6", "tanh", "selu"])
@pytest.mark.parametrize("depthwise_fan", ["keras", "per_channel"])
def test_orthogonal_kernels_are_orthonormal_times_the_activations_gain(activation, depthwise_fan):
    model = build_mobilenet_v2(10, 32, "orthogonal", activation, depthwise_fan=depthwise_fan)
    gain = ORTHOGONAL_GAIN[activation]
    for layer in conv_layers(model):
        kernel = layer.kernel.numpy().astype(np.float64) / gain
        if isinstance(layer, keras.layers.DepthwiseConv2D) and depthwise_fan == "per_channel":
            w = kernel.reshape(-1, kernel.shape[-2])  # each channel's 9 taps: one unit column
            np.testing.assert_allclose(np.linalg.norm(w, axis=0), 1, atol=1e-5)
            continue
        w = kernel.reshape(-1, kernel.shape[-1])  # (kh*kw*in, out), as Keras flattens it
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, np.eye(len(gram)), atol=1e-5, err_msg=layer.name)


def test_weight_update_logger_matches_a_hand_computed_sgd_step():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(2)])
    lr = 0.1
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.SGD(lr), loss_fn)
    x = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    kernels = [layer.kernel for layer in model.layers]
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, kernels)
    want = [lr * np.linalg.norm(g) / np.linalg.norm(w) for g, w in zip(grads, kernels)]
    norms = [np.linalg.norm(w) for w in kernels]

    logger = WeightUpdates(steps=2)
    # three steps on the same batch; only the first two are recorded
    model.fit(np.tile(x, (3, 1)), np.tile(y, 3), batch_size=8, epochs=1, shuffle=False,
              verbose=0, callbacks=[logger])
    assert [r["step"] for r in logger.rows] == [1, 1, 2, 2]
    first = logger.rows[:2]
    assert [r["kind"] for r in first] == ["dense", "dense"]
    np.testing.assert_allclose([r["update_ratio"] for r in first], want, rtol=1e-5)
    np.testing.assert_allclose([r["weight_norm"] for r in first], norms, rtol=1e-6)
    assert median_by_kind(logger.rows)[0] == {"step": 1, "dense": pytest.approx(np.median(want))}


@pytest.mark.slow
def test_an_lsuv_run_trains_and_logs_its_scales_and_weight_updates(tmp_path, prepared_project):
    from initstudy.files import read_tsv

    prepared_project(tmp_path, epochs=1, weight_update_steps=3)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["experiments"]["lsuv"] = {"initializer": "lsuv", "activation": "relu6"}
    write_params(tmp_path, params)
    run = stage(tmp_path, "stages.train", "lsuv", "0")
    assert "LSUV: 52 conv layers rescaled to output variance 1" in run.stdout
    out = tmp_path / "models" / "lsuv" / "seed0"
    scales = read_tsv(out / "lsuv.tsv")
    assert len(scales) == 52 and all(abs(r["variance"] - 1) < LSUV_TOLERANCE for r in scales)
    updates = read_tsv(out / "weight_updates.tsv")
    assert sorted({r["step"] for r in updates}) == [1, 2, 3]
    assert len(updates) == 3 * 53  # 52 convs and the classifier, per step
    assert all(r["update_ratio"] > 0 for r in updates)
    plot = (out / "live" / "plots" / "custom" / "weight_updates.json").read_text()
    assert '"depthwise"' in plot and '"conv"' in plot


@pytest.mark.slow
def test_lsuv_in_the_grid_keeps_the_signal_where_he_with_keras_fan_loses_it():
    from initstudy.diagnostics import grid_cell

    batch = images(16)
    labels = np.arange(16) % 10
    inputs = {"num_classes": 10, "input_size": 32}

    def cell(initializer):
        return grid_cell("relu6", initializer, False, "keras", [0], 32, batch, labels, inputs)

    lsuv_cell, he_cell = cell("lsuv"), cell("he_normal")
    # LSUV sets every conv's output variance to 1, so the last conv's signal is within a
    # decade of the first's; He's tiny Keras-fan depthwise kernels lose it by many decades
    assert abs(np.log10(lsuv_cell["signal_ratio"])) < 1
    assert he_cell["signal_ratio"] is None or np.log10(he_cell["signal_ratio"]) < -3
