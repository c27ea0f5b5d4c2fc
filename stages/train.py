"""train: one experiment's MobileNetV2 with its initializer and activation, on the prepared data.

Usage: python -m stages.train <experiment>
"""
import json
import os
import sys
import time

from initstudy.data import load_manifest, make_dataset
from initstudy.params import load_params, run_stage, validate_train

PREPARED = "data/prepared"


def main():
    name = sys.argv[1]
    params = load_params()
    experiment = validate_train(params, name)
    manifest = load_manifest(PREPARED)
    out = os.path.join("models", name)

    import keras
    import tensorflow as tf
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from initstudy.model import build_for_experiment

    train = params["train"]
    keras.utils.set_random_seed(train["seed"])
    tf.config.experimental.enable_op_determinism()  # same params + seed -> same weights

    train_ds = make_dataset(PREPARED, manifest, "train", train["batch_size"], train["seed"])
    test_ds = make_dataset(PREPARED, manifest, "test", train["batch_size"])
    model = build_for_experiment(params, experiment, manifest)
    model.compile(optimizer=keras.optimizers.SGD(train["learning_rate"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])

    train_seconds = []

    class EpochTimer(keras.callbacks.Callback):
        """Training time per epoch, without the validation pass that ends it."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_test_begin(self, logs=None):
            train_seconds.append(time.perf_counter() - self.start)

    os.makedirs(out, exist_ok=True)
    live = Live(os.path.join(out, "live"), dvcyaml=False, save_dvc_exp=False)
    print(f"training {name}: {experiment['initializer']} + {experiment['activation']}, "
          f"{train['epochs']} epochs of {manifest['splits']['train']['count']} images")
    history = model.fit(train_ds, epochs=train["epochs"], validation_data=test_ds,
                        callbacks=[EpochTimer(), DVCLiveCallback(live=live)], verbose=2)

    model.save(os.path.join(out, "model.keras"))
    epochs = [{"epoch": e + 1, **{k: float(v[e]) for k, v in history.history.items()},
               "train_seconds": train_seconds[e]} for e in history.epoch]
    seen = manifest["splits"]["train"]["count"] * len(epochs)
    summary = {"experiment": name, **experiment, "epochs": len(epochs),
               "train_seconds": sum(train_seconds),
               "images_per_second": seen / sum(train_seconds),
               "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
               "history": epochs}
    with open(os.path.join(out, "history.json"), "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    run_stage(main)
