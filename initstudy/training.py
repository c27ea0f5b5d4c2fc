"""One training run (experiment x seed): resumable, divergence-aware, bit-for-bit on a CPU."""
import dataclasses
import glob
import hashlib
import json
import math
import os
import shutil
import time

from initstudy.data import PREPARED, fixed_batch, make_dataset
from initstudy.files import read_json, save_model, write_json, write_tsv
from initstudy.paths import BN_RAW, timings_path

CHECKPOINTS = ".checkpoints"  # outside DVC's outputs, so the train stage keeps its run-cache


def learning_rate_schedule(schedule, rate, total_steps):
    """constant: the reference's plain SGD(rate); cosine and linear decay from `rate` to 0
    over the whole training (Keras' own schedules), so the last steps barely move."""
    import keras

    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(rate, total_steps, alpha=0.0)
    if schedule == "linear":
        return keras.optimizers.schedules.PolynomialDecay(rate, total_steps, 0.0, power=1.0)
    return rate


def precise_bn_batches(manifest, train):
    """The fixed training batches precise BN averages over, held in memory: the same in
    every epoch, run and experiment, a resumed run included (one shuffle with seed 0; a
    tf.data shuffle would reshuffle on every pass); empty when train.precise_bn_batches is 0."""
    if train.precise_bn_batches == 0:
        return []
    return list(make_dataset(PREPARED, manifest, "train", train.batch_size,
                             shuffle_seed=0).take(train.precise_bn_batches))


def run_key(study, experiment, seed, manifest):
    """Names the checkpoint of a run: everything its result depends on, code included."""
    code = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "*.py"))):
        with open(path, "rb") as f:
            code.update(f.read())
    train = {k: v for k, v in dataclasses.asdict(study.train).items()
             if k not in ("seeds", "parallel_runs")}  # neither changes a run's result
    inputs = {"model": dataclasses.asdict(study.model), "train": train,
              "experiment": dataclasses.asdict(experiment), "seed": seed,
              "shards": {s: [x["sha256"] for x in v["shards"]]
                         for s, v in manifest["splits"].items()},
              "code": code.hexdigest()}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def epoch_scores(model, validation_ds, inference_ds, bn_ds):
    """The model at an epoch's end in inference mode, on the validation split and on a fixed,
    stratified subset of the training split (Keras' `accuracy` is a running mean with BN in
    training mode): first with BN's statistics as training left them (`_raw`), then after
    precise BN on `bn_ds`, the numbers the study reports; the model keeps the recalibrated
    statistics. Returns (scores, the raw statistics)."""
    from initstudy import batchnorm
    from initstudy.evaluation import score

    def scores(suffix):
        _, _, val_accuracy, val_loss = score(model, validation_ds)
        _, _, inference_accuracy, inference_loss = score(model, inference_ds)
        return {f"val_accuracy{suffix}": val_accuracy, f"val_loss{suffix}": val_loss,
                f"inference_accuracy{suffix}": inference_accuracy,
                f"inference_loss{suffix}": inference_loss}

    raw = batchnorm.statistics(model)
    logs = scores("_raw")
    if batchnorm.recalibrate(model, bn_ds):
        logs.update(scores(""))
    else:  # nothing recalibrated (no BN, or precise BN off): the same numbers
        logs.update({k.removesuffix("_raw"): v for k, v in logs.items()})
    return logs, raw


def save_checkpoint(ckpt, model, live_dir, state, raw_stats):
    """A resumable state of a run, written whole beside the last one and swapped in; its
    state.json goes last, so a folder holding one is complete (see checkpoint_to_resume)."""
    from initstudy import batchnorm

    tmp = ckpt + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_model(model, os.path.join(tmp, "model.keras"))
    shutil.copytree(live_dir, os.path.join(tmp, "live"))
    batchnorm.save_statistics(os.path.join(tmp, BN_RAW), raw_stats)
    write_json(os.path.join(tmp, "state.json"), state)
    shutil.rmtree(ckpt, ignore_errors=True)
    os.replace(tmp, ckpt)


def checkpoint_to_resume(ckpt):
    """The complete checkpoint folder of a run, or None: `ckpt`, or its new state when a
    kill came after the old one was removed and before the new one was renamed."""
    for folder in (ckpt, ckpt + ".tmp"):
        if os.path.exists(os.path.join(folder, "state.json")):
            return folder
    return None


def staging_dir(name, seed):
    """Where a run writes its outputs while it trains: a folder of its own beside the
    checkpoints, outside DVC's outputs, moved into models/ by publish() once the run is done.
    A training that outlived its stage (killed dvc) thus never writes into a newer run's
    models/. Folders that earlier attempts of this run left are removed."""
    for old in glob.glob(os.path.join(CHECKPOINTS, f".{name}-seed{seed}.*.staging")):
        shutil.rmtree(old, ignore_errors=True)
    return os.path.join(CHECKPOINTS, f".{name}-seed{seed}.{os.getpid()}.staging")


def publish(staging, out):
    """A finished run's outputs (staging_dir) in place of `out`, whatever it held."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.move(staging, out)  # a rename (on another file system, a copy)


def train_run(study, experiment, seed, manifest, out):
    """Trains one run of a config.Experiment into `out` (model.keras, history.json, live/),
    resuming from its checkpoint when an earlier attempt with the same inputs was interrupted.
    Returns the epoch in which the loss stopped being finite, or None."""
    import keras
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from initstudy import batchnorm, device
    from initstudy.initializers import LSUV_MAX_PASSES, LSUV_TOLERANCE
    from initstudy.model import build_for_experiment
    from initstudy.updates import KINDS, WeightUpdates, median_by_kind

    train, name = study.train, experiment.name
    settings = device.resolve(train)
    device.apply(settings)
    if settings.deterministic:
        device.make_deterministic(seed)  # same params + seed -> same weights, bit for bit
    else:
        keras.utils.set_random_seed(seed)

    count = manifest["splits"]["train"]["count"]
    steps = math.ceil(count / train.batch_size)
    ckpt = os.path.join(CHECKPOINTS, f"{name}-seed{seed}-{run_key(study, experiment, seed, manifest)}")
    # train_seconds: each epoch's training time (validation excluded), for logs/ alone
    state = {"epochs": [], "train_seconds": [], "lsuv": None, "weight_updates": []}
    raw_stats = {}  # BN statistics as training left them at the last epoch's end
    os.makedirs(out, exist_ok=True)
    live_dir = os.path.join(out, "live")
    resume = checkpoint_to_resume(ckpt)
    if resume:
        state = read_json(os.path.join(resume, "state.json"))
        model = keras.models.load_model(os.path.join(resume, "model.keras"))
        shutil.copytree(os.path.join(resume, "live"), live_dir, dirs_exist_ok=True)
        if os.path.exists(os.path.join(resume, BN_RAW)):
            raw_stats = batchnorm.load_statistics(os.path.join(resume, BN_RAW))
        done = "finished" if len(state["epochs"]) >= train.epochs else "resuming"
        print(f"{done} {name} seed {seed} after epoch {len(state['epochs'])} from {resume}")
    else:
        # LSUV fits its scales to the first batch this run will train on (seeded, logged)
        images = fixed_batch(PREPARED, manifest, train.batch_size, seed)[0] \
            if experiment.initializer == "lsuv" else None
        model, state["lsuv"] = build_for_experiment(study.model, experiment, manifest, seed, images)
        if state["lsuv"]:
            passes = sum(r["passes"] for r in state["lsuv"])
            print(f"LSUV: {len(state['lsuv'])} conv layers rescaled to output variance 1 "
                  f"+- {LSUV_TOLERANCE} in {passes} passes (at most {LSUV_MAX_PASSES} per layer) "
                  f"on the first {train.batch_size} training images of seed {seed}")
        model.compile(optimizer=keras.optimizers.SGD(learning_rate_schedule(
                          train.schedule, experiment.learning_rate, train.epochs * steps)),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                      jit_compile=settings.jit_compile,
                      steps_per_execution=settings.steps_per_execution)
    start = len(state["epochs"])
    live = Live(live_dir, resume=start > 0, dvcyaml=False, save_dvc_exp=False)
    live.log_params(dataclasses.asdict(settings))
    if experiment.initializer == "lsuv":
        live.log_params({"lsuv_tolerance": LSUV_TOLERANCE, "lsuv_max_passes": LSUV_MAX_PASSES,
                         "lsuv_images": train.batch_size, "lsuv_batch_seed": seed})
    updates = WeightUpdates(train.weight_update_steps)
    updates.rows = state["weight_updates"]
    print(f"device settings: {settings}")
    if start:
        live.step = start  # DVCLive's resume would restart at 0 after a single epoch

    def scores_at_epoch_end(epoch, logs):
        scores, raw = epoch_scores(model, validation_ds, inference_ds, bn_ds)
        logs.update(scores)
        raw_stats.clear()
        raw_stats.update(raw)

    class Checkpoint(keras.callbacks.Callback):
        """Times each epoch's training (not its validation) and saves a resumable state."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds = time.perf_counter() - self.start

        def on_epoch_end(self, epoch, logs=None):
            state["epochs"].append({"epoch": epoch + 1,
                                    **{k: finite_or_none(v) for k, v in logs.items()}})
            state["train_seconds"].append(self.seconds)
            state["weight_updates"] = updates.rows
            save_checkpoint(ckpt, self.model, live_dir, state, raw_stats)

    if start < train.epochs:
        print(f"training {name} seed {seed}: {experiment.initializer} + "
              f"{experiment.activation}, epochs {start + 1}-{train.epochs} of {count} images")
        train_ds = make_dataset(PREPARED, manifest, "train", train.batch_size, seed,
                                epochs=(start, train.epochs))
        # the first N training records, stored class-interleaved: a fixed stratified subset
        inference_ds = make_dataset(PREPARED, manifest, "train", train.batch_size,
                                    limit=train.inference_images)
        validation_ds = make_dataset(PREPARED, manifest, "validation", train.batch_size)
        bn_ds = precise_bn_batches(manifest, train)
        # the epoch's scores, then DVCLive (which logs them), then Checkpoint (which holds
        # this epoch's live/ files).
        model.fit(train_ds, epochs=train.epochs, initial_epoch=start, steps_per_epoch=steps,
                  verbose=2, shuffle=False,  # tf.data shuffles
                  callbacks=[keras.callbacks.TerminateOnNaN(), updates,
                             keras.callbacks.LambdaCallback(on_epoch_end=scores_at_epoch_end),
                             DVCLiveCallback(live=live), Checkpoint()])
    else:
        live.end()

    epochs = state["epochs"]
    # any metric not finite (the training loss stops the run; a validation loss may go first)
    diverged = next((e["epoch"] for e in epochs if None in e.values()), None)
    finite = [e for e in epochs if all(v is not None for v in e.values())]
    save_model(model, os.path.join(out, "model.keras"))
    batchnorm.save_statistics(os.path.join(out, BN_RAW), raw_stats)
    write_tsv(os.path.join(out, "weight_updates.tsv"), updates.rows,
              ("step", "layer", "kind", "weight_norm", "update_ratio"))
    medians = median_by_kind(updates.rows)
    if medians:
        live.log_plot("weight_updates", medians, x="step",
                      y=[k for k in KINDS if k in medians[0]], template="linear",
                      title="||dW|| / ||W|| per step (median over layers of each kind)",
                      y_label="relative kernel change per step")
    if state["lsuv"]:
        write_tsv(os.path.join(out, "lsuv.tsv"), state["lsuv"],
                  ("layer", "passes", "variance_before", "variance"))
    # The finished run's checkpoint stays: with more seeds, or the same inputs again after
    # other changes, the stage rebuilds this run's outputs from it instead of training.
    for other in glob.glob(os.path.join(CHECKPOINTS, f"{name}-seed{seed}-*")):
        if other != ckpt:
            shutil.rmtree(other, ignore_errors=True)
    write_json(os.path.join(out, "history.json"), {
        "experiment": name, "initializer": experiment.initializer,
        "activation": experiment.activation, "learning_rate": experiment.learning_rate,
        "schedule": train.schedule, "precise_bn_batches": train.precise_bn_batches,
        "seed": seed, "epochs": len(epochs), "diverged": diverged is not None,
        "diverged_epoch": diverged, "last_finite": finite[-1] if finite else None,
        "settings": dataclasses.asdict(settings),
        "history": epochs})
    os.makedirs(os.path.dirname(timings_path(name, seed)), exist_ok=True)
    write_json(timings_path(name, seed), {
        "epoch_seconds": state["train_seconds"], "train_seconds": sum(state["train_seconds"]),
        "images_per_second": count * len(epochs) / sum(state["train_seconds"])})
    return diverged
