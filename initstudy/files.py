"""Atomic file writes: a crash never leaves a half-written file for DVC to record."""
import json
import os
from contextlib import contextmanager


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


def write_json(path, obj, indent=2):
    with atomic(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=indent, allow_nan=False)
        f.write("\n")


def write_text(path, text):
    with atomic(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def read_json(path):
    with open(path) as f:
        return json.load(f)
