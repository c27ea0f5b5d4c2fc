"""One training per GPU under `dvc queue start -j N`, tested with a simulated GPU count."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, subprocess_env

CLAIM = ("import os, sys, time\n"
         "from initstudy import device\n"
         "index = device.claim_gpu(poll_seconds=0.05)\n"
         "print('claimed', index, os.environ.get('CUDA_VISIBLE_DEVICES'), time.time(), flush=True)\n"
         "time.sleep(float(sys.argv[1]))\n")


def claim(tmp_path, hold, **env):
    environment = subprocess_env()
    environment.pop("CUDA_VISIBLE_DEVICES", None)  # unless `env` sets it
    environment.update(PYTHONPATH=ROOT, INITSTUDY_GPU_LOCKS=str(tmp_path), **env)
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(hold)], env=environment,
                            stdout=subprocess.PIPE, text=True)


def claimed(process, first=""):
    """The claiming process's output lines (`first`: a line already read) and its claim."""
    lines = (first + process.stdout.read()).splitlines()  # (communicate would skip the
    process.wait(timeout=60)                                # lines that readline buffered)
    _, index, visible, when = lines[-1].split()
    return lines, index, visible, float(when)


def test_each_process_takes_a_free_gpu_and_the_next_waits_for_one(tmp_path):
    first, second = claim(tmp_path, 2, INITSTUDY_GPUS="2"), claim(tmp_path, 2, INITSTUDY_GPUS="2")
    # each prints its claim, then holds the GPU for 2 s: the third starts only once both hold one
    held = [process.stdout.readline() for process in (first, second)]
    third = claim(tmp_path, 0, INITSTUDY_GPUS="2")
    a, b, c = claimed(first, held[0]), claimed(second, held[1]), claimed(third)
    assert {a[1], b[1]} == {"0", "1"}
    assert (a[1], b[1]) == (a[2], b[2])  # TensorFlow will see only the claimed GPU
    assert "all 2 GPUs are in use by other runs; waiting for one" in c[0]
    assert c[1] in {"0", "1"} and c[3] >= min(a[3], b[3]) + 2  # only after one finished


def test_no_gpu_or_a_chosen_gpu_is_left_alone(tmp_path):
    assert claimed(claim(tmp_path, 0, INITSTUDY_GPUS="0"))[1:3] == ("None", "None")
    chosen = claim(tmp_path, 0, INITSTUDY_GPUS="2", CUDA_VISIBLE_DEVICES="1")
    assert claimed(chosen)[1:3] == ("None", "1")


@pytest.mark.slow
def test_a_training_gives_the_same_weights_on_one_core_as_on_two(mini_archive, tmp_path,
                                                                  monkeypatch):
    """Every stage runs each TensorFlow op on one thread (device.set_cpu_environment), so a
    machine's core count does not change a result's last bits; TensorFlow's default (each op
    split over the cores) does."""
    from bench.portability import DEFAULT_THREADS, run_variant
    from initstudy import shards, sources

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    prepared = str(tmp_path / "prepared")
    classes, splits = sources.read_image_folder(mini_archive, 32, max_per_class=50)
    shards.write_prepared(classes, splits, prepared, 2, {"folder": mini_archive})

    def weights(one_core, **env):
        return run_variant(prepared, env, one_core, epochs=2)["weights_sha256"]

    # the study's settings unless a variable of the caller's overrides them
    for name in [k for k in os.environ if k.startswith("TF_NUM_")]:
        monkeypatch.delenv(name)
    assert weights(one_core=True) == weights(one_core=False)
    assert weights(True, **DEFAULT_THREADS) != weights(False, **DEFAULT_THREADS)
