"""One training per GPU under `dvc queue start -j N`, tested with a simulated GPU count."""
import os
import subprocess
import sys
import time

from conftest import ROOT

CLAIM = ("import os, sys, time\n"
         "from initstudy import device\n"
         "index = device.claim_gpu(poll_seconds=0.05)\n"
         "print('claimed', index, os.environ.get('CUDA_VISIBLE_DEVICES'), time.time(), flush=True)\n"
         "time.sleep(float(sys.argv[1]))\n")


def claim(tmp_path, hold, **env):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"} | {
        "PYTHONPATH": ROOT, "INITSTUDY_GPU_LOCKS": str(tmp_path), **env}
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(hold)], env=env,
                            stdout=subprocess.PIPE, text=True)


def claimed(process):
    lines = process.communicate(timeout=60)[0].splitlines()
    _, index, visible, when = lines[-1].split()
    return lines, index, visible, float(when)


def test_each_process_takes_a_free_gpu_and_the_next_waits_for_one(tmp_path):
    first, second = claim(tmp_path, 2, INITSTUDY_GPUS="2"), claim(tmp_path, 2, INITSTUDY_GPUS="2")
    time.sleep(1)  # both hold their GPU now
    third = claim(tmp_path, 0, INITSTUDY_GPUS="2")
    a, b, c = claimed(first), claimed(second), claimed(third)
    assert {a[1], b[1]} == {"0", "1"}
    assert (a[1], b[1]) == (a[2], b[2])  # TensorFlow will see only the claimed GPU
    assert "all 2 GPUs are in use by other runs; waiting for one" in c[0]
    assert c[1] in {"0", "1"} and c[3] >= min(a[3], b[3]) + 2  # only after one finished


def test_no_gpu_or_a_chosen_gpu_is_left_alone(tmp_path):
    assert claimed(claim(tmp_path, 0, INITSTUDY_GPUS="0"))[1:3] == ("None", "None")
    chosen = claim(tmp_path, 0, INITSTUDY_GPUS="2", CUDA_VISIBLE_DEVICES="1")
    assert claimed(chosen)[1:3] == ("None", "1")
