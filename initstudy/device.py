"""Device-aware training settings: `auto` picks, per device, what measured fastest."""

# Measured (bench/benchmark.py, README "Speed"): on the 2-core CPU, float32 without XLA
# (XLA made the seed model 3.6x slower there). GPU defaults: see bench/gpu_check.sh results.
# Op determinism: bit-for-bit reruns on the CPU at no measurable cost there; on a GPU it
# forces slower deterministic kernels, so auto leaves it off (results vary in the last bits).
GPU_AUTO = {"precision": "mixed_float16", "jit_compile": False, "deterministic": False}
SMALL_IMAGE = 64  # at or below this size a step is short, so several run per dispatch
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def resolve(train, image_size):
    """The concrete settings for this machine from train.precision, train.jit_compile,
    train.steps_per_execution and train.deterministic (each `auto` or a value)."""
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    auto = {"precision": "float32", "jit_compile": False, "steps_per_execution": 1,
            "deterministic": True}
    if gpu:
        auto.update(GPU_AUTO, steps_per_execution=16 if image_size <= SMALL_IMAGE else 1)
    chosen = {k: auto[k] if train.get(k, "auto") == "auto" else train[k] for k in auto}
    return {"device": "gpu" if gpu else "cpu", **chosen}


def apply(settings):
    """Sets the global Keras dtype policy; call before building the model."""
    import keras

    keras.mixed_precision.set_global_policy(settings["precision"])
