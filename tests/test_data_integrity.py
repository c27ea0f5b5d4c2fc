"""prepare reads exactly what dvc.yaml says it depends on, records its hash, and turns every
input that would change the data unseen into a one-line error before any output is written."""
import io
import os
import shutil
import tarfile

import pytest
import yaml

from conftest import ROOT, listing, make_folder, png, project, sh, stage, write_params
from initstudy import data
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
        data.read_image_folder(path, 8, **kwargs)
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
    classes, splits = data.read_image_folder(archive, 8)
    assert classes == ["a", "b"] and len(splits["train"][1]) == 8
    log = capsys.readouterr().out
    assert "skipped 1 file(s) whose names are not images (train/a/notes.txt)" in log


def test_the_source_hash_is_the_archive_sha256_or_a_stable_hash_of_the_folder(tmp_path):
    archive = make_archive(tmp_path / "x.tar.gz")
    assert data.source_hash(archive) == {"sha256": data._sha256(archive)}
    first = data.source_hash(make_folder(tmp_path / "one", LAYOUT))
    assert first["files"] == 10
    # the same files written in another order hash the same; a renamed or changed one does not
    reversed_layout = {s: dict(reversed(c.items())) for s, c in LAYOUT.items()}
    second = make_folder(tmp_path / "two", reversed_layout)
    assert data.source_hash(second) == first
    class_a = tmp_path / "two" / "train" / "a"
    os.rename(class_a / "3.png", class_a / "7.png")
    assert data.source_hash(second)["sha256"] != first["sha256"]
    (tmp_path / "one" / "test" / "b" / "0.png").write_bytes(png(99))
    assert data.source_hash(str(tmp_path / "one"))["sha256"] != first["sha256"]


def test_source_line_names_the_path_as_given_and_its_hash():
    sha = "d34c68f61cca57aa9144c8f25bda427abb9921bd642d5857a2fc1a6b4416f965"
    line = data.source_line
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


# ---------------------------------------------------------------- the stage: exit 2, no output
@pytest.fixture(scope="module")
def prepared_study(tmp_path_factory):
    """A study folder whose prepare already ran on a good tiny archive."""
    root = tmp_path_factory.mktemp("prepared")
    study = root / "study"
    study.mkdir()
    params = project(study, make_archive(root / "good.tar.gz"))
    params["prepare"].update(max_per_class=None, shards=1, validation_per_class=2)
    write_params(study, params)
    stage(study, "stages.prepare")
    return study


def snapshot(folder):
    return {f: (folder / f).read_bytes() for f in listing(folder) if f != "params.yaml"}


@pytest.mark.parametrize("case", ["empty class", "symlink member", "class in one split",
                                  "not an image"])
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
    params = project(study, archive)
    params["prepare"].update(max_per_class=None, shards=1, validation_per_class=2)
    write_params(study, params)
    stages = yaml.safe_load(open(os.path.join(ROOT, "dvc.yaml")))["stages"]
    (study / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"prepare": stages["prepare"]}}))
    sh("dvc init --no-scm -q && dvc repro prepare", study)
    assert "up to date" in sh("dvc status prepare", study)
    manifest = data.load_manifest(str(study / data.PREPARED), verify=False)
    assert manifest["source"] == {"folder": archive, "sha256": data._sha256(archive)}

    make_archive(archive, seed=1)  # other pixels, same path
    status = sh("dvc status prepare", study)
    assert "changed deps" in status and "modified" in status and archive in status, status
    log = sh("dvc repro prepare", study)
    assert "Running stage 'prepare'" in log
    assert f"data: {archive} (sha256 {data._sha256(archive)})" in log
    again = data.load_manifest(str(study / data.PREPARED))
    assert again["source"]["sha256"] == data._sha256(archive) != manifest["source"]["sha256"]
    assert again["splits"]["train"]["shards"] != manifest["splits"]["train"]["shards"]
    assert "up to date" in sh("dvc status prepare", study)
