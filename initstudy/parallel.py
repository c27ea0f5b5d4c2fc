"""Trainings side by side: one process per run (`python -m initstudy.seed_run <experiment>
<seed>`).

One training with one thread per op keeps about one core busy, and `dvc repro` runs one
stage at a time; so the train stage of an experiment runs its seeds as parallel processes.
Each run is still alone in its process (same weights as one at a time, its own checkpoint
and resume), and the first run that fails stops the others with its own one-line error.
No training outlives its stage (end_with_parent): `kill -9` of dvc ends the stage's process,
which ends its runs; a run moves its outputs into models/ only while its stage still runs."""
import ctypes
import os
import resource
import signal
import subprocess
import sys
import threading
import time

from initstudy.errors import StudyError
from initstudy.files import write_json
from initstudy.paths import timings_path
from initstudy.progress import MARK, PROGRESS, StatusLine


# A run's environment: the pid of the stage process that started it (train_seeds).
PARENT = "INITSTUDY_TRAIN_PARENT"
# The entry point of one run, started once per seed: initstudy/seed_run.py
SEED_RUN = "initstudy.seed_run"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# what DVC runs a stage's command with: $SHELL, else /bin/sh (dvc/stage/run.py)
SHELLS = {"sh", "dash", "bash", "zsh", "ksh", "fish"}


def die_with_parent(parent=None, sig=signal.SIGKILL):
    """Makes this process receive `sig` when its parent ends, `kill -9` included: Linux's
    parent-death signal, elsewhere a thread that checks every half second. A parent that ended
    before (`parent`, default the current one, no longer this process's parent) sends it at
    once. Returns the parent's pid."""
    parent = os.getppid() if parent is None else parent
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(sig), ctypes.c_ulong(0),
                      ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (AttributeError, OSError, TypeError):  # not Linux
        import psutil

        try:
            die_with(psutil.Process(parent), sig)
        except psutil.NoSuchProcess:  # ended already: below
            pass
    if os.getppid() != parent:  # it ended before the signal was set
        os.kill(os.getpid(), sig)
    return parent


def die_with(process, sig):
    """Makes this process receive `sig` when `process` (a psutil.Process, any ancestor)
    ends: a thread that checks every half second."""
    def watch():
        while process.is_running():  # False also for a reused pid (its start time differs)
            time.sleep(0.5)
        os.kill(os.getpid(), sig)
    threading.Thread(target=watch, daemon=True).start()


def owner():
    """The process that started this one: its parent, or, where that is a shell running
    this process as its command (`sh -c`: dash does not exec its last command, bash does),
    the process that started the shell."""
    import psutil

    process = psutil.Process().parent()
    while process is not None and process.name() in SHELLS:
        process = process.parent()
    return process


def parallel_runs(setting, runs):
    """How many trainings run side by side, never more than there are runs. `auto`: all of
    an experiment's runs at once, up to two per core. One training with one thread per op
    keeps about one core busy; on 2 cores two side by side gave 1.36x one alone in total,
    three 1.32x (bench/results-parallel.json), so 3 seeds at once beat 2 and then 1 alone."""
    cores = len(os.sched_getaffinity(0))
    return max(1, min(runs, 2 * cores if setting == "auto" else setting))


def end_with_parent():
    """Called first by the train stage and by each run (`python -m` SEED_RUN): a run started
    by train_seeds ends (SIGKILL) with the stage process that started it; the stage process,
    when DVC runs it (DVC sets DVC_STAGE), ends (SIGTERM: it stops its runs first) with dvc,
    also through the shell DVC starts it with.
    Started by hand, the stage (or one run) is not tied to its shell: nohup works as before."""
    if os.environ.get(PARENT):
        die_with_parent(int(os.environ[PARENT]), signal.SIGKILL)
    elif os.environ.get("DVC_STAGE"):
        die_with_parent(sig=signal.SIGTERM)
        dvc = owner()
        if dvc is not None and dvc.pid != os.getppid():  # a shell between dvc and the stage
            die_with(dvc, signal.SIGTERM)


def stage_is_running():
    """False in a run started by train_seeds whose stage process has ended (a run that outlived
    it, where no parent-death signal came): its outputs belong to no stage any more."""
    parent = os.environ.get(PARENT)
    return not parent or os.getppid() == int(parent)


def _stop(signum, frame):
    """SIGTERM in the stage process: exits through train_seeds' `finally`, which stops the runs."""
    signal.signal(signum, signal.SIG_DFL)  # a second one ends it at once
    raise SystemExit(128 + signum)


def relay_output(process, prefix, last, status):
    """Copies a run's output line by line, prefixed, its progress into the status line, and
    keeps its last line."""
    for line in process.stdout:
        if not line.startswith(MARK):
            last[0] = line.rstrip("\n")
        status.line(prefix, line)
    status.done(prefix)


def run_environment():
    """The environment of the stage's runs: each ends with this process; its lines reach the
    log as it prints them (a pipe would hold them until the run exits, after it has published
    its outputs); with a person watching (a terminal), its progress for the status line."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{PARENT: str(os.getpid())})
    env.pop(PROGRESS, None)
    if sys.stdout.isatty():
        env[PROGRESS] = "relay"
    return env


def train_seeds(experiment, seeds, setting="auto"):
    """Trains `experiment` for every seed, at most parallel_runs(setting, len(seeds)) at once;
    logs wall time, CPU use (cores busy on average) and the largest run's peak memory."""
    workers = parallel_runs(setting, len(seeds))
    print(f"training {experiment}, seeds {list(seeds)}: {workers} run(s) side by side",
          flush=True)
    start = time.perf_counter()
    pending, running = list(seeds), {}
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
    env, status = run_environment(), StatusLine()
    try:
        while pending or running:
            while pending and len(running) < workers:
                seed = pending.pop(0)
                process = subprocess.Popen(
                    [sys.executable, "-m", SEED_RUN, experiment, str(seed)],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                    env=env)
                last = [""]
                thread = threading.Thread(target=relay_output,
                                          args=(process, f"[seed {seed}] ", last, status))
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
