"""Shared fixtures: the mini archive, small projects built from the repository's own code,
one prepared mini set per test run, and the one way tests run a stage or a command."""
import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Real CIFAR-10 images: 200 train and 50 test JPEG re-encodes per class (data/README.md).
MINI_ARCHIVE = os.path.join(ROOT, "tests", "data", "cifar10-jpeg-mini.tar.gz")
CODE = ("initstudy", "stages", "tools", "reference")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains, or runs DVC end to end (minutes); "
                                       "the fast subset is pytest -m 'not slow'")


def subprocess_env(**extra):
    """The environment of every stage, command and dvc a test starts: this Python's dvc on
    PATH (DVC's queue starts it by name), no analytics, no TensorFlow start-up noise."""
    return dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
                DVC_NO_ANALYTICS="1", TF_CPP_MIN_LOG_LEVEL="2", **extra)


def stage(folder, *args, check=True, timeout=900):
    """`python -m ARGS` in `folder` (a stage or a tool); with `check`, it must succeed."""
    run = subprocess.run([sys.executable, "-m", *args], cwd=folder, env=subprocess_env(),
                         capture_output=True, text=True, timeout=timeout)
    if check:
        assert run.returncode == 0, run.stderr[-3000:]
    return run


def sh(cmd, cwd, timeout=900):
    """A shell command (git, dvc) in `cwd` that must succeed; its stdout."""
    run = subprocess.run(cmd, cwd=cwd, env=subprocess_env(), shell=True, capture_output=True,
                         text=True, timeout=timeout)
    assert run.returncode == 0, f"{cmd} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout


def write_params(folder, params):
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def listing(folder):
    """Every file under `folder`, relative, sorted (caches left out)."""
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, files in os.walk(folder) for f in files if "__pycache__" not in d)


def project(folder, archive=MINI_ARCHIVE, **train):
    """The stages, tools and package in `folder`, with small params on the mini archive:
    20 images per class (4 validate), 32px, 3 epochs of batch 20, seed 0. Returns the params."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in CODE:
        shutil.copytree(os.path.join(ROOT, name), folder / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load(open(os.path.join(ROOT, "params.yaml")))
    params["prepare"].update(source="folder", folder=archive, max_per_class=20, shards=2,
                             validation_per_class=4)
    params["model"]["image_size"] = 32
    params["train"].update({"epochs": 3, "batch_size": 20, "seeds": [0], "inference_images": 40,
                            "precise_bn_batches": 2, **train})
    params["grid"].update(image_size=32, images=8, init_seeds=[0])
    write_params(folder, params)
    return params


@pytest.fixture
def mini_archive():
    return MINI_ARCHIVE


@pytest.fixture(scope="session")
def prepared_mini(tmp_path_factory):
    """The mini archive prepared once per test run (project()'s params)."""
    folder = tmp_path_factory.mktemp("prepared-mini")
    project(folder)
    stage(folder, "stages.prepare")
    return folder / "data" / "prepared"


@pytest.fixture
def prepared_project(prepared_mini):
    """A factory: project(folder, **train) with the session's prepared mini set copied in."""
    def make(folder, **train):
        project(folder, **train)
        shutil.copytree(prepared_mini, folder / "data" / "prepared")
        return folder
    return make


@pytest.fixture
def prepared(tmp_path, prepared_project):
    """A small project in tmp_path, its data prepared."""
    return prepared_project(tmp_path)
