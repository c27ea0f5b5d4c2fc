"""train: every seed of one experiment, side by side (one process per run), into
models/<experiment>/seed<k>; or one run when a seed is named.

Usage: python -m stages.train <experiment> [<seed>]
"""
import sys

from initstudy.config import load_study
from initstudy.data import PREPARED, load_manifest
from initstudy.stage import run_stage
from initstudy.files import writable
from initstudy.paths import run_dir


def main():
    study = load_study()
    experiment = study.experiment(sys.argv[1])
    manifest = load_manifest(PREPARED)
    if len(sys.argv) < 3:
        from initstudy.parallel import train_seeds

        writable(*(run_dir(experiment.name, seed) for seed in study.train.seeds))
        train_seeds(experiment.name, study.train.seeds, study.train.parallel_runs)
        return
    seed = study.seed(sys.argv[2])
    out = run_dir(experiment.name, seed)
    writable(out)

    from initstudy.training import train_run

    diverged = train_run(study, experiment, seed, manifest, out)
    if diverged:
        print(f"{experiment.name} seed {seed} diverged in epoch {diverged} (loss not finite); "
              "recorded as such")


if __name__ == "__main__":
    run_stage(main, gpu=len(sys.argv) > 2, tensorflow=len(sys.argv) > 2)
