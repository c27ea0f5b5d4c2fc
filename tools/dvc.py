"""dvc as the tools run it: one check that it is on PATH, one way to run it and read its JSON,
so a failing dvc always stops a tool with one line."""
import json
import os
import shutil
import subprocess
import sys

from initstudy.errors import StudyError


def require_dvc(reason="the tools run it by name"):
    """Stops unless `dvc` is on PATH; `reason` says what would go wrong without it."""
    if shutil.which("dvc") is None:
        here = os.path.dirname(sys.executable)  # this Python's environment, which has dvc
        raise StudyError(f"dvc is not on PATH: {reason}; activate the environment "
                         f"(source {os.path.relpath(here)}/activate) or add {here} to PATH")


def dvc(*args):
    """`dvc ARGS`'s stdout; a failure is a StudyError with dvc's last error line."""
    require_dvc()
    run = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if run.returncode:
        last = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
        raise StudyError(f"dvc {' '.join(args)} failed: {last}")
    return run.stdout


def dvc_json(*args):
    """`dvc ARGS --json`, parsed."""
    return json.loads(dvc(*args, "--json") or "{}")
