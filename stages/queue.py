"""queue: `dvc queue start` with its precondition checked first. DVC's queue workers start
`dvc exp run` by name, so without this environment's dvc on PATH every queued experiment
fails in the background while `dvc queue start` itself reports success.

Usage: python -m stages.queue [JOBS]   (JOBS workers, default 1; then `dvc queue status`)
"""
import os
import shutil
import subprocess
import sys

from initstudy.errors import StudyError, run_stage


def main():
    jobs = sys.argv[1] if len(sys.argv) > 1 else "1"
    if not jobs.isdigit() or int(jobs) < 1:
        raise StudyError(f"JOBS = {jobs!r}: must be a whole number >= 1")
    here = os.path.dirname(sys.executable)
    if shutil.which("dvc") is None:
        raise StudyError("dvc is not on PATH: the queue's workers start `dvc exp run` by name "
                         f"and would fail unseen; activate the environment "
                         f"(source {os.path.relpath(here)}/activate) or add {here} to PATH")
    sys.exit(subprocess.run(["dvc", "queue", "start", "-j", jobs]).returncode)


if __name__ == "__main__":
    run_stage(main, tensorflow=False)
