"""train: every seed of one experiment, side by side (one process per run), into
models/<experiment>/seed<k>; or one run when a seed is named.

Usage: python -m stages.train <experiment> [<seed>]
"""
import shutil
import sys

from initstudy.config import load_study
from initstudy.data import PREPARED, load_manifest
from initstudy.errors import StudyError
from initstudy.stage import run_stage
from initstudy.files import writable
from initstudy.parallel import end_with_parent, stage_is_running
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

    from initstudy.training import publish, staging_dir, train_run

    # trained beside models/, moved there at the end only while its stage still runs
    staging = staging_dir(experiment.name, seed)
    diverged = train_run(study, experiment, seed, manifest, staging)
    if not stage_is_running():
        shutil.rmtree(staging, ignore_errors=True)
        raise StudyError(f"{experiment.name} seed {seed}: its train stage has ended; "
                         "outputs discarded")
    publish(staging, out)
    if diverged:
        print(f"{experiment.name} seed {seed} diverged in epoch {diverged} (loss not finite); "
              "recorded as such")


if __name__ == "__main__":
    end_with_parent()  # no training outlives its stage, nor the stage dvc (docs/failures.md)
    run_stage(main, gpu=len(sys.argv) > 2, tensorflow=len(sys.argv) > 2)
