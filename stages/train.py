"""train: one run (experiment x seed) of the reference MobileNetV2 on the prepared data.

Usage: python -m stages.train <experiment> <seed>
"""
import os
import sys

from initstudy.config import load_study
from initstudy.data import PREPARED, load_manifest
from initstudy.errors import run_stage
from initstudy.files import writable


def main():
    study = load_study()
    experiment, seed = study.experiment(sys.argv[1]), study.seed(sys.argv[2])
    manifest = load_manifest(PREPARED)

    out = os.path.join("models", experiment.name, f"seed{seed}")
    writable(out)

    from initstudy.training import train_run

    diverged = train_run(study, experiment, seed, manifest, out)
    if diverged:
        print(f"{experiment.name} seed {seed} diverged in epoch {diverged} (loss not finite); "
              "recorded as such")


if __name__ == "__main__":
    run_stage(main, gpu=True)
