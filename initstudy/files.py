"""Atomic file writes (a crash never leaves a half-written file for DVC to record), a stage's
several outputs all or none, JSON and TSV in the one format every stage uses, Keras models
saved byte for byte the same, a file's sha256, and the progress bar of long reads and writes."""
import csv
import hashlib
import json
import os
import re
import tempfile
import zipfile
from contextlib import contextmanager


def writable(*folders):
    """Checks, before any work, that a stage can write each output folder (creating it):
    a probe file is created and removed, so the check holds for every user, root included."""
    from initstudy.errors import StudyError

    for folder in folders:
        try:
            os.makedirs(folder, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe."):
                pass
        except OSError as e:
            raise StudyError(f"cannot write to {folder}/ ({e.strerror or e}): nothing was "
                             "changed; fix its permissions and re-run") from None


@contextmanager
def atomic(path):
    """Yields a temp path beside `path` (same extension); renamed onto `path` on success."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{os.getpid()}.tmp.{name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def all_or_nothing():
    """A stage's several outputs, all or none: yields `staged(path)`, which names a temp file
    beside `path` for the block to write instead. Only when the block finishes, every staged
    file written, is each renamed onto its path (renames only, nothing left to fail but the
    machine); an exception anywhere removes the temp files and leaves every output as it was."""
    staged = {}

    def stage(path):
        folder, name = os.path.split(path)
        staged[path] = os.path.join(folder, f".{os.getpid()}.staged.{name}")
        return staged[path]

    try:
        yield stage
        unwritten = [path for path, tmp in staged.items() if not os.path.isfile(tmp)]
        if unwritten:
            raise RuntimeError(f"staged but never written: {', '.join(unwritten)}")
        for path, tmp in staged.items():
            os.replace(tmp, path)
    finally:
        for tmp in staged.values():
            if os.path.exists(tmp):
                os.remove(tmp)


def write_json(path, obj, indent=2):
    with atomic(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=indent, allow_nan=False)
        f.write("\n")


def write_text(path, text):
    with atomic(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def save_model(model, path):
    """model.save(path), atomically and reproducibly: the same model gives the same bytes in
    any process on any day, so a rerun's DVC hash matches. Keras stamps the save into the
    archive (metadata.json's `date_saved`, each zip entry's time) and numbers shared objects
    by Python id() (config.json's `shared_object_id`); here the stamp is fixed and the ids
    are renumbered in order of first use, which load_model reads the same way."""
    with atomic(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp) as z:
            entries = [(info, z.read(info)) for info in z.infolist()]
        with zipfile.ZipFile(tmp, "w") as z:
            for info, data in entries:
                if info.filename == "metadata.json":
                    metadata = json.loads(data)
                    metadata["date_saved"] = None
                    data = json.dumps(metadata).encode()
                elif info.filename == "config.json":
                    ids = {}
                    data = re.sub(rb'"shared_object_id": (\d+)',
                                  lambda m: b'"shared_object_id": %d' % ids.setdefault(
                                      m.group(1), len(ids) + 1), data)
                fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
                fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
                z.writestr(fixed, data)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def _cell(value, float_format):
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return format(value, float_format) if isinstance(value, float) else str(value)


def write_tsv(path, rows, columns, float_format=".6g"):
    """Rows (dicts) as tab-separated values; None is an empty cell, floats `float_format`."""
    with atomic(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(row[c], float_format) for c in columns] for row in rows)


def read_tsv(path):
    """Rows of a write_tsv file: numbers as floats, true/false as booleans, empty cells as
    None, the rest as text."""
    def value(v):
        try:
            return float(v)
        except ValueError:
            return {"": None, "true": True, "false": False}.get(v, v)

    with open(path, newline="") as f:
        return [{k: value(v) for k, v in row.items()}
                for row in csv.DictReader(f, delimiter="\t")]


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def progress(iterable, **kwargs):
    """A progress bar on a terminal only: in a log or a captured stderr, bars would bury the
    one-line error a bad input stops with."""
    from tqdm import tqdm

    return tqdm(iterable, disable=None, **kwargs)
