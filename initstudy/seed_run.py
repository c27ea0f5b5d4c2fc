"""One training run (experiment x seed) as a process of its own: what the train stage starts
once per seed (initstudy.parallel.train_seeds), and what `python -m stages.train <experiment>
<seed>` runs.

Usage: python -m initstudy.seed_run <experiment> <seed>
"""
import shutil
import sys

from initstudy.config import load_study
from initstudy.errors import StudyError
from initstudy.files import writable
from initstudy.parallel import end_with_parent, stage_is_running
from initstudy.paths import run_dir
from initstudy.runner import run_stage
from initstudy.shards import PREPARED, load_manifest


def main(args=None):
    """Trains one seed of one experiment, `args` (default: the command line's) naming them,
    into a staging folder, and publishes it to models/<experiment>/seed<k> only while its
    stage still runs."""
    experiment_name, seed_name = sys.argv[1:3] if args is None else args
    study = load_study()
    experiment = study.experiment(experiment_name)
    manifest = load_manifest(PREPARED)
    seed = study.seed(seed_name)
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
    run_stage(main, gpu=True, tensorflow=True)
