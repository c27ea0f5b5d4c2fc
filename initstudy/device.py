"""The device a run trains on: its concrete settings (config.Train.device_settings) and seeds."""
import os

# oneDNN picks its CPU kernels by instruction set, and each set sums in another order: the
# same training gave three different sets of weights under AVX2, AVX and SSE4.1 (and TF's
# own Eigen kernels call oneDNN's sgemm, so TF_ENABLE_ONEDNN_OPTS=0 does not escape it;
# bench/portability.py). Capping at AVX2, what our 2-core machines have, keeps a CPU with
# AVX-512 on the same kernels as the committed run. Set ONEDNN_MAX_CPU_ISA=ALL to lift it.
CPU_ISA = "AVX2"


def set_cpu_environment():
    """Environment TensorFlow reads when it loads: quiet start-up, capped oneDNN kernels."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's INFO/WARNING lines
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", CPU_ISA)
    os.environ.setdefault("DNNL_MAX_CPU_ISA", os.environ["ONEDNN_MAX_CPU_ISA"])


def resolve(train):
    """config.DeviceSettings for this machine from a config.Train (each `auto` resolved)."""
    import tensorflow as tf

    return train.device_settings(gpu=bool(tf.config.list_physical_devices("GPU")))


def apply(settings):
    """Sets the global Keras dtype policy; call before building the model."""
    import keras

    keras.mixed_precision.set_global_policy(settings.precision)


def make_deterministic(seed):
    """Seeds Python, NumPy and TensorFlow and turns on TensorFlow's op determinism."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
