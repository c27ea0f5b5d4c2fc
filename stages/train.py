"""train: one run (experiment x seed) of the seed's MobileNetV2 on the prepared data.

Usage: python -m stages.train <experiment> <seed>
"""
import os
import sys

from initstudy.data import PREPARED, load_manifest, verify_shards
from initstudy.params import load_params, run_stage, validate_train


def main():
    name, seed = sys.argv[1], sys.argv[2]
    params = load_params()
    experiment = validate_train(params, name, seed)
    manifest = load_manifest(PREPARED)
    verify_shards(PREPARED, manifest)

    from initstudy.training import train_run

    out = os.path.join("models", name, f"seed{seed}")
    diverged = train_run(params, name, experiment, int(seed), manifest, PREPARED, out)
    if diverged:
        print(f"{name} seed {seed} diverged in epoch {diverged} (loss not finite); "
              "recorded as such")


if __name__ == "__main__":
    run_stage(main)
