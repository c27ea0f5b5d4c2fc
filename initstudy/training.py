"""One training run (experiment x seed): resumable, divergence-aware, bit-for-bit on a CPU."""
import contextlib
import dataclasses
import glob
import hashlib
import json
import math
import os
import shutil
import time

from initstudy.shards import PREPARED, fixed_batch, make_dataset
from initstudy.files import read_json, save_model, write_json, write_tsv
from initstudy.paths import BN_RAW, TEST_SCORES, timings_path
from initstudy.runner import process_seconds

CHECKPOINTS = ".checkpoints"  # outside DVC's outputs, so the train stage keeps its run-cache


def steps_per_epoch(manifest, batch_size):
    """SGD steps in one epoch of the train split: the last, partial batch counts as one."""
    return math.ceil(manifest["splits"]["train"]["count"] / batch_size)


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


class Stopwatch:
    """Seconds per phase of a run, what write_timings logs: `with clock("scoring"): ...`."""

    def __init__(self):
        self.seconds = {}

    def add(self, phase, seconds):
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    @contextlib.contextmanager
    def __call__(self, phase):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - start)


def epoch_scores(model, validation_ds, inference_ds, bn_ds, clock, raw=True):
    """The model at an epoch's end in inference mode, on the validation split and on a fixed,
    stratified subset of the training split (Keras' `accuracy` is a running mean with BN in
    training mode): with `raw`, first with BN's statistics as training left them (`_raw`:
    the study reports only the last epoch's), then after precise BN on `bn_ds`, the numbers
    the study reports; the model keeps the recalibrated statistics. Returns (scores, the raw
    statistics); `clock` gets the seconds of scoring and of precise BN."""
    from initstudy import batchnorm
    from initstudy.evaluation import score

    def scores(suffix):
        _, _, val_accuracy, val_loss = score(model, validation_ds)
        _, _, inference_accuracy, inference_loss = score(model, inference_ds)
        return {f"val_accuracy{suffix}": val_accuracy, f"val_loss{suffix}": val_loss,
                f"inference_accuracy{suffix}": inference_accuracy,
                f"inference_loss{suffix}": inference_loss}

    statistics, logs = batchnorm.statistics(model), {}
    if raw:
        with clock("scoring"):
            logs = scores("_raw")
    with clock("precise BN"):
        recalibrated = batchnorm.recalibrate(model, bn_ds)
    if recalibrated or not raw:
        with clock("scoring"):
            logs.update(scores(""))
    else:  # nothing recalibrated (no BN, or precise BN off): the same numbers
        logs.update({k.removesuffix("_raw"): v for k, v in logs.items()})
    return logs, statistics


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


@dataclasses.dataclass
class Run:
    """One run as train_run's steps hand it on; `state` is what a checkpoint keeps of it."""
    study: object
    experiment: object
    seed: int
    manifest: dict
    out: str
    settings: object  # device.DeviceSettings
    ckpt: str
    model: object = None
    # train_seconds: each epoch's training steps' time (step_clock), for logs/ alone
    state: dict = dataclasses.field(default_factory=lambda: {
        "epochs": [], "train_seconds": [], "lsuv": None, "weight_updates": []})
    # BN statistics as training left them at the last epoch's end
    raw_stats: dict = dataclasses.field(default_factory=dict)
    clock: Stopwatch = dataclasses.field(default_factory=Stopwatch)  # this process's phases
    epochs_trained: int = 0  # by this process (a resumed run trains only the rest)
    kernels: dict = None  # device.kernels()

    @property
    def train(self):
        return self.study.train

    @property
    def name(self):
        return self.experiment.name

    @property
    def train_images(self):
        return self.manifest["splits"]["train"]["count"]

    @property
    def steps(self):
        return steps_per_epoch(self.manifest, self.train.batch_size)

    @property
    def live_dir(self):
        return os.path.join(self.out, "live")


def seeded_device(train, seed):
    """The run's device settings, applied, and every random generator seeded."""
    import keras

    from initstudy import device, seeding

    settings = device.resolve(train)
    device.apply(settings)
    if settings.deterministic:
        seeding.make_deterministic(seed)  # same params + seed -> same weights, bit for bit
    else:
        keras.utils.set_random_seed(seed)
    return settings


def start_run(study, experiment, seed, manifest, out):
    """A Run with nothing done yet, its device ready and its checkpoint named."""
    settings = seeded_device(study.train, seed)
    key = run_key(study, experiment, seed, manifest)
    run = Run(study, experiment, seed, manifest, out, settings,
              ckpt=os.path.join(CHECKPOINTS, f"{experiment.name}-seed{seed}-{key}"))
    os.makedirs(out, exist_ok=True)
    return run


def resume_from_checkpoint(run):
    """The run as an earlier, interrupted attempt left it (state, model, live/ files, raw BN
    statistics), or False when none did."""
    import keras

    from initstudy import batchnorm

    folder = checkpoint_to_resume(run.ckpt)
    if not folder:
        return False
    run.state = read_json(os.path.join(folder, "state.json"))
    run.model = keras.models.load_model(os.path.join(folder, "model.keras"))
    shutil.copytree(os.path.join(folder, "live"), run.live_dir, dirs_exist_ok=True)
    if os.path.exists(os.path.join(folder, BN_RAW)):
        run.raw_stats = batchnorm.load_statistics(os.path.join(folder, BN_RAW))
    epochs = len(run.state["epochs"])
    done = "finished" if epochs >= run.train.epochs else "resuming"
    print(f"{done} {run.name} seed {run.seed} after epoch {epochs} from {folder}")
    return True


def make_optimizer(name, schedule):
    """The optimizer train.optimizer names, on the run's rate schedule: plain SGD (the
    reference's), SGD with momentum 0.9, or Adam with Keras' defaults (beta 0.9, 0.999)."""
    import keras

    if name == "momentum":
        return keras.optimizers.SGD(schedule, momentum=0.9)
    if name == "adam":
        return keras.optimizers.Adam(schedule)
    return keras.optimizers.SGD(schedule)


def build_and_compile(run):
    """A new model for the run, initialized (LSUV's passes recorded in its state) and compiled."""
    import keras

    from initstudy.initializers import LSUV_MAX_PASSES, LSUV_TOLERANCE
    from initstudy.model import build_for_experiment

    train, experiment, seed = run.train, run.experiment, run.seed
    # LSUV fits its scales to the first batch this run will train on (seeded, logged)
    images = fixed_batch(PREPARED, run.manifest, train.batch_size, seed)[0] \
        if experiment.initializer == "lsuv" else None
    run.model, run.state["lsuv"] = build_for_experiment(run.study.model, experiment, run.manifest,
                                                        seed, images)
    if run.state["lsuv"]:
        passes = sum(r["passes"] for r in run.state["lsuv"])
        print(f"LSUV: {len(run.state['lsuv'])} conv layers rescaled to output variance 1 "
              f"+- {LSUV_TOLERANCE} in {passes} passes (at most {LSUV_MAX_PASSES} per layer) "
              f"on the first {train.batch_size} training images of seed {seed}")
    schedule = learning_rate_schedule(train.schedule, experiment.learning_rate,
                                      train.epochs * run.steps)
    run.model.compile(optimizer=make_optimizer(train.optimizer, schedule),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                      jit_compile=run.settings.jit_compile,
                      steps_per_execution=run.settings.steps_per_execution)


def open_logs(run, start):
    """DVCLive on the run's live/ folder, going on after epoch `start`, with the run's
    parameters logged; and the ||dW||/||W|| logger, holding the rows logged so far."""
    from dvclive import Live

    from initstudy.initializers import LSUV_MAX_PASSES, LSUV_TOLERANCE
    from initstudy.updates import WeightUpdates

    live = Live(run.live_dir, resume=start > 0, dvcyaml=False, save_dvc_exp=False)
    live.log_params(dataclasses.asdict(run.settings))
    if run.experiment.initializer == "lsuv":
        live.log_params({"lsuv_tolerance": LSUV_TOLERANCE, "lsuv_max_passes": LSUV_MAX_PASSES,
                         "lsuv_images": run.train.batch_size, "lsuv_batch_seed": run.seed})
    from initstudy.device import kernels

    updates = WeightUpdates(run.train.weight_update_steps)
    updates.rows = run.state["weight_updates"]
    run.kernels = kernels()
    print(f"device settings: {run.settings}; kernels: oneDNN "
          f"{'on' if run.kernels['onednn'] else 'off'}, {run.kernels['isa']}, {run.kernels['cpu']}")
    if start:
        live.step = start  # DVCLive's resume would restart at 0 after a single epoch
    return live, updates


def step_clock(run, updates):
    """A Keras callback, first of all, timing each epoch's training steps: from the epoch's
    start to its last step's end, without the ||dW||/||W|| logger's time (`seconds`); the
    first step this process runs (tracing included) is also its own phase."""
    import keras

    class StepClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.fit_started = time.perf_counter()  # Keras' own work in fit before this

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.logged = time.perf_counter(), updates.seconds

        def on_train_batch_end(self, batch, logs=None):  # before the logger's, for this step
            self.seconds = time.perf_counter() - self.start - (updates.seconds - self.logged)
            if "first step" not in run.clock.seconds:
                run.clock.add("first step", self.seconds)

    return StepClock()


def checkpoint_callback(run, updates, clock):
    """A Keras callback that, at each epoch's end, records the epoch's scores and training
    time (`clock`: step_clock) in the run's state and saves a resumable checkpoint."""
    import keras

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            run.state["epochs"].append({"epoch": epoch + 1,
                                        **{k: finite_or_none(v) for k, v in logs.items()}})
            run.state["train_seconds"].append(clock.seconds)
            run.clock.add("training", clock.seconds)
            run.epochs_trained += 1
            run.state["weight_updates"] = updates.rows
            with run.clock("checkpoints"):
                save_checkpoint(run.ckpt, self.model, run.live_dir, run.state, run.raw_stats)

    return Checkpoint()


def fit_epochs(run, start, live, updates):
    """Trains the run's epochs after `start`, each scored, logged and checkpointed at its end."""
    import keras
    from dvclive.keras import DVCLiveCallback

    from initstudy.progress import progress_callback

    train, experiment, manifest = run.train, run.experiment, run.manifest
    print(f"training {run.name} seed {run.seed}: {experiment.initializer} + "
          f"{experiment.activation}, epochs {start + 1}-{train.epochs} of {run.train_images} images")
    train_ds = make_dataset(PREPARED, manifest, "train", train.batch_size, run.seed,
                            epochs=(start, train.epochs))
    # the first N training records, stored class-interleaved: a fixed stratified subset
    inference_ds = make_dataset(PREPARED, manifest, "train", train.batch_size,
                                limit=train.inference_images)
    validation_ds = make_dataset(PREPARED, manifest, "validation", train.batch_size)
    bn_ds = precise_bn_batches(manifest, train)

    def scores_at_epoch_end(epoch, logs):
        scores, run.raw_stats = epoch_scores(run.model, validation_ds, inference_ds, bn_ds,
                                             run.clock, raw=epoch + 1 == train.epochs)
        logs.update(scores)

    # the epoch's scores, then DVCLive (which logs them), then Checkpoint (which holds
    # this epoch's live/ files); Progress only where a person watches (progress.py).
    progress = progress_callback(train.epochs, run.steps, train.batch_size)
    class TimedDVCLive(DVCLiveCallback):
        def on_epoch_end(self, epoch, logs=None):
            with run.clock("DVCLive"):
                super().on_epoch_end(epoch, logs)

        def on_train_end(self, logs=None):
            with run.clock("DVCLive"):
                super().on_train_end(logs)

    clock = step_clock(run, updates)
    run.clock.add("start-up", process_seconds())
    measured, logged, fit_start = sum(run.clock.seconds.values()), updates.seconds, \
        time.perf_counter()
    run.model.fit(train_ds, epochs=train.epochs, initial_epoch=start, steps_per_epoch=run.steps,
                  verbose=2, shuffle=False,  # tf.data shuffles
                  callbacks=[clock, keras.callbacks.TerminateOnNaN(), updates,
                             keras.callbacks.LambdaCallback(on_epoch_end=scores_at_epoch_end),
                             TimedDVCLive(live=live), checkpoint_callback(run, updates, clock),
                             *([progress] if progress else [])])
    # the rest of fit's time: Keras' own work before, between and after the epochs (the first
    # step is within `training` too); its part before training begins apart
    inside = (sum(run.clock.seconds.values()) - measured - run.clock.seconds.get("first step", 0)
              + updates.seconds - logged)
    before = clock.fit_started - fit_start
    run.clock.add("Keras, before training", before)
    run.clock.add("Keras", time.perf_counter() - fit_start - inside - before)


def save_outputs(run, updates, live):
    """The trained model, its raw BN statistics, the ||dW||/||W|| rows (and DVCLive's plot of
    them) and LSUV's passes into the run's folder."""
    from initstudy import batchnorm
    from initstudy.updates import KINDS, median_by_kind

    out = run.out
    save_model(run.model, os.path.join(out, "model.keras"))
    batchnorm.save_statistics(os.path.join(out, BN_RAW), run.raw_stats)
    write_tsv(os.path.join(out, "weight_updates.tsv"), updates.rows,
              ("step", "layer", "kind", "weight_norm", "update_ratio"))
    medians = median_by_kind(updates.rows)
    if medians:
        live.log_plot("weight_updates", medians, x="step",
                      y=[k for k in KINDS if k in medians[0]], template="linear",
                      title="||dW|| / ||W|| per step (median over layers of each kind)",
                      y_label="relative kernel change per step")
    if run.state["lsuv"]:
        write_tsv(os.path.join(out, "lsuv.tsv"), run.state["lsuv"],
                  ("layer", "passes", "variance_before", "variance"))


def keep_only_this_checkpoint(run):
    """Removes the checkpoints of this experiment and seed with other inputs. The finished
    run's own stays: with more seeds, or the same inputs again after other changes, the
    stage rebuilds this run's outputs from it instead of training."""
    for other in glob.glob(os.path.join(CHECKPOINTS, f"{run.name}-seed{run.seed}-*")):
        if other != run.ckpt:
            shutil.rmtree(other, ignore_errors=True)


def write_history(run):
    """history.json: what the run was and each epoch's scores. Returns the epoch in which a
    metric stopped being finite, or None."""
    experiment, train, epochs = run.experiment, run.train, run.state["epochs"]
    # any metric not finite (the training loss stops the run; a validation loss may go first)
    diverged = next((e["epoch"] for e in epochs if None in e.values()), None)
    finite = [e for e in epochs if all(v is not None for v in e.values())]
    write_json(os.path.join(run.out, "history.json"), {
        "experiment": run.name, "initializer": experiment.initializer,
        "activation": experiment.activation, "learning_rate": experiment.learning_rate,
        "schedule": train.schedule, "precise_bn_batches": train.precise_bn_batches,
        "seed": run.seed, "epochs": len(epochs), "diverged": diverged is not None,
        "diverged_epoch": diverged, "last_finite": finite[-1] if finite else None,
        "settings": dataclasses.asdict(run.settings),
        "history": epochs})
    return diverged


def phases(run, logger_seconds):
    """This process's seconds by phase, summing to its wall time: training steps (the first,
    which traces, apart), the ||dW||/||W|| logger, scoring, precise BN, checkpoints, DVCLive,
    Keras' own work in fit, start-up (Python, TensorFlow, building the model), outputs, test
    scoring, and the rest."""
    seconds = dict(run.clock.seconds)
    seconds["weight-update log"] = logger_seconds
    if "training" in seconds:  # the epochs' clock runs through the first step
        seconds["training"] -= seconds.get("first step", 0.0)
    wall = process_seconds()
    seconds["other"] = wall - sum(seconds.values())
    return {"wall": wall, **seconds}


def write_timings(run, logger_seconds):
    """The run's training time per epoch, in all, in images per second, and this process's
    seconds by phase (logs/ alone), and prints the phases as one line."""
    path, seconds = timings_path(run.name, run.seed), run.state["train_seconds"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    spent = phases(run, logger_seconds)
    write_json(path, {"epoch_seconds": seconds, "train_seconds": sum(seconds),
                      "images_per_second": run.train_images * len(run.state["epochs"]) / sum(seconds),
                      "images_trained": run.train_images * run.epochs_trained, "kernels": run.kernels,
                      "phases": {k: round(v, 2) for k, v in spent.items()}})
    print(f"{run.name} seed {run.seed}: {spent['wall']:.0f} s in this process: " + ", ".join(
        f"{k} {v:.0f} s" for k, v in spent.items() if k != "wall"))


def score_test(run):
    """test.json: the trained model on the test split, with the BN statistics it was saved
    with (precise BN's) and with those training left (`_raw`), and its per-image predictions.
    Scored here, where the model already is, so the evaluate stage need not load it again."""
    from initstudy import batchnorm
    from initstudy.evaluation import score

    test_ds = make_dataset(PREPARED, run.manifest, "test", run.train.batch_size)
    labels, predicted, accuracy, loss = score(run.model, test_ds)
    batchnorm.set_statistics(run.model, run.raw_stats)  # after the model was saved
    _, _, accuracy_raw, loss_raw = score(run.model, test_ds)
    write_json(os.path.join(run.out, TEST_SCORES), {
        "test_accuracy": accuracy, "test_loss": finite_or_none(loss),
        "test_accuracy_raw": accuracy_raw, "test_loss_raw": finite_or_none(loss_raw),
        "classes": run.manifest["classes"], "labels": labels.tolist(),
        "predicted": predicted.tolist()})


def train_run(study, experiment, seed, manifest, out):
    """Trains one run of a config.Experiment into `out` (model.keras, history.json, live/,
    test.json), resuming from its checkpoint when an earlier attempt with the same inputs was
    interrupted. Returns the epoch in which the loss stopped being finite, or None."""
    run = start_run(study, experiment, seed, manifest, out)
    if not resume_from_checkpoint(run):
        build_and_compile(run)
    start = len(run.state["epochs"])
    live, updates = open_logs(run, start)
    if start < run.train.epochs:
        fit_epochs(run, start, live, updates)
    else:
        live.end()
    with run.clock("outputs"):
        save_outputs(run, updates, live)
        keep_only_this_checkpoint(run)
        diverged = write_history(run)
    if not diverged:  # a diverged model's NaN logits would score as garbage
        with run.clock("test scoring"):
            score_test(run)
    write_timings(run, updates.seconds)
    return diverged
