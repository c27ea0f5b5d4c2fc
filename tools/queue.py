"""queue: `dvc queue start` with its precondition checked first. DVC's queue workers start
`dvc exp run` by name, so without this environment's dvc on PATH every queued experiment
fails in the background while `dvc queue start` itself reports success.

Usage: python -m tools.queue [JOBS]   (JOBS workers, default 1; then `dvc queue status`)
"""
import sys

from initstudy.errors import StudyError
from initstudy.stage import run_stage
from tools.dvc import dvc, require_dvc


def main():
    jobs = sys.argv[1] if len(sys.argv) > 1 else "1"
    if not jobs.isdigit() or int(jobs) < 1:
        raise StudyError(f"JOBS = {jobs!r}: must be a whole number >= 1")
    require_dvc("the queue's workers start `dvc exp run` by name and would fail unseen")
    print(dvc("queue", "start", "-j", jobs).strip())


if __name__ == "__main__":
    run_stage(main, tensorflow=False)
