"""The reference study's MobileNetV2, written out layer by layer, with the initializer on
every conv."""
import keras

from initstudy.initializers import ORTHOGONAL, lsuv, make_initializer, orthogonal_gain, unit_channels

# (expansion input channels, output channels, stride) of the 16 bottlenecks, as in the reference.
BLOCKS = (
    (16, 24, 2), (24, 24, 1),
    (24, 32, 2), (32, 32, 1), (32, 32, 1),
    (32, 64, 2), (64, 64, 1), (64, 64, 1), (64, 64, 1),
    (64, 96, 1), (96, 96, 1), (96, 96, 1),
    (96, 160, 2), (160, 160, 1), (160, 160, 1),
    (160, 320, 1),
)
EXPANSION = 6
# How each residual branch enters the stream (model.residual_scale): `none` adds it as it is
# (the reference); `skipinit` scales it by a learnable scalar that starts at 0 (De & Smith
# 2020), so every block starts as the identity and a BN-free net's signal does not grow with
# each add.


@keras.saving.register_keras_serializable(package="initstudy")
class ResidualScale(keras.layers.Layer):
    """SkipInit: the residual branch times one learnable scalar, initially `initial`."""

    def __init__(self, initial=0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial = initial

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), name="scale", trainable=True,
                                     initializer=keras.initializers.Constant(self.initial))

    def call(self, x):
        return x * keras.ops.cast(self.scale, x.dtype)

    def get_config(self):
        return {**super().get_config(), "initial": self.initial}


class _Builder:
    """Adds conv/BN/activation layers, each conv with its own freshly seeded initializer."""

    def __init__(self, initializer, activation, seed, batch_norm, depthwise_fan,
                 residual_scale="none"):
        self.initializer, self.activation = initializer, activation
        self.seed, self.batch_norm, self.depthwise_fan = seed, batch_norm, depthwise_fan
        self.residual_scale = residual_scale
        self.n_kernels = 0

    def _init(self, shape, depthwise=False):
        self.n_kernels += 1
        seed = self.seed * 1000 + self.n_kernels  # distinct per layer and per run
        return make_initializer(self.initializer, seed, shape, depthwise, self.depthwise_fan,
                                self.activation)

    def conv(self, x, filters, kernel, stride, name, padding="same"):
        init = self._init((kernel, kernel, x.shape[-1], filters))
        return keras.layers.Conv2D(filters, kernel, stride, padding, use_bias=False,
                                   kernel_initializer=init, name=name)(x)

    def depthwise(self, x, stride, name, padding="same"):
        init = self._init((3, 3, x.shape[-1], 1), depthwise=True)
        layer = keras.layers.DepthwiseConv2D(3, stride, padding, use_bias=False,
                                             depthwise_initializer=init, name=name)
        x = layer(x)
        if self.initializer in ORTHOGONAL and self.depthwise_fan == "per_channel":
            gain = orthogonal_gain(self.initializer, self.activation)
            layer.kernel.assign(unit_channels(layer.kernel.numpy(), gain))
        return x

    def bn(self, x, name):
        return keras.layers.BatchNormalization(name=name + "_bn")(x) if self.batch_norm else x

    def act(self, x, name):
        if self.activation == "relu6":
            return keras.layers.ReLU(max_value=6, name=name + "_act")(x)
        return keras.layers.Activation(self.activation, name=name + "_act")(x)

    def bottleneck(self, x, index, out_ch, stride):
        name = f"block{index}"
        shortcut = x
        keeps_shape = stride == 1 and x.shape[-1] == out_ch
        x = self.conv(x, x.shape[-1] * EXPANSION, 1, 1, name + "_expand")
        x = self.act(self.bn(x, name + "_expand"), name + "_expand")
        if stride == 2:  # the reference pads bottom/right, then a 'valid' strided depthwise
            x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=name + "_pad")(x)
        x = self.depthwise(x, stride, name + "_dw", "valid" if stride == 2 else "same")
        x = self.act(self.bn(x, name + "_dw"), name + "_dw")
        x = self.conv(x, out_ch, 1, 1, name + "_project")
        x = self.bn(x, name + "_project")
        if keeps_shape:
            if self.residual_scale == "skipinit":
                x = ResidualScale(name=name + "_scale")(x)
            x = keras.layers.Add(name=name + "_add")([x, shortcut])
        return x


def build_mobilenet_v2(num_classes, image_size, initializer, activation, *, seed=0,
                       input_size=None, input_mean=(127.5,) * 3, input_std=(127.5,) * 3,
                       batch_norm=True, depthwise_fan="keras", residual_scale="none",
                       input_dtype="uint8"):
    """The reference's MobileNetV2 (2,270,794 parameters at 224px, 10 classes) on uint8 images.

    The model takes images at their stored size (`input_size`) and resizes them itself, so
    the resize runs on the accelerator and only small uint8 tensors leave the input pipeline.
    """
    input_size = input_size or image_size
    b = _Builder(initializer, activation, seed, batch_norm, depthwise_fan, residual_scale)
    inputs = keras.Input((input_size, input_size, 3), dtype=input_dtype, name="image")
    x = keras.layers.Rescaling(1.0, name="to_float")(inputs)
    if image_size != input_size:
        x = keras.layers.Resizing(image_size, image_size, name="resize")(x)
    # Per-channel standardisation with the training split's statistics (from the manifest).
    x = keras.layers.Rescaling([1 / s for s in input_std],
                               [-m / s for m, s in zip(input_mean, input_std)],
                               name="standardize")(x)

    x = b.conv(x, 32, 3, 2, "stem_conv")
    x = b.act(b.bn(x, "stem_conv"), "stem_conv")
    x = b.depthwise(x, 1, "stem_dw")
    x = b.act(b.bn(x, "stem_dw"), "stem_dw")
    x = b.conv(x, 16, 1, 1, "stem_project")
    x = b.bn(x, "stem_project")
    for index, (_, out_ch, stride) in enumerate(BLOCKS, start=1):
        x = b.bottleneck(x, index, out_ch, stride)
    x = b.conv(x, 1280, 1, 1, "top_conv")
    x = b.act(b.bn(x, "top_conv"), "top_conv")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    # The reference leaves the classifier at Keras' default initializer; we only seed it.
    logits = keras.layers.Dense(num_classes, name="logits", dtype="float32",  # under mixed precision too
                                kernel_initializer=keras.initializers.GlorotUniform(seed * 1000))(x)
    return keras.Model(inputs, logits, name=f"mobilenet_v2_{initializer}_{activation}")


def initialize(model, initializer, images):
    """The data-dependent part of an initializer (LSUV's pass on `images`, a batch of training
    images): its per-layer rows, or None for the initializers that need no data."""
    if initializer != "lsuv":
        return None
    if images is None:
        raise ValueError("lsuv needs a batch of training images")
    return lsuv(model, images)


def data_inputs(manifest):
    """What the model needs to know about the prepared data (from its manifest)."""
    return {"num_classes": len(manifest["classes"]), "input_size": manifest["image_shape"][0],
            "input_mean": manifest["channel_mean"], "input_std": manifest["channel_std"]}


def build_for_experiment(model, experiment, manifest, seed, images=None):
    """The study's model (config.Model) for one config.Experiment, sized by the prepared data
    and initialized (LSUV on `images`): (model, LSUV rows or None)."""
    net = build_mobilenet_v2(image_size=model.image_size, initializer=experiment.initializer,
                             activation=experiment.activation, seed=seed,
                             batch_norm=model.batch_norm, depthwise_fan=model.depthwise_fan,
                             residual_scale=model.residual_scale, **data_inputs(manifest))
    return net, initialize(net, experiment.initializer, images)
