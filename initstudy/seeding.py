"""Seeds: one call that makes a run's random draws and TensorFlow's ops repeatable."""


def make_deterministic(seed):
    """Seeds Python, NumPy and TensorFlow and turns on TensorFlow's op determinism."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
