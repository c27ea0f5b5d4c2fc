"""The wrapper every stage and command runs under: its device set up first, and a problem
the user can fix shown as one line on stderr with exit status 2."""
import os
import sys
import time

from initstudy.errors import StudyError
from initstudy.files import write_json
from initstudy.paths import stage_timings_path


def run_stage(main, gpu=False, tensorflow=True):
    """Run a stage's main(); a StudyError becomes one line on stderr and exit status 2.
    With `gpu`, the stage first takes one free GPU of the machine (device.claim_gpu); with
    `tensorflow`, TensorFlow starts without its start-up noise (device.start_tensorflow)."""
    from initstudy import device

    device.set_cpu_environment()  # before TensorFlow loads
    try:
        if gpu:
            device.claim_gpu()
        if tensorflow:
            device.start_tensorflow()
        main()
        log_stage_times()
    except StudyError as e:
        fail(str(e))
    except OSError as e:  # e.g. an output folder that is not writable: the file and the reason
        fail(f"{e.filename or ''}: {e.strerror or e}")


def fail(message):
    message = " ".join(line.strip() for line in message.splitlines())  # always one line
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def log_stage_times():
    """A pipeline stage's start (its process's) and end into logs/stages/, from which
    bench/overhead.py tells where the main job's time went. Commands and single runs
    (`python -m stages.train <experiment> <seed>`) log nothing here."""
    module = getattr(sys.modules["__main__"], "__spec__", None)
    if module is None or not module.name.startswith("stages.") or len(sys.argv) > 2:
        return
    stage = "@".join([module.name.removeprefix("stages."), *sys.argv[1:2]])
    path, end, seconds = stage_timings_path(stage), time.time(), process_seconds()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json(path, {"stage": stage, "start": end - seconds, "end": end,
                      "seconds": round(seconds, 2)})


def process_seconds():
    """Seconds since this process started (its Python start and imports included)."""
    import psutil

    return time.time() - psutil.Process().create_time()
