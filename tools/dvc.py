"""dvc as the tools run it: one check that it is on PATH, one way to run it and read its JSON,
so a failing dvc always stops a tool with one line."""
import json
import os
import shutil
import subprocess
import sys

import yaml

from initstudy.config import PARAMS, read_yaml
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


_ABSENT = object()  # a key one side lacks


def changed_params(old, new, prefix=""):
    """The dotted keys whose values differ between two params.yaml contents, in the file's
    order: a key added or removed counts, a list counts as one value, a comment is no value."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [*old, *(k for k in new if k not in old)]
        return [changed for k in keys
                for changed in changed_params(old.get(k, _ABSENT), new.get(k, _ABSENT),
                                              f"{prefix}{k}.")]
    same = (old is _ABSENT) == (new is _ABSENT) and \
        json.dumps(old, default=repr) == json.dumps(new, default=repr)  # 1 != true != 1.0
    return [] if same else [prefix[:-1] or "(the whole file)"]


def require_params_at_head(consequence):
    """Stops unless params.yaml holds HEAD's values. `dvc exp run -S` writes its overrides into
    params.yaml and leaves them there when the run fails; DVC queues an experiment from the
    workspace as it is, so anything queued on top would carry them along. `consequence` says
    what would carry them. The file's values are compared, not git's view of it: a failed run
    can leave git's index holding HEAD's blob with the changed file's size and mtime (it
    depends on timing), and then `git status`, `git diff` and `git checkout params.yaml` see
    no change wherever the override kept the file's size (ruamel keeps the comment column, so
    `folder: /nonexistent` in place of a longer path does)."""
    head = subprocess.run(["git", "show", f"HEAD:./{PARAMS}"], capture_output=True, text=True)
    if head.returncode:
        why = (head.stderr.strip().splitlines() or [f"exit status {head.returncode}"])[-1]
        raise StudyError(f"cannot compare {PARAMS} with HEAD ({why}): DVC queues experiments "
                         f"from a commit; commit {PARAMS} first")
    try:
        committed = yaml.safe_load(head.stdout)
    except yaml.YAMLError:
        committed = None  # a corrupted commit differs from whatever the workspace holds
    changed = changed_params(committed, read_yaml(PARAMS))
    if changed:
        shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6
                                         else "")
        raise StudyError(f"{PARAMS} differs from HEAD in {shown}: {consequence}; a failed "
                         "`dvc exp run -S` leaves its overrides there, where `git status` may not "
                         f"show them: restore HEAD's with `git show HEAD:{PARAMS} > {PARAMS}` "
                         "(`git checkout` may see nothing to restore), or commit the change, then "
                         "run this again")
