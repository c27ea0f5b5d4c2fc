"""The training recipe: precise BN, the learning-rate schedule, seeds side by side."""
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import yaml

from conftest import stage, write_params


def small_bn_model(seed=0):
    """A small conv net with BN after every conv: enough to learn an easy task in seconds."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for filters in (8, 16):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def two_classes(n, seed):
    """Class 1 is brighter than class 0, with noise: linearly separable by the mean."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.normal(0, 1, (n, 8, 8, 3)) + 1.5 * labels[:, None, None, None]
    return images.astype("float32"), labels.astype("int32")


def accuracy(model, images, labels):
    return float((model.predict(images, verbose=0).argmax(1) == labels).mean())


def test_wrong_bn_statistics_score_near_chance_and_precise_bn_repairs_them():
    import keras
    import tensorflow as tf

    from initstudy import batchnorm

    images, labels = two_classes(2000, seed=0)
    test_images, test_labels = two_classes(1000, seed=1)
    model = small_bn_model()
    model.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, labels, batch_size=50, epochs=3, verbose=0)
    trained = accuracy(model, test_images, test_labels)
    assert trained > 0.9

    # deliberately wrong population statistics: far-off means, tiny variances
    wrong = {name: (mean + 50.0, variance * 1e-4)
             for name, (mean, variance) in batchnorm.statistics(model).items()}
    batchnorm.set_statistics(model, wrong)
    broken = accuracy(model, test_images, test_labels)
    assert abs(broken - 0.5) < 0.1, broken

    weights = [w.copy() for w in model.get_weights()]
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(50).take(20)
    assert batchnorm.recalibrate(model, batches) == 20
    assert accuracy(model, test_images, test_labels) > 0.9
    # only the moving statistics changed, and momentum is back to Keras' own
    bn_vars = {id(v) for layer in batchnorm.batch_norm_layers(model)
               for v in (layer.moving_mean, layer.moving_variance)}
    for variable, before in zip(model.weights, weights):
        if id(variable) not in bn_vars:
            np.testing.assert_array_equal(variable.numpy(), before)
    assert all(layer.momentum == 0.99 for layer in batchnorm.batch_norm_layers(model))


def test_precise_bn_is_the_plain_average_of_the_batch_statistics():
    import tensorflow as tf

    from initstudy import batchnorm

    model = small_bn_model()
    images, labels = two_classes(200, seed=2)
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(50)
    batchnorm.recalibrate(model, batches)
    first = batchnorm.batch_norm_layers(model)[0]
    conv = model.layers[1]  # the first conv, whose output the first BN normalizes
    outputs = [conv(x).numpy().reshape(-1, conv.filters) for x, _ in batches]
    np.testing.assert_allclose(first.moving_mean.numpy(),
                               np.mean([o.mean(0) for o in outputs], 0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(first.moving_variance.numpy(),
                               np.mean([o.var(0) for o in outputs], 0), rtol=1e-3, atol=1e-6)


def test_raw_statistics_round_trip(tmp_path):
    from initstudy import batchnorm

    model = small_bn_model()
    stats = {k: (m + 1, v * 2) for k, (m, v) in batchnorm.statistics(model).items()}
    batchnorm.save_statistics(tmp_path / "bn.npz", stats)
    loaded = batchnorm.load_statistics(tmp_path / "bn.npz")
    assert loaded.keys() == stats.keys()
    for name in stats:
        np.testing.assert_array_equal(loaded[name][0], stats[name][0])
        np.testing.assert_array_equal(loaded[name][1], stats[name][1])


def test_a_checkpoint_counts_only_once_complete(tmp_path, monkeypatch):
    """A kill while the next checkpoint is written leaves the last one to resume from; a kill
    after the last one is removed and before the next is renamed leaves the next, complete."""
    from initstudy import batchnorm, training

    model, live, ckpt = small_bn_model(), tmp_path / "live", str(tmp_path / "run")
    live.mkdir()
    assert training.checkpoint_to_resume(ckpt) is None
    training.save_checkpoint(ckpt, model, str(live), {"epochs": [1]}, {})
    assert training.checkpoint_to_resume(ckpt) == ckpt

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(batchnorm, "save_statistics", killed)  # the step before state.json
    with pytest.raises(KeyboardInterrupt):
        training.save_checkpoint(ckpt, model, str(live), {"epochs": [1, 2]}, {})
    assert training.checkpoint_to_resume(ckpt) == ckpt
    assert json.loads(open(os.path.join(ckpt, "state.json")).read())["epochs"] == [1]

    monkeypatch.undo()
    training.save_checkpoint(str(tmp_path / "next"), model, str(live), {"epochs": [1, 2]}, {})
    shutil.rmtree(ckpt + ".tmp")  # the killed attempt's, as save_checkpoint would
    os.rename(tmp_path / "next", ckpt + ".tmp")
    shutil.rmtree(ckpt)
    assert training.checkpoint_to_resume(ckpt) == ckpt + ".tmp"


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_schedules_start_at_the_rate_and_decaying_ones_end_at_zero(schedule):
    from initstudy.training import learning_rate_schedule

    rate = learning_rate_schedule(schedule, 0.05, 1000)
    at = (lambda step: float(rate(step))) if callable(rate) else (lambda step: rate)
    assert at(0) == pytest.approx(0.05)
    assert at(1000) == pytest.approx(0.05 if schedule == "constant" else 0.0, abs=1e-9)
    if schedule != "constant":
        assert 0 < at(500) < 0.05


def test_parallel_runs_is_up_to_two_per_core_and_never_more_than_the_runs(monkeypatch):
    from initstudy import parallel

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert parallel.parallel_runs("auto", 3) == 3
    assert parallel.parallel_runs("auto", 5) == 4
    assert parallel.parallel_runs("auto", 1) == 1
    assert parallel.parallel_runs(3, 5) == 3
    assert parallel.parallel_runs(4, 2) == 2


def weights_digest(folder):
    import keras

    model = keras.models.load_model(folder / "model.keras")
    return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()


@pytest.mark.slow
def test_seeds_side_by_side_give_the_weights_of_one_at_a_time(prepared_project, tmp_path):
    """The train stage runs an experiment's seeds as parallel processes: each run's weights,
    history and BN statistics are those of the same run trained alone."""
    side_by_side = prepared_project(tmp_path / "parallel", seeds=[0, 1], epochs=1)
    run = stage(side_by_side, "stages.train", "he_normal")
    assert "2 run(s) side by side" in run.stdout and "cores busy on average" in run.stdout
    alone = prepared_project(tmp_path / "alone", seeds=[0, 1], epochs=1)
    for seed in (0, 1):
        stage(alone, "stages.train", "he_normal", str(seed))
    for seed in (0, 1):
        a, b = (root / "models" / "he_normal" / f"seed{seed}" for root in (side_by_side, alone))
        assert weights_digest(a) == weights_digest(b)
        history = [json.loads((x / "history.json").read_text())["history"] for x in (a, b)]
        assert history[0] == history[1]
        assert (a / "bn_raw.npz").read_bytes() == (b / "bn_raw.npz").read_bytes()
    assert weights_digest(side_by_side / "models/he_normal/seed0") != \
        weights_digest(side_by_side / "models/he_normal/seed1")


@pytest.mark.slow
def test_a_failing_seed_stops_the_stage_with_its_one_line(prepared_project, tmp_path):
    from initstudy.config import load_study
    from initstudy.shards import load_manifest
    from initstudy.training import CHECKPOINTS, run_key

    folder = prepared_project(tmp_path / "p", seeds=[0, 1], epochs=1)
    study = load_study(str(folder / "params.yaml"))
    manifest = load_manifest(str(folder / "data" / "prepared"))
    key = run_key(study, study.experiments["he_normal"], 1, manifest)
    broken = folder / CHECKPOINTS / f"he_normal-seed1-{key}"
    broken.mkdir(parents=True)
    (broken / "state.json").write_text("not json")  # seed 1 fails when it reads it
    run = stage(folder, "stages.train", "he_normal", check=False)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: he_normal seed 1 failed"), lines


@pytest.mark.slow
def test_a_runs_test_scores_are_those_of_its_saved_model_and_raw_statistics(prepared_project,
                                                                            tmp_path):
    """A run scores the test split with the model it holds; the evaluate stage gathers those
    scores. They are what its saved model (precise BN's statistics) and its saved raw BN
    statistics score in a fresh process, prediction for prediction."""
    import keras

    from initstudy import batchnorm
    from initstudy.evaluation import score
    from initstudy.model import ResidualScale
    from initstudy.shards import load_manifest, make_dataset

    folder = prepared_project(tmp_path / "p", epochs=1)
    stage(folder, "stages.train", "he_normal")
    run = folder / "models" / "he_normal" / "seed0"
    scored = json.loads((run / "test.json").read_text())
    data = str(folder / "data" / "prepared")
    manifest = load_manifest(data)
    test_ds = make_dataset(data, manifest, "test", 20)
    model = keras.models.load_model(run / "model.keras",
                                    custom_objects={"ResidualScale": ResidualScale})
    labels, predicted, accuracy, loss = score(model, test_ds)
    assert scored["labels"] == labels.tolist() and scored["predicted"] == predicted.tolist()
    assert scored["classes"] == manifest["classes"]
    assert (scored["test_accuracy"], scored["test_loss"]) == pytest.approx((accuracy, loss),
                                                                           rel=1e-6)
    batchnorm.set_statistics(model, batchnorm.load_statistics(run / "bn_raw.npz"))
    _, _, accuracy_raw, loss_raw = score(model, test_ds)
    assert (scored["test_accuracy_raw"], scored["test_loss_raw"]) == pytest.approx(
        (accuracy_raw, loss_raw), rel=1e-6)
    assert loss_raw != loss  # the two statistics differ: the check above could fail

    evaluated = stage(folder, "stages.evaluate", "he_normal")
    assert f"he_normal seed 0: test accuracy {accuracy:.4f}" in evaluated.stdout
    runs = json.loads((folder / "eval" / "he_normal" / "runs.json").read_text())
    assert runs[0]["test_accuracy"] == scored["test_accuracy"]
    predictions = (folder / "eval" / "he_normal" / "predictions" / "seed0.csv").read_text()
    assert predictions.count("\n") == len(labels) + 1


@pytest.mark.slow
def test_a_bn_free_skipinit_run_trains_and_the_evaluate_stage_scores_it(prepared_project,
                                                                        tmp_path):
    """The trained grid's settings end to end: a model with the study's own ResidualScale
    layer and no BN trains, scores the test split and is evaluated."""
    folder = prepared_project(tmp_path / "p", epochs=1)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["model"].update(batch_norm=False, residual_scale="skipinit",
                           depthwise_fan="per_channel")
    params["train"].update(precise_bn_batches=0)
    write_params(folder, params)
    stage(folder, "stages.train", "he_normal")
    run = stage(folder, "stages.evaluate", "he_normal")
    assert "he_normal seed 0: test accuracy " in run.stdout
    metrics = json.loads((folder / "metrics" / "he_normal.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["diverged"] == 0


def test_train_optimizer_builds_the_named_optimizer_on_the_schedule():
    """plain SGD (the reference's and the default: the same call as before the option, so the
    default study trains the same weights), SGD with momentum 0.9, Adam; each on the schedule."""
    import keras

    from initstudy.training import learning_rate_schedule, make_optimizer

    schedule = learning_rate_schedule("cosine", 0.05, 100)
    sgd, momentum, adam = (make_optimizer(n, schedule) for n in ("sgd", "momentum", "adam"))
    assert type(sgd) is keras.optimizers.SGD and sgd.momentum == 0
    assert type(momentum) is keras.optimizers.SGD and momentum.momentum == 0.9
    assert type(adam) is keras.optimizers.Adam
    for optimizer in (sgd, momentum, adam):
        assert float(optimizer.learning_rate) == pytest.approx(0.05)  # the schedule at step 0
