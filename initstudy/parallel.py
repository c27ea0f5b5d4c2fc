"""Trainings side by side: one process per run (`python -m stages.train <experiment> <seed>`).

One training with one thread per op keeps about one core busy, and `dvc repro` runs one
stage at a time; so the train stage of an experiment runs its seeds as parallel processes.
Each run is still alone in its process (same weights as one at a time, its own checkpoint
and resume), and the first run that fails stops the others with its own one-line error."""
import os
import resource
import subprocess
import sys
import threading
import time

from initstudy.device import parallel_runs
from initstudy.errors import StudyError
from initstudy.files import write_json
from initstudy.paths import timings_path


def _relay(process, prefix, last):
    """Copies a run's output line by line, prefixed, and keeps its last line."""
    for line in process.stdout:
        last[0] = line.rstrip("\n")
        print(f"{prefix}{line}", end="", flush=True)


def train_seeds(experiment, seeds, setting="auto"):
    """Trains `experiment` for every seed, at most parallel_runs(setting, len(seeds)) at once;
    logs wall time, CPU use (cores busy on average) and the largest run's peak memory."""
    workers = parallel_runs(setting, len(seeds))
    print(f"training {experiment}, seeds {list(seeds)}: {workers} run(s) side by side",
          flush=True)
    start = time.perf_counter()
    pending, running = list(seeds), {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                seed = pending.pop(0)
                process = subprocess.Popen(
                    [sys.executable, "-m", "stages.train", experiment, str(seed)],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
                last = [""]
                thread = threading.Thread(target=_relay, args=(process, f"[seed {seed}] ", last))
                thread.start()
                running[seed] = (process, thread, last)
            time.sleep(0.2)
            for seed, (process, thread, last) in list(running.items()):
                if process.poll() is None:
                    continue
                thread.join()
                del running[seed]
                if process.returncode:
                    message = last[0].removeprefix("error: ")
                    raise StudyError(f"{experiment} seed {seed}: {message}"
                                     if process.returncode == 2 else
                                     f"{experiment} seed {seed} failed (exit status "
                                     f"{process.returncode}): {message}")
    finally:
        for process, thread, _ in running.values():
            process.terminate()
            process.wait()
            thread.join()
    wall = time.perf_counter() - start
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = used.ru_utime + used.ru_stime
    cores = len(os.sched_getaffinity(0))
    print(f"trained {len(seeds)} run(s) of {experiment} in {wall:.0f} s: CPU {cpu:.0f} s, "
          f"{cpu / wall:.2f} of {cores} cores busy on average; "
          f"largest run's peak memory {used.ru_maxrss / 1024:.0f} MB", flush=True)
    os.makedirs(os.path.dirname(timings_path(experiment)), exist_ok=True)
    write_json(timings_path(experiment), {
        "seeds": list(seeds), "runs_side_by_side": workers, "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1), "cores": cores, "cores_busy": round(cpu / wall, 2),
        "peak_memory_mb": round(used.ru_maxrss / 1024)})
