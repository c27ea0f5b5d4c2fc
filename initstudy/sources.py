"""Reading the data: CIFAR-10 from tensorflow-datasets or an image folder or archive, as
arrays (images of any mode and bit depth converted to 8-bit RGB), the source's sha256, and
the validation split carved from train. Writing and reading the prepared TFRecord shards is
initstudy.shards'."""
import hashlib
import io
import itertools
import os
import re
import socket
import tarfile
import zlib
from collections import defaultdict
from urllib.parse import urlparse

import numpy as np

from initstudy.errors import StudyError
from initstudy.files import file_sha256, progress

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"


def _resize(image, size):
    """uint8 HxWx3 (or a stack of them) to size x size, as PIL's bilinear resize does it."""
    from PIL import Image

    if image.ndim == 4:
        return np.stack([_resize(im, size) for im in image])
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def read_source(prepare):
    """(classes, splits, source) from a config.Prepare; its paths are checked before anything
    is read. `source` (the manifest's record of what was read) names the path as given and
    its sha256, so a changed archive at the same path shows in the manifest and the report."""
    if prepare.source == "folder":
        if not prepare.folder or not os.path.exists(prepare.folder):
            raise StudyError(f"prepare.folder = {prepare.folder!r}: no such folder or .tar.gz "
                             "(expected train/<class>/* and test/<class>/*)")
        classes, splits = read_image_folder(prepare.folder, prepare.storage_size,
                                            prepare.max_per_class)
        return classes, splits, {"folder": prepare.folder, **source_hash(prepare.folder)}
    if prepare.manual_dir and not os.path.isdir(prepare.manual_dir):
        raise StudyError(f"prepare.manual_dir = {prepare.manual_dir!r}: no such folder "
                         "(it should hold cifar-10-binary.tar.gz)")
    return read_tfds(prepare.tfds_name, prepare.data_dir, prepare.manual_dir,
                     prepare.max_per_class, prepare.storage_size)


def source_hash(path):
    """{"sha256": ...} of an archive file; of a folder, sha256 over the sorted (relative path,
    sha256 of the bytes) of every train/<class>/ and test/<class>/ image file, with their count
    ("files"): stable across machines and walk orders, changed by any renamed or edited image."""
    if not os.path.isdir(path):
        return {"sha256": file_sha256(path)}
    files = []
    for _, _, name, relpath, opener in _image_entries(path):
        if name and name.lower().endswith(IMAGE_SUFFIXES):
            with opener() as f:
                files.append((relpath, hashlib.sha256(f.read()).hexdigest()))
    digest = hashlib.sha256()
    for relpath, sha256 in sorted(files):
        digest.update(f"{relpath}\0{sha256}\n".encode())
    return {"sha256": digest.hexdigest(), "files": len(files)}


def source_line(manifest):
    """What the prepared data was read from, in one line for the report, e.g.
    'data: data/cifar10-jpeg.tar.gz (sha256 d34c...)'."""
    source = manifest["source"]
    if "folder" in source:
        what = source["folder"]
    else:
        what = f"tensorflow-datasets {source['tfds']} {source.get('version', '')}".rstrip()
        if source.get("archive"):
            what += f" from {source['archive']}"
    if source.get("files"):
        return (f"data: {what} (sha256 {source['sha256']} over {source['files']} image files' "
                "paths and bytes)")
    if source.get("sha256"):
        return f"data: {what} (sha256 {source['sha256']})"
    if "folder" in source:  # a manifest written before prepare recorded hashes
        return f"data: {what} (no sha256 recorded: re-run prepare)"
    return f"data: {what} (downloaded and checked by tensorflow-datasets)"


# ---------------------------------------------------------------- image folder / archive
def _class_path(relpath):
    """(split, class, path inside the class folder) of anything under <split>/<class>/, at any
    depth ("" for the class folder itself), under any leading folders: the first folder named
    train or test is the split, the one below it the class; None for anything else."""
    parts = relpath.replace("\\", "/").strip("/").split("/")
    for i, part in enumerate(parts[:-1]):
        if part in SPLITS:
            return part, parts[i + 1], "/".join(parts[i + 2:])
    return None


def _layout(relpath, is_dir):
    """(split, class, path inside the class folder) of a file anywhere under <split>/<class>/
    (<split>/<class>/<file>, or <split>/<class>/<sub>/.../<file>: nested folders are read as
    images of that class), or (split, class, None) of a class folder <split>/<class>, under any
    leading folders; None for anything else (a folder nested in a class folder included)."""
    hit = _class_path(relpath)
    if not hit or bool(hit[2]) == is_dir:
        return None
    return hit if hit[2] else (hit[0], hit[1], None)


def _image_entries(path):
    """(split, class, path inside the class folder, path relative to `path`, opener) for every
    file under train/<class>/ and test/<class>/, at any depth, and (split, class, None, relative
    path, None) for every class folder itself, so that an empty one is seen. Links in a folder
    are followed (the file system resolves them); a link member of an archive is an error (see
    below)."""
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path, followlinks=True):
            for name, is_dir in [(d, True) for d in dirs] + [(f, False) for f in files]:
                full = os.path.join(root, name)
                relpath = os.path.relpath(full, path).replace(os.sep, "/")
                hit = _layout(relpath, is_dir)
                if hit:
                    yield (*hit, relpath, None if is_dir else lambda full=full: open(full, "rb"))
        return
    try:
        with tarfile.open(path, "r:*") as tar:
            seen = set()
            for member in tar:  # streams the archive once, in its own order
                name = member.name.rstrip("/")
                if name in seen and not member.isdir() and _layout(name, False):
                    # tar keeps both; extracting it would keep the last one only
                    raise StudyError(f"{path}: {name}: appears twice in the archive")
                seen.add(name)
                if (member.issym() or member.islnk()) and _class_path(name):
                    # Not followed: a symlink's target may lie outside the archive (bytes the
                    # archive's sha256 and DVC's hash never saw); skipping it would drop an
                    # image unseen. Same rule for hard links, to keep one rule.
                    kind = "symlink" if member.issym() else "hard link"
                    raise StudyError(f"{path}: {name}: a {kind} member (links in an archive are "
                                     "not followed); store the file itself (tar --dereference "
                                     "--hard-dereference)")
                hit = _layout(name, member.isdir())
                if hit and member.isdir():
                    yield (*hit, name, None)
                elif hit and member.isfile():
                    data = tar.extractfile(member).read()
                    yield (*hit, name, lambda data=data: io.BytesIO(data))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:  # EOFError: truncated .gz
        raise StudyError(f"prepare.folder = {path!r}: not a readable folder or tar archive, "
                         f"or truncated ({type(e).__name__}: {e})") from None


def _why_not_an_image(error):
    """PIL's reason in words, without the object reprs it puts in (<_io.BytesIO at 0x...>)."""
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return "cannot identify image file"
    return re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(error)).strip() or type(error).__name__


class _OutOfRange(ValueError):
    """An image whose values do not fit the range its mode is read in (see rgb8)."""


def rgb8(im):
    """uint8 HxWx3 of a PIL image of any mode. Every 8-bit mode (1, L, LA, P, PA, RGB, RGBA,
    CMYK, YCbCr, ...) is PIL's convert("RGB"), as always; PIL itself reads 16-bit RGB(A) files
    into 8-bit modes by their high byte. The wide grey modes convert("RGB") would clip to 255
    (a 16-bit image turns white) are scaled here instead: 16-bit (I;16, I;16B, I;16L, I;16N) by
    the high byte (value >> 8, as PIL reads 16-bit RGB); 32-bit integer (I) likewise, its
    values read as 16-bit (0..65535); float (F) from 0..1 (round(value * 255)). Values outside
    that range raise _OutOfRange (no silent clipping)."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise _OutOfRange(f"a 32-bit integer image (mode I) with values {values.min()}.."
                              f"{values.max()}; mode I is read as 16-bit (0..65535), float "
                              "(mode F) as 0..1: store it as an 8 or 16-bit image")
        grey = (values.astype(np.uint32) >> 8).astype(np.uint8)
    elif mode == "F":
        values = np.asarray(im, dtype=np.float64)
        if values.size and not (np.isfinite(values).all() and 0 <= values.min()
                                and values.max() <= 1):
            raise _OutOfRange(f"a float image (mode F) with values {values.min():g}.."
                              f"{values.max():g}; float images are read as 0..1, 32-bit "
                              "integer (mode I) as 0..65535: store it as an 8 or 16-bit image")
        grey = np.round(values * 255).astype(np.uint8)
    else:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def read_image_folder(path, storage_size, max_per_class=None):
    """Images of `path` (a folder or .tar.gz of train/<class>/*, test/<class>/*; images in
    folders nested in a class folder, at any depth, are images of that class) as uint8 arrays
    at storage_size x storage_size RGB, each class's in the order of their paths inside the
    class folder; classes are the sorted folder names. Images of any bit depth are scaled to 8
    bits (rgb8). Anything that would change the data unseen (an empty class folder, a class in
    one split only, a link member, a file PIL cannot read) is a StudyError naming it, raised
    before any output."""
    from PIL import Image

    files = defaultdict(list)  # (split, class) -> [(path in the class folder, relpath, opener)]
    class_folders = {}  # (split, class) -> its relative path, as the errors name it
    skipped = []  # files in a class folder whose names are not images
    entries = _image_entries(path)
    for split, cls, name, relpath, opener in progress(entries, desc=f"reading {path}",
                                                       unit=" files"):
        class_folders.setdefault((split, cls), relpath if name is None else
                                 relpath[:-len(name) - 1])
        if name is None:
            continue
        if name.lower().endswith(IMAGE_SUFFIXES):
            files[split, cls].append((name, relpath, opener))
        else:
            skipped.append(relpath)
    if skipped:
        print(f"skipped {len(skipped)} file(s) whose names are not images "
              f"({', '.join(sorted(skipped)[:3])}{', ...' if len(skipped) > 3 else ''})")
    nested = sorted(relpath for found in files.values() for name, relpath, _ in found
                    if "/" in name)
    if nested:  # said, as the skipped files are: a stray copy in a subfolder is read too
        print(f"read {len(nested)} image(s) in folders nested in a class folder as images of "
              f"that class ({', '.join(nested[:3])}{', ...' if len(nested) > 3 else ''})")
    for (split, cls), folder in sorted(class_folders.items()):
        if not files[split, cls]:
            raise StudyError(f"class folder {folder} in {path!r} holds no images")
    classes = {s: sorted({c for (sp, c) in class_folders if sp == s}) for s in SPLITS}
    for s in SPLITS:
        if not classes[s]:
            raise StudyError(f"prepare.folder = {path!r}: no {s}/<class>/ images found "
                             "(expected train/<class>/* and test/<class>/*)")
    if classes["train"] != classes["test"]:
        only = "; ".join(f"only in {a}: {', '.join(sorted(set(classes[a]) - set(classes[b])))}"
                         for a, b in (SPLITS, SPLITS[::-1]) if set(classes[a]) - set(classes[b]))
        raise StudyError(f"prepare.folder = {path!r}: train and test have different classes "
                         f"({only})")
    classes = classes["train"]

    splits = {}
    for split in SPLITS:
        chosen = []
        for label, cls in enumerate(classes):
            # by path inside the class folder (the file name, in a flat one), then full path
            found = sorted(files[split, cls], key=lambda f: f[:2])
            chosen += [(relpath, opener, label) for _, relpath, opener in found[:max_per_class]]
        images = []
        for relpath, opener, _ in progress(chosen, desc=f"decoding {split}", unit=" img"):
            try:
                with opener() as f, Image.open(f) as im:
                    image = rgb8(im)
            except _OutOfRange as e:
                raise StudyError(f"{path}: {relpath}: {e}") from None
            except Exception as e:  # PIL raises many types for a bad file
                raise StudyError(f"{path}: {relpath}: not an image PIL can read "
                                 f"({_why_not_an_image(e)})") from None
            if image.shape[:2] != (storage_size, storage_size):
                image = _resize(image, storage_size)
            images.append(image)
        splits[split] = (np.stack(images), np.asarray([c[2] for c in chosen], np.int64))
    return classes, splits


# ---------------------------------------------------------------- tensorflow-datasets
def _manual_archive(manual_dir):
    """The genuine archive in manual_dir that tfds reads instead of downloading, or None."""
    path = manual_dir and os.path.join(manual_dir, os.path.basename(urlparse(CIFAR10_URL).path))
    return path if path and os.path.exists(path) else None


def _can_reach(url, timeout=5):
    try:
        socket.create_connection((urlparse(url).hostname, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def read_tfds(name, data_dir=None, manual_dir=None, max_per_class=None, storage_size=None):
    """A tensorflow-datasets image-classification set (CIFAR-10 by default) as arrays:
    (classes, splits, source), `source` naming the dataset's version and, where tfds reads a
    manual archive, its path and sha256 (tfds checks that sha256 against the genuine one)."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    source = {"tfds": name, "version": str(builder.info.version)}
    archive = None if builder.is_prepared() else _manual_archive(manual_dir)  # None: not read
    if archive:
        source.update(archive=archive, sha256=file_sha256(archive))
    offline = ("set prepare.manual_dir to a folder holding cifar-10-binary.tar.gz, or "
               "prepare.source=folder with prepare.folder=<image folder or .tar.gz>")
    if not builder.is_prepared() and not archive:
        if name == "cifar10" and not _can_reach(CIFAR10_URL):
            raise StudyError(f"prepare.source = 'tfds': cannot download {name} (no network); "
                             f"offline: {offline}")
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except Exception as e:  # tfds wraps network and checksum failures in many types
        raise StudyError(f"tensorflow-datasets could not prepare {name}: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}; "
                         f"offline: {offline}") from None
    classes = builder.info.features["label"].names
    splits = {}
    for split in SPLITS:
        batches = list(tfds.as_numpy(builder.as_dataset(split=split).batch(4096)))
        images = np.concatenate([b["image"] for b in batches])
        labels = np.concatenate([b["label"] for b in batches]).astype(np.int64)
        if max_per_class:
            keep = np.concatenate([np.flatnonzero(labels == c)[:max_per_class]
                                   for c in range(len(classes))])
            keep.sort()
            images, labels = images[keep], labels[keep]
        if storage_size and images.shape[1:3] != (storage_size, storage_size):
            images = _resize(images, storage_size)
        splits[split] = (images, labels)
    return classes, splits, source


def split_validation(classes, splits, per_class, seed):
    """train -> train + validation: `per_class` images of every class, drawn with a fixed seed
    (stratified), so the test split is used once, for the final table. The rest of train is
    stored class-interleaved (c0, c1, ..., c0, c1, ...) in a seeded order, so that its first
    N records are a stratified subset too (the training-accuracy check reads them)."""
    images, labels = splits["train"]
    rng = np.random.default_rng(seed)
    validation, rest = [], []
    for label, cls in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) <= per_class:
            raise StudyError(f"prepare.validation_per_class = {per_class}: class {cls} has only "
                             f"{len(members)} training images; it must leave some to train on")
        validation.append(np.sort(members[:per_class]))
        rest.append(members[per_class:])
    order = np.asarray([i for row in itertools.zip_longest(*rest) for i in row if i is not None])
    held = np.concatenate(validation)
    return {"train": (images[order], labels[order]), "validation": (images[held], labels[held]),
            **{s: v for s, v in splits.items() if s != "train"}}
