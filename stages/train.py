"""train: every seed of one experiment, side by side (one process per run), into
models/<experiment>/seed<k>; or one run when a seed is named (initstudy.seed_run).

Usage: python -m stages.train <experiment> [<seed>]
"""
import sys

from initstudy import seed_run
from initstudy.config import load_study
from initstudy.files import writable
from initstudy.parallel import end_with_parent, train_seeds
from initstudy.paths import run_dir
from initstudy.runner import run_stage
from initstudy.shards import PREPARED, load_manifest


def main():
    if len(sys.argv) > 2:
        seed_run.main(sys.argv[1:3])
        return
    study = load_study()
    experiment = study.experiment(sys.argv[1])
    load_manifest(PREPARED)  # the shards checked before any run starts
    writable(*(run_dir(experiment.name, seed) for seed in study.train.seeds))
    train_seeds(experiment.name, study.train.seeds, study.train.parallel_runs)


if __name__ == "__main__":
    end_with_parent()  # no training outlives its stage, nor the stage dvc (docs/failures.md)
    run_stage(main, gpu=len(sys.argv) > 2, tensorflow=len(sys.argv) > 2)
