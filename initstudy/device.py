"""The device a run trains on: one free GPU of the machine, a quiet TensorFlow start, and its
concrete settings (each `auto` of params.yaml's train section resolved per device)."""
import dataclasses
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time


# How TensorFlow uses a CPU's cores: each op on one thread, as many ops side by side as
# there are cores. A result then no longer depends on the machine's core count (each op's
# sums are single-threaded; TF's default splits them by core count). With oneDNN's AVX2
# kernels the 32px training ran 1.4x faster this way, with AVX-512 kernels about as fast as
# TF's default (0.97-1.13x); at 224px TF's default is 1.5x faster: set
# TF_NUM_INTRAOP_THREADS=0 for it. Where oneDNN is on it runs its kernels for the CPU's own
# instruction set (capping it at AVX2 did not make an AVX-512 machine reproduce an AVX2
# machine's numbers and made it 1.8x slower); on a CPU without AVX-512 VNNI/BF16 or AMX
# TensorFlow leaves oneDNN off (kernels() below, logged per run). Figures:
# bench/results-speed*.json (docs/speed.md); variables set beforehand win, and
# ONEDNN_MAX_CPU_ISA still caps oneDNN by hand.
INTRA_OP_THREADS = 1


@dataclasses.dataclass(frozen=True)
class DeviceSettings:
    """What one training run actually uses on its device (logged per run)."""
    device: str
    precision: str
    jit_compile: bool
    steps_per_execution: int
    deterministic: bool


# CPU (bench/benchmark.py on the 2-core machine): float32 without XLA (XLA made the model
# 3.6x slower there), one step per dispatch, op determinism (bit-for-bit reruns).
# GPU (bench/gpu_check.py, one H100, the same model under Keras 3 on JAX, docs/speed.md):
# at 224px and batch 64, float32 ran 4,903-4,927 images/s, bfloat16 with 16 steps per
# execution 6,314-6,864. XLA under TensorFlow was not measured there, so it stays off; op
# determinism forces slower deterministic GPU kernels, so it is off on a GPU.
AUTO = {"cpu": DeviceSettings("cpu", "float32", False, 1, True),
        "gpu": DeviceSettings("gpu", "mixed_float16", False, 16, False)}


def device_settings(train, gpu):
    """The concrete settings of a config.Train on this kind of device: each `auto` becomes
    what measured fastest there."""
    auto = AUTO["gpu" if gpu else "cpu"]
    chosen = {k: getattr(auto, k) if getattr(train, k) == "auto" else getattr(train, k)
              for k in ("precision", "jit_compile", "steps_per_execution", "deterministic")}
    return dataclasses.replace(auto, **chosen)


def set_cpu_environment():
    """Environment TensorFlow reads when it loads: quiet start-up, its CPU thread pools."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's INFO/WARNING lines
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(INTRA_OP_THREADS))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(len(os.sched_getaffinity(0))))


# One lock file per GPU index, machine-wide: DVC's queue runs each experiment in its own
# workspace, so the locks cannot live in the repository.
GPU_LOCKS = os.environ.get("INITSTUDY_GPU_LOCKS") or os.path.join(tempfile.gettempdir(),
                                                                  "initstudy-gpu-locks")
_held_lock = None  # the lock this process holds until it exits


def gpu_count():
    """GPUs on this machine without starting CUDA: INITSTUDY_GPUS (set it to simulate a
    count), else the lines of `nvidia-smi -L`; 0 without a driver."""
    if os.environ.get("INITSTUDY_GPUS"):
        return int(os.environ["INITSTUDY_GPUS"])
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listing.splitlines())


def claim_gpu(poll_seconds=2.0):
    """Takes one free GPU for this process: an exclusive lock per GPU index, held until the
    process exits, and CUDA_VISIBLE_DEVICES set to it before TensorFlow starts, so that
    `dvc queue start -j N` runs one training per GPU. Waits while every GPU is taken. Does
    nothing without GPUs or when CUDA_VISIBLE_DEVICES is already set. Returns the index."""
    global _held_lock
    count = gpu_count()
    if count == 0 or "CUDA_VISIBLE_DEVICES" in os.environ:
        return None
    os.makedirs(GPU_LOCKS, exist_ok=True)
    waiting = False
    while True:
        for index in range(count):
            lock = open(os.path.join(GPU_LOCKS, f"gpu{index}.lock"), "a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            _held_lock = lock
            os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
            print(f"using GPU {index} of {count}", flush=True)
            return index
        if not waiting:
            print(f"all {count} GPUs are in use by other runs; waiting for one", flush=True)
            waiting = True
        time.sleep(poll_seconds)


# What TensorFlow's C++ side prints on every start of a CPU machine (or one without a CUDA
# driver) before any Python logging applies; TF_CPP_MIN_LOG_LEVEL does not reach these.
START_NOISE = ("absl::InitializeLog", "cudart_stub.cc", "cuda_platform.cc", "cuda_dnn.cc",
               "cuda_fft.cc", "cuda_blas.cc", "cpu_feature_guard.cc", "rebuild TensorFlow with",
               "Unable to register cu", "computation_placer.cc", "TF-TRT Warning",
               "oneDNN custom operations are on")


def start_tensorflow():
    """Imports TensorFlow and finds its devices with stderr caught at the file-descriptor
    level, then passes on every caught line that is not known start-up noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines():
                if not any(noise in line for noise in START_NOISE):
                    print(line, file=sys.stderr)


# The CPU features that decide TensorFlow's kernels, best first: TensorFlow turns oneDNN on
# by itself only on CPUs with AVX-512 VNNI or BF16, AVX-VNNI or AMX; on an AVX2-only CPU it
# runs its Eigen kernels unless TF_ENABLE_ONEDNN_OPTS=1 (docs/speed.md).
ISA_FLAGS = ("amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2", "avx")


def cpu_info():
    """(the CPU's model name or None, its feature flags) from /proc/cpuinfo; None where it
    cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    model = next((line.split(":", 1)[1].strip() for line in lines
                  if line.startswith("model name")), None)
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return model, set(flags)


def kernels():
    """{"cpu": model name, "isa": the best of ISA_FLAGS it has, "onednn": whether TensorFlow
    runs oneDNN's kernels in this process}: what each run logs (docs/speed.md)."""
    from tensorflow.python.util import _pywrap_util_port

    model, flags = cpu_info() or (None, set())
    return {"cpu": model or "unknown", "isa": next((f for f in ISA_FLAGS if f in flags), "unknown"),
            "onednn": bool(_pywrap_util_port.IsMklEnabled())}


def resolve(train):
    """DeviceSettings for this machine from a config.Train (each `auto` resolved)."""
    import tensorflow as tf

    return device_settings(train, gpu=bool(tf.config.list_physical_devices("GPU")))


def apply(settings):
    """Sets the global Keras dtype policy; call before building the model."""
    import keras

    keras.mixed_precision.set_global_policy(settings.precision)

