"""queue: `dvc queue start` with its preconditions checked first. DVC's queue workers start
`dvc exp run` by name, so without this environment's dvc on PATH every queued experiment
fails in the background while `dvc queue start` itself reports success. And params.yaml must
hold HEAD's values: a failed `dvc exp run -S` leaves its overrides in it, and an experiment
queued since then carries them along unseen (tools.dvc.require_params_at_head).

Usage: python -m tools.queue [JOBS]   (JOBS workers, default 1; then `dvc queue status`)
"""
import sys

from initstudy.errors import StudyError
from initstudy.runner import run_stage
from tools.dvc import dvc, require_dvc, require_params_at_head


def main():
    jobs = sys.argv[1] if len(sys.argv) > 1 else "1"
    if not jobs.isdigit() or int(jobs) < 1:
        raise StudyError(f"JOBS = {jobs!r}: must be a whole number >= 1")
    require_dvc("the queue's workers start `dvc exp run` by name and would fail unseen")
    require_params_at_head("experiments queued since it changed carry it (`dvc queue remove "
                           "--queued` drops them)")
    print(dvc("queue", "start", "-j", jobs).strip())


if __name__ == "__main__":
    run_stage(main, tensorflow=False)
