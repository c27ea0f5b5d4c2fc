"""The prepared data: TFRecord shards and their manifest in data/prepared, written all at
once, each shard checked against its sha256 before it is read, and read back as batches.
Reading the sources they are made from is initstudy.sources'."""
import json
import os
import shutil

import numpy as np

from initstudy.errors import StudyError
from initstudy.files import file_sha256, progress

MANIFEST = "manifest.json"
PREPARED = "data/prepared"  # the prepare stage's output, read by every later stage


def record_features():
    """The format write_tfrecords writes: raw uint8 image bytes and an int64 label."""
    import tensorflow as tf

    return {"image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64)}


def shard_paths(prepared_dir, manifest, split):
    return [os.path.join(prepared_dir, s["file"]) for s in manifest["splits"][split]["shards"]]


def write_tfrecords(images, labels, out_dir, split, num_shards):
    """Raw uint8 images (decoding a raw record is ~3x faster than PNG) in round-robin shards."""
    import tensorflow as tf

    num_shards = max(1, min(num_shards, len(images)))
    paths = [os.path.join(out_dir, f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord")
             for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(p) for p in paths]
    for i, (image, label) in enumerate(progress(zip(images, labels), total=len(images),
                                                 desc=f"writing {split}", unit=" img")):
        example = tf.train.Example(features=tf.train.Features(feature={
            "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        }))
        # deterministic: protobuf otherwise orders the feature map differently per process
        writers[i % num_shards].write(example.SerializeToString(deterministic=True))
    for w in writers:
        w.close()
    return [{"file": os.path.basename(p), "count": len(range(i, len(images), num_shards)),
             "sha256": file_sha256(p)} for i, p in enumerate(paths)]


def check_varied(splits, channel_std, source=None):
    """Refuses, in one line, data no model can learn from: a split in which a channel has one
    value throughout (std 0; the model's input standardisation divides by the training split's
    std as the manifest records it, to 4 decimals), or whose images are all the same (a set of
    16-bit images that all decoded to white, copies of one image)."""
    what = (source or {}).get("folder") or (source or {}).get("tfds") or "the data"
    allowed = "prepare accepts images that differ, with pixels that vary in every channel"
    for split, (images, _) in splits.items():
        channels = images.shape[-1]
        names = "RGB" if channels == 3 else [str(c) for c in range(channels)]
        low, high = images.min(axis=(0, 1, 2)), images.max(axis=(0, 1, 2))
        flat = [c for c in range(channels)
                if low[c] == high[c] or (split == "train" and channel_std[c] == 0)]
        if flat:
            values = ", ".join(f"{names[c]} {low[c]}" if low[c] == high[c] else
                               f"{names[c]} all but a few pixels" for c in flat)
            raise StudyError(f"{what}: the {split} images do not vary in channel(s) "
                             f"{', '.join(names[c] for c in flat)} (every pixel the same: "
                             f"{values}; std 0, which the model's input standardisation "
                             f"divides by); {allowed}, in every split")
        if len(images) > 1 and (images.min(axis=0) == images.max(axis=0)).all():
            raise StudyError(f"{what}: all {len(images)} {split} images are identical; "
                             f"{allowed}, in every split")


def write_prepared(classes, splits, out_dir, num_shards, source, validation=None):
    """Shards and manifest into out_dir, built beside it and renamed into place at the end;
    `validation` records how the validation split was drawn. Data no model can learn from is
    refused first (check_varied); a failure leaves out_dir as it was and no temp folder."""
    train_images = splits["train"][0]
    # per-channel statistics of the training split, for the model's standardisation
    channel_std = train_images.std(axis=(0, 1, 2), dtype=np.float64).round(4).tolist()
    check_varied(splits, channel_std, source)
    manifest = {
        "source": source,
        "validation": validation,
        "classes": list(classes),
        "image_shape": list(train_images.shape[1:]),
        "channel_mean": train_images.mean(axis=(0, 1, 2), dtype=np.float64).round(4).tolist(),
        "channel_std": channel_std,
        "splits": {},
    }
    out_dir = out_dir.rstrip("/")
    tmp, old = out_dir + ".tmp", out_dir + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        for split, (images, labels) in splits.items():
            counts = np.bincount(labels, minlength=len(classes))
            manifest["splits"][split] = {
                "count": int(len(labels)),
                "per_class": {c: int(n) for c, n in zip(classes, counts)},
                "shards": write_tfrecords(images, labels, tmp, split, num_shards),
            }
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=2)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # the last output is moved aside, not deleted, until the new one is in place
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(out_dir):
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return manifest


def load_manifest(prepared_dir, verify=True):
    """The prepared data's manifest; with `verify`, every shard is checked against it first,
    so no reader ever trains on or scores a truncated or changed shard."""
    path = os.path.join(prepared_dir, MANIFEST)
    if not os.path.exists(path):
        raise StudyError(f"{path} is missing: run the prepare stage first (dvc repro prepare)")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise StudyError(f"{path} is unreadable ({e}); restore it with dvc checkout or re-run "
                         "prepare") from None
    if verify:
        verify_shards(prepared_dir, manifest)
    return manifest


def verify_shards(prepared_dir, manifest):
    """Refuses shards that were truncated or changed since prepare wrote the manifest."""
    for split, info in manifest["splits"].items():
        if sum(s["count"] for s in info["shards"]) != info["count"]:
            raise StudyError(f"{prepared_dir}/{MANIFEST}: {split} shard counts do not add up "
                             f"to {info['count']}; re-run prepare (dvc repro -f prepare)")
        for shard in info["shards"]:
            path = os.path.join(prepared_dir, shard["file"])
            if not os.path.exists(path) or file_sha256(path) != shard["sha256"]:
                raise StudyError(f"shard {path} is missing, truncated or changed (sha256 differs "
                                 "from the manifest); restore it with dvc checkout or re-run prepare")


def fixed_batch(prepared_dir, manifest, images, seed):
    """The first training batch a run with this seed would see (same shuffle)."""
    return next(iter(make_dataset(prepared_dir, manifest, "train", images, shuffle_seed=seed)))


def make_dataset(prepared_dir, manifest, split, batch_size, shuffle_seed=None, epochs=(0, 1),
                 limit=None):
    """Batches of (uint8 images, int32 labels) from the shards: parallel reads (interleaved in
    the order prepare wrote them), records cached in memory, parsing per batch, prefetch.
    `limit` keeps the first N records (unshuffled).

    With a shuffle_seed, epochs (first, end) are yielded back to back, each shuffled by
    (seed, epoch) alone, so a run resumed at epoch k sees the batches an uninterrupted run
    would have seen.
    """
    import tensorflow as tf

    info = manifest["splits"][split]
    files = shard_paths(prepared_dir, manifest, split)
    shape = manifest["image_shape"]
    features = record_features()

    def parse_batch(serialized):
        ex = tf.io.parse_example(serialized, features)
        images = tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8), [-1, *shape])
        return images, tf.cast(ex["label"], tf.int32)

    records = tf.data.TFRecordDataset(files, num_parallel_reads=len(files)).cache()
    records = records.apply(tf.data.experimental.assert_cardinality(info["count"]))
    if limit is not None:
        records = records.take(limit)
    if shuffle_seed is None:
        batches = records.batch(batch_size)
    else:
        # Python-int seeds per epoch: op determinism refuses tensor seeds.
        per_epoch = [records.shuffle(info["count"], seed=shuffle_seed * 100_003 + epoch)
                     .batch(batch_size) for epoch in range(*epochs)]
        # joined as a balanced tree: a batch passes log2(epochs) nested datasets, not epochs
        while len(per_epoch) > 1:
            pairs = [per_epoch[i:i + 2] for i in range(0, len(per_epoch), 2)]
            per_epoch = [p[0].concatenate(p[1]) if len(p) == 2 else p[0] for p in pairs]
        batches = per_epoch[0]
    return batches.map(parse_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
