"""review: a markdown report of this workspace against a base revision, for a pull request.

Usage: python -m stages.review [BASE]   (default: main) -> review/review.md, review/plots/
Built on DVC's own diffs (params, metrics, plots); not a pipeline stage.
"""
import json
import os
import shutil
import subprocess
import sys

from initstudy.errors import StudyError, run_stage
from initstudy.files import write_text
from initstudy.review import markdown

OUT = "review"


def dvc_json(*args):
    if shutil.which("dvc") is None:
        raise StudyError("dvc is not on PATH: activate the environment that has it "
                         "(. .venv/bin/activate)")
    run = subprocess.run(["dvc", *args, "--json"], capture_output=True, text=True)
    if run.returncode:
        message = (run.stderr.strip().splitlines() or ["failed"])[-1]
        raise StudyError(f"dvc {' '.join(args)}: {message}")
    return json.loads(run.stdout or "{}")


def changed_images(base, folder):
    """plot -> (base image, branch image), relative to OUT, for PNG plots whose bytes differ."""
    plots = dvc_json("plots", "diff", base, "-o", folder).get("data", {})
    images = {}
    for plot, entries in plots.items():
        by_rev = {e["revisions"][0]: e["url"] for e in entries if e.get("type") == "image"}
        old, new = by_rev.get(base), by_rev.get("workspace")
        if not by_rev or (old and new and open(old, "rb").read() == open(new, "rb").read()):
            continue
        images[plot] = tuple(p and os.path.relpath(p, OUT) for p in (old, new))
    return images


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else "main"
    if subprocess.run(["git", "rev-parse", "--verify", "--quiet", base],
                      capture_output=True).returncode:
        raise StudyError(f"base revision {base!r} not found: name a branch, tag or commit")
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    text = markdown(base, dvc_json("params", "diff", base),
                    dvc_json("metrics", "diff", base, "--all"),
                    changed_images(base, os.path.join(OUT, "plots")))
    write_text(os.path.join(OUT, "review.md"), text)
    print(text)


if __name__ == "__main__":
    run_stage(main, tensorflow=False)
