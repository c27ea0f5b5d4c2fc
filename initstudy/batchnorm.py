"""Precise BN: BatchNorm's population statistics recomputed before a model is scored.

Keras keeps BN's moving mean and variance as an exponential average (momentum 0.99) of the
batches it trained on, so after a short training they lag the weights: scored with them, a
model can look far worse than it is. Before every inference-mode number the study sets them
to the plain average of the batch statistics over a fixed set of training batches, weights
frozen (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"; fvcore's update_bn_stats,
pycls' precise BN). The statistics a training left are kept beside the model
(`raw_statistics`), so both scores can be reported."""
import weakref

import numpy as np


def batch_norm_layers(model):
    import keras

    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def statistics(model):
    """{layer name: (moving mean, moving variance)} as NumPy arrays."""
    return {layer.name: (layer.moving_mean.numpy(), layer.moving_variance.numpy())
            for layer in batch_norm_layers(model)}


def set_statistics(model, stats):
    for layer in batch_norm_layers(model):
        mean, variance = stats[layer.name]
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)


def save_statistics(path, stats):
    np.savez(path, **{f"{name}/{part}": value for name, pair in stats.items()
                      for part, value in zip(("mean", "variance"), pair)})


def load_statistics(path):
    with np.load(path) as f:
        names = {key.rsplit("/", 1)[0] for key in f.files}
        return {name: (f[f"{name}/mean"], f[f"{name}/variance"]) for name in names}


_forward = weakref.WeakKeyDictionary()  # model -> its compiled forward pass with momentum 0


def recalibrate(model, dataset):
    """Sets every BN layer's moving mean and variance to the average of its batch statistics
    over `dataset` (images, labels), with the weights untouched; returns the batch count.
    With momentum 0 a compiled forward pass in training mode leaves each batch's own
    statistics in the moving ones; they are summed in float64 and averaged at the end
    (eagerly, batch by batch, this pass cost 4x as much, same scores: docs/speed.md)."""
    import tensorflow as tf

    layers = batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    sums, count = None, 0
    try:
        for layer in layers:
            layer.momentum = 0.0  # read when first traced, below
        forward = _forward.get(model)  # traced once per model: every epoch's pass reuses it
        if forward is None:
            held = weakref.ref(model)  # the cache must not keep the model alive
            forward = _forward[model] = tf.function(lambda images: held()(images, training=True))
        for images, _ in dataset:
            forward(images)
            batch = [(layer.moving_mean.numpy().astype(np.float64),
                      layer.moving_variance.numpy().astype(np.float64)) for layer in layers]
            sums = batch if sums is None else [(m + bm, v + bv)
                                               for (m, v), (bm, bv) in zip(sums, batch)]
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    for layer, (mean, variance) in zip(layers, sums or []):
        layer.moving_mean.assign((mean / count).astype(np.float32))
        layer.moving_variance.assign((variance / count).astype(np.float32))
    return count
