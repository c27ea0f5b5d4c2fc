"""What the tests share (test modules import from here, never from each other): the mini
archive, small projects and studies built from the repository's own code, one prepared mini
set per test run, image folders, and the one way tests run a stage, a tool or a command
(subprocess_env). Tests that train, run `dvc repro` / `dvc exp` / the queue, or take more than
a few seconds are marked `slow`: `pytest -m "not slow"` is the fast subset."""
import copy
import fcntl
import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Real CIFAR-10 images: 200 train and 50 test JPEG re-encodes per class (data/README.md).
MINI_ARCHIVE = os.path.join(ROOT, "tests", "data", "cifar10-jpeg-mini.tar.gz")
CODE = ("initstudy", "stages", "tools", "reference")


def subprocess_env(**extra):
    """The environment of every stage, command and dvc a test starts: this Python's dvc on
    PATH (DVC's queue starts it by name), no analytics, no TensorFlow start-up noise, a git
    identity for the commits tests (and `dvc exp run`) make; then `extra` (which may replace
    any of these, PATH included)."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               DVC_NO_ANALYTICS="1", TF_CPP_MIN_LOG_LEVEL="2", GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    # what CI has: output to a pipe or file is block-buffered unless the project itself asks
    # otherwise; no $SHELL, so DVC runs each stage's command under /bin/sh (dash on Debian,
    # which stays between dvc and the stage instead of exec-ing it)
    env.pop("PYTHONUNBUFFERED", None)
    env.pop("SHELL", None)
    env.update(extra)
    return env


def stage(folder, *args, check=True, timeout=900, **env):
    """`python -m ARGS` in `folder` (a stage or a tool), with subprocess_env(**env); with
    `check`, it must succeed."""
    run = subprocess.run([sys.executable, "-m", *args], cwd=folder, env=subprocess_env(**env),
                         capture_output=True, text=True, timeout=timeout)
    if check:
        assert run.returncode == 0, run.stderr[-3000:]
    return run


def shell(cmd, cwd, check=True, timeout=900):
    """A shell command (git, dvc) in `cwd`; with `check`, it must succeed."""
    run = subprocess.run(cmd, cwd=cwd, env=subprocess_env(), shell=True, capture_output=True,
                         text=True, timeout=timeout)
    if check:
        assert run.returncode == 0, f"{cmd} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


def sh(cmd, cwd, timeout=900):
    """A shell command (git, dvc) in `cwd` that must succeed; its stdout."""
    return shell(cmd, cwd, timeout=timeout).stdout


def commit(repo, message):
    """Everything in `repo`, committed."""
    sh(f"git add -A && git commit -qm '{message}'", repo)


def ran_stages(log):
    """The stages a `dvc repro` / `dvc exp run` log says it ran, sorted."""
    return sorted(line.split("'")[1] for line in log.splitlines()
                  if line.startswith("Running stage"))


def write_params(folder, params):
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def listing(folder):
    """Every file under `folder`, relative, sorted (caches left out)."""
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, files in os.walk(folder) for f in files if "__pycache__" not in d)


# What a pipeline study leaves out of the checkout: tests, results, write-ups, benchmarks,
# archives.
NOT_STUDY = ("tests/", "metrics/", "report/", "grid/", "docs/", "findings/", "bench/")

TWO = {"he_normal": {"initializer": "he_normal", "activation": "relu6"},
       "glorot_normal": {"initializer": "glorot_normal", "activation": "relu6"}}

# Each size of study a test builds: the params sections it updates (on the repository's
# params.yaml, the mini archive as a folder source, 32px images), and its experiments.
SIZES = {
    # stages run by hand (`python -m stages.<stage>`): 20 images per class (4 validate),
    # 3 epochs of batch 20, precise BN over 2 batches
    "stages": dict(prepare=dict(max_per_class=20, shards=2, validation_per_class=4),
                   train=dict(epochs=3, batch_size=20, seeds=[0], inference_images=40,
                              precise_bn_batches=2),
                   grid=dict(image_size=32, images=8, init_seeds=[0])),
    # `dvc repro`: 30 images per class (6 validate), 1 epoch of batch 32, a 2x2 grid
    "small": dict(prepare=dict(max_per_class=30, shards=2, validation_per_class=6),
                  train=dict(epochs=1, batch_size=32, seeds=[0], inference_images=60),
                  diagnostics=dict(images=16),
                  grid=dict(image_size=32, images=16, init_seeds=[0, 1],
                            activations=["relu", "selu"],
                            initializers=["he_normal", "lecun_normal"], batch_norm=[False],
                            depthwise_fan=["per_channel"])),
    # `dvc repro`, smaller still: 10 images per class (2 validate) in one shard, batch 16,
    # 2 weight-update steps logged, a 1-cell grid, two experiments
    "tiny": dict(prepare=dict(max_per_class=10, shards=1, validation_per_class=2),
                 train=dict(epochs=1, batch_size=16, seeds=[0], inference_images=20,
                            weight_update_steps=2),
                 diagnostics=dict(images=8),
                 grid=dict(image_size=32, images=8, init_seeds=[0], activations=["relu"],
                           initializers=["he_normal"], batch_norm=[False],
                           depthwise_fan=["per_channel"]),
                 experiments=TWO),
}


def build_study(folder, size, archive=MINI_ARCHIVE, experiments=None, **sections):
    """A study of `size` (SIZES) on `archive` in `folder`, built from the repository's own
    code. "stages": the code alone (CODE), for stages run by hand; "small" and "tiny": the
    checkout's pipeline (every file git tracks or would add that is still there, but no tests,
    results, write-ups, benchmarks, dvc.lock or data archives), for dvc. `experiments` replaces
    the study's; each of `sections` ({key: value}) updates that params section last. Returns
    the params."""
    folder.mkdir(parents=True, exist_ok=True)
    if size == "stages":
        for name in CODE:
            shutil.copytree(os.path.join(ROOT, name), folder / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
    else:
        files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        for f in files:
            if (f.startswith(NOT_STUDY) or f == "dvc.lock" or f.endswith(".tar.gz")
                    or not os.path.isfile(os.path.join(ROOT, f))):  # deleted, still tracked
                continue
            (folder / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.join(ROOT, f), folder / f)
    params = yaml.safe_load(open(os.path.join(ROOT, "params.yaml")))
    params["prepare"].update(source="folder", folder=archive)
    params["model"]["image_size"] = 32
    shape = copy.deepcopy(SIZES[size])  # tests change the params they get back
    default = shape.pop("experiments", params["experiments"])
    params["experiments"] = dict(experiments or default)
    for section, values in [*shape.items(), *sections.items()]:
        params[section].update(values)
    write_params(folder, params)
    return params


def png(seed, size=(8, 8), mode="RGB"):
    """The bytes of a PNG of random pixels (`size` is width, height), the same for one seed."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def make_folder(root, layout, size=(8, 8), mode="RGB"):
    """An image folder {split: {class: n}} under `root`: image i of each class is png(i), so
    the same layout written in any order holds the same files. Returns str(root)."""
    for split, classes in layout.items():
        for cls, n in classes.items():
            os.makedirs(root / split / cls, exist_ok=True)
            for i in range(n):
                (root / split / cls / f"{i}.png").write_bytes(png(i, size, mode))
    return str(root)


# The longest tests (each a whole `dvc repro` and more), started first: over CI's two workers
# (`pytest -n 2`) the rest fill in around them, instead of one of them starting last.
FIRST = ("test_pipeline.py", "test_scaleout.py", "test_leftovers.py", "test_remote.py")


def pytest_collection_modifyitems(items):
    """The slow tests of FIRST's files in its order, then the other slow tests, then the fast
    ones (otherwise in file order)."""
    def order(item):
        slow = item.get_closest_marker("slow") is not None
        name = item.path.name
        return (FIRST.index(name) if slow and name in FIRST else len(FIRST), not slow)
    items.sort(key=order)


@pytest.fixture
def mini_archive():
    return MINI_ARCHIVE


@pytest.fixture(scope="session")
def prepared_mini(tmp_path_factory):
    """The mini archive prepared once per test run (a "stages" study's params)."""
    folder = tmp_path_factory.mktemp("prepared-mini")
    build_study(folder, "stages")
    stage(folder, "stages.prepare")
    return folder / "data" / "prepared"


@pytest.fixture
def prepared_project(prepared_mini):
    """A factory: a "stages" study in `folder` (`train` updating its train section) with the
    session's prepared mini set copied in."""
    def make(folder, **train):
        build_study(folder, "stages", train=train)
        shutil.copytree(prepared_mini, folder / "data" / "prepared")
        return folder
    return make


@pytest.fixture
def prepared(tmp_path, prepared_project):
    """A small project in tmp_path, its data prepared."""
    return prepared_project(tmp_path)


@pytest.fixture(scope="session")
def reproduced_tiny(tmp_path_factory):
    """A "tiny" study (its two experiments) after `dvc repro`, results committed: built once
    per test run, even over several pytest-xdist workers (the first builds it under a file
    lock in their shared temporary folder, the others wait for it)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's basetemp sits in this run's
        shared = shared.parent
    repo, done = shared / "reproduced-tiny", shared / "reproduced-tiny.done"
    with open(shared / "reproduced-tiny.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(repo, ignore_errors=True)  # a build that failed midway
            build_study(repo, "tiny")
            sh("git init -q", repo)
            commit(repo, "study")
            sh("dvc repro", repo)
            commit(repo, "results")
            done.write_text("")
    return repo


@pytest.fixture
def tiny_study(tmp_path, reproduced_tiny):
    """A copy of reproduced_tiny in tmp_path/study, a repository of its own (git, DVC cache,
    results), for a test to change."""
    repo = tmp_path / "study"
    shutil.copytree(reproduced_tiny, repo, symlinks=True)
    return repo
