"""prepare reads exactly what dvc.yaml says it depends on, records its hash, and turns every
input that would change the data unseen into a one-line error before any output is written."""
import io
import os
import shutil
import tarfile

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import ROOT, listing, make_folder, png, sh, stage, build_study, write_params
from initstudy import files, shards, sources
from initstudy.errors import StudyError

LAYOUT = {"train": {"a": 4, "b": 4}, "test": {"a": 1, "b": 1}}


def add(tar, name, payload=None, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(payload) if payload is not None else 0
    tar.addfile(info, io.BytesIO(payload) if payload is not None else None)


def make_archive(path, layout=LAYOUT, seed=0, extra=()):
    """A .tar.gz of {split: {class: n}} 8x8 PNGs, then `extra` (name, payload, kind, link)
    members; `seed` changes every pixel."""
    count = 0
    with tarfile.open(path, "w:gz") as tar:
        for split, classes in layout.items():
            for cls, n in classes.items():
                add(tar, f"{split}/{cls}", kind=tarfile.DIRTYPE)
                for i in range(n):
                    count += 1
                    add(tar, f"{split}/{cls}/{i}.png", png(seed * 1000 + count))
        for member in extra:
            add(tar, *member)
    return str(path)


def message(path, **kwargs):
    with pytest.raises(StudyError) as error:
        sources.read_image_folder(path, 8, **kwargs)
    assert "\n" not in str(error.value) and " at 0x" not in str(error.value)
    return str(error.value)


# ---------------------------------------------------------------- in process: the messages
def test_an_empty_class_folder_is_named_in_a_folder_and_in_a_tar(tmp_path):
    folder = make_folder(tmp_path / "images", {"train": {"a": 4, "b": 0}, "test": {"a": 1, "b": 0}})
    assert message(folder) == f"class folder test/b in {folder!r} holds no images"
    archive = make_archive(tmp_path / "x.tar.gz",
                           {"train": {"a": 4, "b": 4}, "test": {"a": 1, "b": 0}})
    assert message(archive) == f"class folder test/b in {archive!r} holds no images"


@pytest.mark.parametrize("kind,word", [(tarfile.SYMTYPE, "symlink"),
                                       (tarfile.LNKTYPE, "hard link")])
def test_a_link_member_is_named(tmp_path, kind, word):
    archive = make_archive(tmp_path / "x.tar.gz", extra=[("train/a/9.png", None, kind, "0.png")])
    assert message(archive) == (f"{archive}: train/a/9.png: a {word} member (links in an archive "
                                "are not followed); store the file itself (tar --dereference "
                                "--hard-dereference)")


def test_a_class_of_links_only_and_a_linked_class_folder_are_named(tmp_path):
    only_links = make_archive(tmp_path / "x.tar.gz", {"train": {"a": 4}, "test": {"a": 1}},
                              extra=[("train/b", None, tarfile.DIRTYPE, ""),
                                     ("train/b/0.png", None, tarfile.SYMTYPE, "../a/0.png"),
                                     ("test/b/0.png", None, tarfile.SYMTYPE, "../a/0.png")])
    assert message(only_links).startswith(f"{only_links}: train/b/0.png: a symlink member")
    linked_folder = make_archive(tmp_path / "y.tar.gz", {"train": {"a": 4}, "test": {"a": 1}},
                                 extra=[("test/b", None, tarfile.SYMTYPE, "/elsewhere/b")])
    assert message(linked_folder).startswith(f"{linked_folder}: test/b: a symlink member")


def test_a_class_in_one_split_is_named(tmp_path):
    archive = make_archive(tmp_path / "x.tar.gz", {"train": {"a": 4, "b": 4}, "test": {"a": 1}})
    assert message(archive) == (f"prepare.folder = {archive!r}: train and test have different "
                                "classes (only in train: b)")


def test_a_file_that_is_not_an_image_is_named_in_words(tmp_path):
    archive = make_archive(tmp_path / "x.tar.gz", extra=[("train/b/9.png", b"not an image")])
    assert message(archive) == (f"{archive}: train/b/9.png: not an image PIL can read "
                                "(cannot identify image file)")
    folder = make_folder(tmp_path / "images", LAYOUT)
    (tmp_path / "images" / "test" / "a" / "0.png").write_bytes(png(0)[:60])  # truncated
    assert message(folder).startswith(f"{folder}: test/a/0.png: not an image PIL can read (")


def test_a_member_stored_twice_is_named(tmp_path):
    archive = make_archive(tmp_path / "x.tar.gz", extra=[("test/a/0.png", png(5))])
    assert message(archive) == f"{archive}: test/a/0.png: appears twice in the archive"


def test_files_with_names_that_are_not_images_are_skipped_and_counted(tmp_path, capsys):
    archive = make_archive(tmp_path / "x.tar.gz", extra=[("train/a/notes.txt", b"hello")])
    classes, splits = sources.read_image_folder(archive, 8)
    assert classes == ["a", "b"] and len(splits["train"][1]) == 8
    log = capsys.readouterr().out
    assert "skipped 1 file(s) whose names are not images (train/a/notes.txt)" in log


def test_the_source_hash_is_the_archive_sha256_or_a_stable_hash_of_the_folder(tmp_path):
    archive = make_archive(tmp_path / "x.tar.gz")
    assert sources.source_hash(archive) == {"sha256": files.file_sha256(archive)}
    first = sources.source_hash(make_folder(tmp_path / "one", LAYOUT))
    assert first["files"] == 10
    # the same files written in another order hash the same; a renamed or changed one does not
    reversed_layout = {s: dict(reversed(c.items())) for s, c in LAYOUT.items()}
    second = make_folder(tmp_path / "two", reversed_layout)
    assert sources.source_hash(second) == first
    class_a = tmp_path / "two" / "train" / "a"
    os.rename(class_a / "3.png", class_a / "7.png")
    assert sources.source_hash(second)["sha256"] != first["sha256"]
    (tmp_path / "one" / "test" / "b" / "0.png").write_bytes(png(99))
    assert sources.source_hash(str(tmp_path / "one"))["sha256"] != first["sha256"]


def test_source_line_names_the_path_as_given_and_its_hash():
    sha = "d34c68f61cca57aa9144c8f25bda427abb9921bd642d5857a2fc1a6b4416f965"
    line = sources.source_line
    assert line({"source": {"folder": "data/cifar10-jpeg.tar.gz", "sha256": sha}}) == \
        f"data: data/cifar10-jpeg.tar.gz (sha256 {sha})"
    assert line({"source": {"folder": "/imgs", "sha256": sha, "files": 12}}) == \
        f"data: /imgs (sha256 {sha} over 12 image files' paths and bytes)"
    assert line({"source": {"tfds": "cifar10", "version": "3.0.2", "archive": "/m/c.tar.gz",
                            "sha256": sha}}) == \
        f"data: tensorflow-datasets cifar10 3.0.2 from /m/c.tar.gz (sha256 {sha})"
    assert line({"source": {"tfds": "cifar10", "version": "3.0.2"}}) == \
        "data: tensorflow-datasets cifar10 3.0.2 (downloaded and checked by tensorflow-datasets)"
    assert line({"source": {"folder": "data/x.tar.gz"}}) == \
        "data: data/x.tar.gz (no sha256 recorded: re-run prepare)"


# ---------------------------------------------------------------- nested folders, bit depths
def write_tree(root, files):
    """{relative path: bytes} as files under `root` and, the same members in the same order, as
    `root`.tar.gz; returns (folder, archive)."""
    with tarfile.open(f"{root}.tar.gz", "w:gz") as tar:
        for relpath, payload in files.items():
            (root / relpath).parent.mkdir(parents=True, exist_ok=True)
            (root / relpath).write_bytes(payload)
            add(tar, relpath, payload)
    return str(root), f"{root}.tar.gz"


def decoded(payload):
    return np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))


def test_images_in_folders_nested_in_a_class_folder_are_read_and_hashed(tmp_path, capsys):
    # 20 train and 6 test images, half or more of each class in sub/ (the last in sub/deeper/)
    files = {}
    for split, n in [("train", 10), ("test", 3)]:
        for cls in ("a", "b"):
            for i in range(n):
                sub = "" if i < n // 2 else "sub/" if i < n - 1 else "sub/deeper/"
                files[f"{split}/{cls}/{sub}{i}.png"] = png(len(files))
    folder, archive = write_tree(tmp_path / "images", files)
    from_folder = sources.read_image_folder(folder, 8)
    assert "read 14 image(s) in folders nested in a class folder as images of that class " \
           "(test/a/sub/1.png, test/a/sub/deeper/2.png, test/b/sub/1.png, ...)" in \
           capsys.readouterr().out
    classes, splits = sources.read_image_folder(archive, 8)
    assert classes == from_folder[0] == ["a", "b"]
    for split, n in [("train", 10), ("test", 3)]:
        images, labels = splits[split]
        assert labels.tolist() == [0] * n + [1] * n
        np.testing.assert_array_equal(images, from_folder[1][split][0])  # folder == archive
        # each class in the order of its paths: the flat files, then sub/, sub/deeper/
        ordered = sorted(files)  # (a flat name sorts before "sub/...": "0.png" < "sub")
        want = [decoded(files[p]) for p in ordered if p.startswith(f"{split}/")]
        np.testing.assert_array_equal(images, np.stack(want))
    # the folder's hash covers the nested images: a changed one changes it
    before = sources.source_hash(folder)
    assert before["files"] == 26
    (tmp_path / "images" / "train" / "b" / "sub" / "deeper" / "9.png").write_bytes(png(99))
    assert sources.source_hash(folder)["sha256"] != before["sha256"]
    # a nested file that is not an image is counted as skipped, not dropped unseen
    (tmp_path / "images" / "train" / "a" / "sub" / "notes.txt").write_text("x")
    sources.read_image_folder(folder, 8)
    assert "skipped 1 file(s) whose names are not images (train/a/sub/notes.txt)" in \
           capsys.readouterr().out


def test_a_set_with_every_image_nested_is_read_and_an_empty_class_still_named(tmp_path):
    files = {f"{split}/{cls}/{sub}/{i}.png": png(i)
             for split in ("train", "test") for cls in ("a", "b")
             for sub in ("x", "y/z") for i in range(2)}
    for path in write_tree(tmp_path / "images", files):
        classes, splits = sources.read_image_folder(path, 8)
        assert classes == ["a", "b"]
        assert [len(splits[s][1]) for s in sources.SPLITS] == [8, 8]
    # a class folder with nothing but an empty subfolder still holds no images
    (tmp_path / "images" / "test" / "c" / "empty").mkdir(parents=True)
    (tmp_path / "images" / "train" / "c" / "sub").mkdir(parents=True)
    (tmp_path / "images" / "train" / "c" / "sub" / "0.png").write_bytes(png(0))
    assert message(str(tmp_path / "images")) == \
        f"class folder test/c in {str(tmp_path / 'images')!r} holds no images"


def test_a_nested_link_member_is_named(tmp_path):
    archive = make_archive(tmp_path / "x.tar.gz",
                           extra=[("train/a/sub/9.png", None, tarfile.SYMTYPE, "../0.png")])
    assert message(archive).startswith(f"{archive}: train/a/sub/9.png: a symlink member")


def wide(values, mode, fmt):
    """The bytes of a `fmt` file of the 2-D array `values`, which PIL opens in mode `mode`."""
    buffer = io.BytesIO()
    if mode == "I;16B":
        image = Image.frombytes(mode, values.shape[::-1], values.astype(">u2").tobytes())
    else:
        image = Image.fromarray(values.astype({"I;16": np.uint16, "I": np.int32,
                                               "F": np.float32}[mode]))
    image.save(buffer, format=fmt)
    assert Image.open(buffer).mode == mode
    return buffer.getvalue()


@pytest.mark.parametrize("mode,fmt", [("I;16", "PNG"), ("I;16B", "TIFF"), ("I", "TIFF"),
                                      ("F", "TIFF")])
def test_images_of_more_than_8_bits_are_scaled_not_clipped_white(tmp_path, mode, fmt):
    rng = np.random.default_rng(0)
    raw, files = {}, {}
    for split, n in [("train", 6), ("test", 1)]:
        for cls in "ab":
            for i in range(n):
                values = rng.integers(0, 65536, (8, 8))  # 16-bit grey
                if mode == "F":
                    values = values / 65535  # float, 0..1
                raw[f"{split}/{cls}/{i}.{fmt.lower()}"] = values
                files[f"{split}/{cls}/{i}.{fmt.lower()}"] = wide(values, mode, fmt)
    folder, _ = write_tree(tmp_path / "images", files)
    classes, splits = sources.read_image_folder(folder, 8)
    got = np.concatenate([splits[s][0] for s in sources.SPLITS])
    order = [p for s in sources.SPLITS for p in sorted(files) if p.startswith(f"{s}/")]
    values = np.stack([raw[p] for p in order])
    want = np.round(values * 255) if mode == "F" else values >> 8  # 8 bits, grey as RGB
    np.testing.assert_array_equal(got, np.repeat(want[..., None], 3, axis=3))
    if mode != "F":  # the high byte is value / 257 to within one step
        assert np.abs(got[..., 0] - np.round(values / 257)).max() <= 1
    manifest = shards.write_prepared(classes, splits, str(tmp_path / "prepared"), 1, {})
    assert min(manifest["channel_std"]) > 30 and 64 < manifest["channel_mean"][0] < 192


@pytest.mark.parametrize("mode,values,named", [
    ("I", np.full((8, 8), 70000), "a 32-bit integer image (mode I) with values 70000..70000"),
    ("F", np.full((8, 8), 2.5), "a float image (mode F) with values 2.5..2.5")])
def test_a_wide_image_outside_the_range_it_is_read_in_is_named(tmp_path, mode, values, named):
    folder = make_folder(tmp_path / "images", LAYOUT)
    (tmp_path / "images" / "train" / "a" / "9.tiff").write_bytes(wide(values, mode, "TIFF"))
    assert message(folder).startswith(f"{folder}: train/a/9.tiff: {named}; ")


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"])
def test_8_bit_modes_are_read_as_pil_converts_them(mode):
    image = Image.open(io.BytesIO(png(3))).convert(mode)
    np.testing.assert_array_equal(sources.rgb8(image), np.asarray(image.convert("RGB")))


def flat_png(color):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("case", ["all white", "one constant channel", "all the same image"])
def test_data_no_model_can_learn_from_is_refused_before_any_output(tmp_path, case):
    if case == "all white":  # what 16-bit images clipped to 255 used to prepare
        files = {f"{s}/{c}/{i}.png": flat_png((255, 255, 255))
                 for s in sources.SPLITS for c in "ab" for i in range(3)}
        named = ("the train images do not vary in channel(s) R, G, B (every pixel the same: "
                 "R 255, G 255, B 255; std 0")
    elif case == "one constant channel":
        files = {f"{s}/{c}/{i}.png": flat_png((i * 40, 7 + i, 0))
                 for s in sources.SPLITS for c in "ab" for i in range(3)}
        named = "the train images do not vary in channel(s) B (every pixel the same: B 0; std 0"
    else:
        files = {f"{s}/{c}/{i}.png": png(5) for s in sources.SPLITS for c in "ab" for i in range(3)}
        named = "all 6 train images are identical"
    folder, _ = write_tree(tmp_path / "images", files)
    classes, splits = sources.read_image_folder(folder, 8)
    out = tmp_path / "prepared"
    good = sources.read_image_folder(make_archive(tmp_path / "good.tar.gz"), 8)
    shards.write_prepared(*good, str(out), 1, {})
    before = {f: (out / f).read_bytes() for f in os.listdir(out)}
    with pytest.raises(StudyError) as error:
        shards.write_prepared(classes, splits, str(out), 1, {"folder": folder})
    assert str(error.value).startswith(f"{folder}: {named}") and "\n" not in str(error.value)
    assert str(error.value).endswith("prepare accepts images that differ, with pixels that vary "
                                     "in every channel, in every split")
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == before
    assert sorted(os.listdir(tmp_path)) == ["good.tar.gz", "images", "images.tar.gz", "prepared"]


def test_a_failed_write_leaves_the_last_prepared_data_and_no_temp_folder(tmp_path, monkeypatch):
    out = tmp_path / "prepared"
    good = sources.read_image_folder(make_archive(tmp_path / "good.tar.gz"), 8)
    shards.write_prepared(*good, str(out), 1, {})
    before = {f: (out / f).read_bytes() for f in os.listdir(out)}

    def disk_full(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(shards, "write_tfrecords", disk_full)
    with pytest.raises(OSError):
        shards.write_prepared(*good, str(out), 1, {})
    assert {f: (out / f).read_bytes() for f in os.listdir(out)} == before
    assert sorted(os.listdir(tmp_path)) == ["good.tar.gz", "prepared"]


# ---------------------------------------------------------------- the stage: exit 2, no output
@pytest.fixture(scope="module")
def prepared_study(tmp_path_factory):
    """A study folder whose prepare already ran on a good tiny archive."""
    root = tmp_path_factory.mktemp("prepared")
    study = root / "study"
    study.mkdir()
    params = build_study(study, "stages", make_archive(root / "good.tar.gz"))
    params["prepare"].update(max_per_class=None, shards=1, validation_per_class=2)
    write_params(study, params)
    stage(study, "stages.prepare")
    return study


def snapshot(folder):
    return {f: (folder / f).read_bytes() for f in listing(folder) if f != "params.yaml"}


@pytest.mark.parametrize("case", ["empty class", "symlink member", "class in one split",
                                  "not an image", "constant images"])
def test_bad_input_stops_prepare_in_one_line_and_keeps_the_last_outputs(
        prepared_study, tmp_path, case):
    study = tmp_path / "study"
    shutil.copytree(prepared_study, study)
    archive = tmp_path / "bad.tar.gz"
    if case == "empty class":
        make_archive(archive, {"train": {"a": 4, "b": 4}, "test": {"a": 1, "b": 0}})
        named = "class folder test/b in"
    elif case == "symlink member":
        make_archive(archive, extra=[("train/a/9.png", None, tarfile.SYMTYPE, "/etc/hostname")])
        named = "train/a/9.png: a symlink member"
    elif case == "class in one split":
        make_archive(archive, {"train": {"a": 4, "b": 4}, "test": {"a": 1}})
        named = "(only in train: b)"
    elif case == "constant images":  # read and split fine; refused before shards are written
        with tarfile.open(archive, "w:gz") as tar:
            for name in [f"{s}/{c}/{i}.png" for s, n in [("train", 4), ("test", 1)]
                         for c in "ab" for i in range(n)]:
                add(tar, name, flat_png((255, 255, 255)))
        named = "the train images do not vary in channel(s) R, G, B"
    else:
        make_archive(archive, extra=[("train/b/9.png", b"not an image")])
        named = "train/b/9.png: not an image PIL can read (cannot identify image file)"
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["prepare"]["folder"] = str(archive)
    write_params(study, params)
    before = snapshot(study)
    run = stage(study, "stages.prepare", check=False)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: "), run.stderr
    assert str(archive) in run.stderr and named in run.stderr
    assert snapshot(study) == before  # data/prepared byte for byte, and nothing new


# ---------------------------------------------------------------- dvc: the dep is the archive
@pytest.mark.slow
def test_a_changed_archive_at_the_same_path_reruns_prepare(tmp_path):
    """dvc.yaml's own prepare stage, on an archive outside the project (an absolute path)."""
    study = tmp_path / "study"
    study.mkdir()
    archive = make_archive(tmp_path / "images.tar.gz")
    params = build_study(study, "stages", archive)
    params["prepare"].update(max_per_class=None, shards=1, validation_per_class=2)
    write_params(study, params)
    stages = yaml.safe_load(open(os.path.join(ROOT, "dvc.yaml")))["stages"]
    (study / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"prepare": stages["prepare"]}}))
    sh("dvc init --no-scm -q && dvc repro prepare", study)
    assert "up to date" in sh("dvc status prepare", study)
    manifest = shards.load_manifest(str(study / shards.PREPARED), verify=False)
    assert manifest["source"] == {"folder": archive, "sha256": files.file_sha256(archive)}

    make_archive(archive, seed=1)  # other pixels, same path
    status = sh("dvc status prepare", study)
    assert "changed deps" in status and "modified" in status and archive in status, status
    log = sh("dvc repro prepare", study)
    assert "Running stage 'prepare'" in log
    assert f"data: {archive} (sha256 {files.file_sha256(archive)})" in log
    again = shards.load_manifest(str(study / shards.PREPARED))
    assert again["source"]["sha256"] == files.file_sha256(archive) != manifest["source"]["sha256"]
    assert again["splits"]["train"]["shards"] != manifest["splits"]["train"]["shards"]
    assert "up to date" in sh("dvc status prepare", study)
