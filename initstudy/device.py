"""Device-aware training settings: `auto` picks, per device, what measured fastest."""

# CPU (bench/benchmark.py on the 2-core machine): float32 without XLA (XLA made the seed
# model 3.6x slower there), one step per dispatch, op determinism (bit-for-bit reruns).
# GPU (bench/gpu_check.py, one H100, the same model under Keras 3 on JAX, README "Speed"):
# at 224px and batch 64, float32 ran 4,903-4,927 images/s, bfloat16 with 16 steps per
# execution 6,314-6,864; at batch 256 with 4 steps, mixed float16 10,069, bfloat16 9,633.
# So a GPU gets mixed precision and 16 steps per execution. XLA under TensorFlow was not
# measured there (no TensorFlow on the lent machines), so it stays off until it is.
# Op determinism forces slower deterministic GPU kernels, so it is off on a GPU.
GPU_AUTO = {"precision": "mixed_float16", "jit_compile": False, "deterministic": False,
            "steps_per_execution": 16}
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def resolve(train):
    """The concrete settings for this machine from train.precision, train.jit_compile,
    train.steps_per_execution and train.deterministic (each `auto` or a value)."""
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    auto = {"precision": "float32", "jit_compile": False, "steps_per_execution": 1,
            "deterministic": True}
    if gpu:
        auto.update(GPU_AUTO)
    chosen = {k: auto[k] if train.get(k, "auto") == "auto" else train[k] for k in auto}
    return {"device": "gpu" if gpu else "cpu", **chosen}


def apply(settings):
    """Sets the global Keras dtype policy; call before building the model."""
    import keras

    keras.mixed_precision.set_global_policy(settings["precision"])


def make_deterministic(seed):
    """Seeds Python, NumPy and TensorFlow and turns on TensorFlow's op determinism."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
