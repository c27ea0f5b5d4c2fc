import io
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from conftest import make_folder
from initstudy import files, shards, sources
from initstudy.errors import StudyError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]


def read_back(prepared, manifest, split):
    images, labels = [], []
    for x, y in shards.make_dataset(prepared, manifest, split, batch_size=128):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def test_mini_archive_round_trip(mini_archive, tmp_path):
    classes, splits = sources.read_image_folder(mini_archive, storage_size=32)
    out = str(tmp_path / "prepared")
    manifest = shards.write_prepared(classes, splits, out, num_shards=3,
                                   source={"folder": mini_archive})
    assert manifest["classes"] == CLASSES
    assert manifest["image_shape"] == [32, 32, 3]
    assert manifest["splits"]["train"]["count"] == 2000
    assert manifest["splits"]["test"]["per_class"] == {c: 50 for c in CLASSES}
    assert json.load(open(os.path.join(out, "manifest.json"))) == manifest
    for shard in manifest["splits"]["train"]["shards"]:
        assert files.file_sha256(os.path.join(out, shard["file"])) == shard["sha256"]
    assert not os.path.exists(out + ".tmp")

    images, labels = read_back(out, manifest, "test")
    assert images.shape == (500, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [50] * 10
    # pixels: the shards hold exactly what PIL decodes from the archive's JPEG files
    with tarfile.open(mini_archive) as tar:
        for cls, index in [("bird", "0007"), ("truck", "0049")]:
            raw = tar.extractfile(f"test/{cls}/{index}.jpg").read()
            want = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
            got = images[labels == CLASSES.index(cls)][int(index)]
            np.testing.assert_array_equal(got, want)


def test_shuffled_reading_is_seeded(mini_archive, tmp_path):
    classes, splits = sources.read_image_folder(mini_archive, 32, max_per_class=10)
    out = str(tmp_path / "prepared")
    manifest = shards.write_prepared(classes, splits, out, 2, {})
    first = [y.numpy() for _, y in shards.make_dataset(out, manifest, "train", 100, shuffle_seed=1)]
    again = [y.numpy() for _, y in shards.make_dataset(out, manifest, "train", 100, shuffle_seed=1)]
    other = [y.numpy() for _, y in shards.make_dataset(out, manifest, "train", 100, shuffle_seed=2)]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(other))
    assert sorted(np.concatenate(first).tolist()) == sorted(splits["train"][1].tolist())


def test_image_folder_of_any_size_and_mode_is_resized_to_storage_size(tmp_path):
    folder = make_folder(tmp_path, {"train": {"b": 3, "a": 2}, "test": {"a": 1, "b": 1}},
                         size=(20, 12), mode="L")
    classes, splits = sources.read_image_folder(folder, storage_size=16)
    assert classes == ["a", "b"]
    assert splits["train"][0].shape == (5, 16, 16, 3)
    assert splits["train"][1].tolist() == [0, 0, 1, 1, 1]


def test_folder_with_different_classes_is_refused(tmp_path):
    folder = make_folder(tmp_path, {"train": {"a": 1, "b": 1}, "test": {"a": 1, "c": 1}})
    with pytest.raises(StudyError, match="different classes .only in train: b; only in test: c"):
        sources.read_image_folder(folder, 16)


def test_corrupt_image_is_named(tmp_path):
    folder = make_folder(tmp_path, {"train": {"a": 1}, "test": {"a": 1}})
    (tmp_path / "train" / "a" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(StudyError, match="broken.jpg"):
        sources.read_image_folder(folder, 16)


def test_tfds_path_with_mocked_cifar10(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(sources, "_can_reach", lambda url: True)
    with tfds.testing.mock_data(num_examples=40):
        classes, splits, source = sources.read_tfds("cifar10", max_per_class=2)
    assert len(classes) == 10  # the mock keeps the label count, not CIFAR-10's names
    assert source["tfds"] == "cifar10" and source["version"].count(".") == 2
    assert "sha256" not in source  # no manual archive was read
    images, labels = splits["train"]
    assert images.shape[1:] == (32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).max() <= 2


def test_tfds_without_network_fails_fast_naming_the_offline_options(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "_can_reach", lambda url: False)
    with pytest.raises(StudyError) as error:
        sources.read_tfds("cifar10", data_dir=str(tmp_path))
    message = str(error.value)
    assert "no network" in message and "manual_dir" in message and "folder" in message
    assert "\n" not in message


def test_shards_are_written_in_canonical_bytes(mini_archive, tmp_path):
    """protobuf orders an Example's feature map differently in each process unless asked for
    deterministic serialization; canonical records make prepare's output repeat byte for byte."""
    import tensorflow as tf

    classes, splits = sources.read_image_folder(mini_archive, 32, max_per_class=5)
    first = shards.write_prepared(classes, splits, str(tmp_path / "a"), 2, {})
    again = shards.write_prepared(classes, splits, str(tmp_path / "b"), 2, {})
    assert first == again
    for split in sources.SPLITS:
        for path in shards.shard_paths(str(tmp_path / "a"), first, split):
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                canonical = tf.train.Example.FromString(record).SerializeToString(deterministic=True)
                assert record == canonical


def test_validation_is_carved_from_train_stratified_and_the_train_head_is_stratified(
        mini_archive, tmp_path):
    classes, splits = sources.read_image_folder(mini_archive, 32, max_per_class=40)
    carved = sources.split_validation(classes, splits, per_class=8, seed=0)
    assert list(carved) == ["train", "validation", "test"]
    assert np.bincount(carved["validation"][1]).tolist() == [8] * 10
    assert np.bincount(carved["train"][1]).tolist() == [32] * 10
    assert carved["test"][0] is splits["test"][0]  # the test split is untouched

    def keys(images):  # an image's bytes identify it
        return {im.tobytes() for im in images}

    train, held = keys(carved["train"][0]), keys(carved["validation"][0])
    assert not train & held and train | held == keys(splits["train"][0])
    # fixed by the seed, different for another
    again = sources.split_validation(classes, splits, 8, 0)
    np.testing.assert_array_equal(again["validation"][0], carved["validation"][0])
    assert keys(sources.split_validation(classes, splits, 8, 1)["validation"][0]) != held

    # stored class-interleaved: the first N records read back are a stratified subset
    out = str(tmp_path / "prepared")
    manifest = shards.write_prepared(classes, carved, out, 3, {}, {"per_class": 8, "seed": 0})
    labels = np.concatenate([y.numpy() for _, y in
                             shards.make_dataset(out, manifest, "train", 7, limit=50)])
    assert np.bincount(labels, minlength=10).tolist() == [5] * 10


def test_a_validation_split_that_would_empty_a_class_is_refused(mini_archive):
    classes, splits = sources.read_image_folder(mini_archive, 32, max_per_class=5)
    with pytest.raises(StudyError, match=r"prepare.validation_per_class = 5: class airplane has "
                                         r"only 5 training images"):
        sources.split_validation(classes, splits, 5, 0)
