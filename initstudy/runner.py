"""The wrapper every stage and command runs under: its device set up first, and a problem
the user can fix shown as one line on stderr with exit status 2."""
import sys

from initstudy.errors import StudyError


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
    except StudyError as e:
        fail(str(e))
    except OSError as e:  # e.g. an output folder that is not writable: the file and the reason
        fail(f"{e.filename or ''}: {e.strerror or e}")


def fail(message):
    message = " ".join(line.strip() for line in message.splitlines())  # always one line
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
