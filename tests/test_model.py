import itertools
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from conftest import ROOT, subprocess_env
from initstudy.files import save_model
from initstudy.initializers import expected_std
from initstudy.model import BLOCKS, build_mobilenet_v2


def kernels(model):
    """(layer, kernel array, is depthwise) for every conv and depthwise layer."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            yield layer, layer.kernel.numpy(), True
        elif isinstance(layer, keras.layers.Conv2D):
            yield layer, layer.kernel.numpy(), False


def count(model, cls):
    return sum(type(layer) is cls for layer in model.layers)


def test_reference_model_has_the_published_parameter_count():
    model = build_mobilenet_v2(10, 224, "he_normal", "relu6")
    assert model.count_params() == 2_270_794
    assert model.output_shape == (None, 10)


def test_layer_structure_follows_the_reference():
    model = build_mobilenet_v2(10, 224, "glorot_normal", "relu6", input_size=32)
    convs = list(kernels(model))
    # stem conv + stem depthwise + stem project, 3 per bottleneck, the 1280 top conv
    assert len(convs) == 3 + 3 * len(BLOCKS) + 1 == 52
    assert count(model, keras.layers.BatchNormalization) == 52
    assert count(model, keras.layers.ReLU) == 2 + 2 * len(BLOCKS) + 1
    assert all(layer.max_value == 6 for layer in model.layers if isinstance(layer, keras.layers.ReLU))
    assert count(model, keras.layers.Add) == 10  # blocks that keep their shape
    assert count(model, keras.layers.ZeroPadding2D) == 4  # the stride-2 blocks 1, 3, 6, 13
    assert all(not layer.use_bias for layer, _, _ in convs)
    assert model.get_layer("resize").output.shape[1:3] == (224, 224)
    assert model.get_layer("top_conv").output.shape[1:] == (7, 7, 1280)
    assert model.get_layer("block16_project").output.shape[-1] == 320


def test_selu_and_no_batch_norm_variants():
    model = build_mobilenet_v2(10, 32, "lecun_normal", "selu", batch_norm=False)
    assert count(model, keras.layers.BatchNormalization) == 0
    assert count(model, keras.layers.ReLU) == 0
    acts = [layer for layer in model.layers if isinstance(layer, keras.layers.Activation)]
    # one activation after the stem conv and depthwise, two per bottleneck, one after the top
    assert len(acts) == 2 + 2 * len(BLOCKS) + 1 and all(a.activation.__name__ == "selu" for a in acts)


@pytest.mark.parametrize("initializer", ["random_normal", "glorot_normal", "he_normal",
                                         "lecun_normal", "he_uniform", "orthogonal"])
@pytest.mark.parametrize("depthwise_fan", ["keras", "per_channel"])
def test_every_kernel_std_matches_its_formula(initializer, depthwise_fan):
    model = build_mobilenet_v2(10, 32, initializer, "relu6", depthwise_fan=depthwise_fan)
    for layer, kernel, depthwise in kernels(model):
        want = expected_std(initializer, kernel.shape, depthwise, depthwise_fan)
        # sampling error of a std from n draws is about std / sqrt(2n); allow 5 of them
        tolerance = 5 / np.sqrt(2 * kernel.size)
        assert abs(kernel.std() / want - 1) < tolerance, (layer.name, kernel.std(), want)
        assert abs(kernel.mean()) < 5 * want / np.sqrt(kernel.size), layer.name


def test_no_two_layers_share_weights_and_seeds_change_them():
    model = build_mobilenet_v2(10, 32, "he_normal", "relu6", seed=0)
    weights = [k for _, k, _ in kernels(model)]
    for a, b in itertools.combinations(weights, 2):
        if a.shape == b.shape:
            assert not np.array_equal(a, b)
    again = [k for _, k, _ in kernels(build_mobilenet_v2(10, 32, "he_normal", "relu6", seed=0))]
    other = [k for _, k, _ in kernels(build_mobilenet_v2(10, 32, "he_normal", "relu6", seed=1))]
    assert all(np.array_equal(a, b) for a, b in zip(weights, again))
    assert not any(np.array_equal(a, b) for a, b in zip(weights, other))


def test_skipinit_makes_every_residual_block_the_identity_at_initialization():
    model = build_mobilenet_v2(10, 32, "he_normal", "relu", batch_norm=False,
                               depthwise_fan="per_channel", residual_scale="skipinit")
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 10  # MobileNetV2's residual blocks
    scales = [layer for layer in model.layers if layer.__class__.__name__ == "ResidualScale"]
    assert len(scales) == 10 and all(float(s.scale.numpy()) == 0.0 for s in scales)
    assert all(s.trainable_weights for s in scales)  # learnable, as SkipInit's scalar
    probe = keras.Model(model.inputs, [[a.output, a.input[1]] for a in adds])
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("uint8")
    for out, shortcut in probe(images):
        np.testing.assert_array_equal(out.numpy(), shortcut.numpy())
    plain = build_mobilenet_v2(10, 32, "he_normal", "relu", batch_norm=False,
                               depthwise_fan="per_channel")
    assert plain.count_params() == model.count_params() - 10


def test_without_bn_the_residual_stream_grows_with_each_add_unless_skipinit():
    from initstudy.diagnostics import layer_stats

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3)).astype("uint8")
    labels = rng.integers(0, 10, 16)

    def residual_stds(scale):
        model = build_mobilenet_v2(10, 32, "he_normal", "relu", batch_norm=False,
                                   depthwise_fan="per_channel", residual_scale=scale)
        rows = layer_stats(model, images, labels, "he_normal", "relu", "per_channel")
        return [r["signal_std"] for r in rows if r["kind"] == "residual"]

    plain, skip = residual_stds("none"), residual_stds("skipinit")
    # the adds of blocks 2, 4-5, 7-9, 11-12, 14-15; in 4-5 and 7-9 the stream keeps its
    # shape, and without SkipInit each add makes it larger
    assert plain[2] > 1.1 * plain[1] and plain[5] > 1.1 * plain[4] > 1.21 * plain[3]
    assert max(plain) / plain[0] > 4
    assert skip[2] == skip[1] and skip[5] == skip[4] == skip[3]  # identity blocks
    assert max(skip) / min(skip) < 10  # within a decade over the whole depth


def test_a_skipinit_model_saves_and_loads(tmp_path):
    model = build_mobilenet_v2(10, 32, "he_normal", "relu", batch_norm=False,
                               residual_scale="skipinit")
    save_model(model, str(tmp_path / "m.keras"))  # renumbered shared-object ids load too
    again = keras.models.load_model(tmp_path / "m.keras")
    for a, b in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_the_same_model_saved_in_two_processes_seconds_apart_has_the_same_bytes(tmp_path):
    """Keras writes the save time and Python object ids into model.keras; save_model does
    not, so a rerun's models keep their DVC hash."""
    script = ("import sys, keras; from initstudy.files import save_model; "
              "from initstudy.model import build_mobilenet_v2; keras.utils.set_random_seed(0); "
              "save_model(build_mobilenet_v2(10, 32, 'he_normal', 'relu6'), sys.argv[1])")
    for name in ("a.keras", "b.keras"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], cwd=ROOT,
                       env=subprocess_env(), check=True, timeout=300)
        time.sleep(2)  # zip entry times have a 2 s resolution
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
