"""One-line checks of a params value: each returns the value (or its parsed form) or raises
StudyError naming the key, the bad value and what is allowed. config.py builds the study from
them, tools/plans.py the sweep plans."""
import dataclasses
import math
import os

from initstudy.errors import StudyError


def integer(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StudyError(f"{name} = {value!r}: must be an integer >= {minimum}")
    return value


def one_of(value, allowed, name):
    if value not in allowed or isinstance(value, bool):
        raise StudyError(f"{name} = {value!r}: must be one of {', '.join(allowed)}")
    return value


def boolean(value, name):
    if not isinstance(value, bool):
        raise StudyError(f"{name} = {value!r}: must be true or false")
    return value


def auto_or(value, name, check):
    return value if value == "auto" and not isinstance(value, bool) else check(value, name)


def positive(value, name):
    """A number > 0. PyYAML reads `1e-3` (no dot) as a string, which `-S` writes: accept it."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
            or not math.isfinite(value)):
        raise StudyError(f"{name} = {value!r}: must be a finite number > 0")
    return value


def non_empty_name(value, name):
    if not isinstance(value, str) or not value.strip():
        raise StudyError(f"{name} = {value!r}: must be a non-empty name")
    return value


def optional_path(value, name):
    if value is not None and not isinstance(value, str):
        raise StudyError(f"{name} = {value!r}: must be a path or null")
    return value


def list_of(values, name, allowed):
    if not isinstance(values, list) or not values:
        raise StudyError(f"{name} = {values!r}: must be a non-empty list")
    shown = ", ".join(str(a).lower() if isinstance(a, bool) else a for a in allowed)
    for v in values:
        if v not in allowed or isinstance(v, bool) != isinstance(allowed[0], bool):
            raise StudyError(f"{name} has {v!r}: allowed are {shown}")
    if len(set(values)) != len(values):
        raise StudyError(f"{name} = {values!r}: lists a value twice")
    return tuple(values)


def seed_list(seeds, name):
    if (not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) != len(seeds)
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise StudyError(f"{name} = {seeds!r}: must be a list of distinct integers >= 0")
    return tuple(seeds)


def section(params, name, keys):
    """params[name] as a mapping with exactly `keys`. A missing key is an error, not a
    default: the file is the one place a default lives (an empty value is YAML's null)."""
    found = params.get(name)
    if not isinstance(found, dict):
        raise StudyError(f"{name} = {found!r}: must be a mapping with keys {', '.join(keys)}")
    unknown = sorted(map(str, set(found) - set(keys)))
    if unknown:
        raise StudyError(f"{name} has unknown key(s) {', '.join(map(str, unknown))}: "
                         f"allowed are {', '.join(keys)}")
    missing = [k for k in keys if k not in found]
    if missing:
        raise StudyError(f"{name} has no {', '.join(f'{name}.{k}' for k in missing)}: every key "
                         "must be set (the code has no defaults of its own)")
    return found


def field_names(cls):
    return [f.name for f in dataclasses.fields(cls)]


# Peak memory of training this model on a CPU at batch 64 (bench/results-cpu.json): 1,140 MB
# at 32px, 5,434 MB at 224px, so about 1.4 KB per pixel of each image on top of ~1.1 GB.
BYTES_PER_PIXEL, BASE_BYTES = 1400, 1.1e9


def check_fits_in_memory(size, images, name, images_name, what):
    """Refuses an image size and batch whose activations cannot fit in this machine's
    memory, before TensorFlow tries (and dies after a long wait)."""
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    need = BASE_BYTES + BYTES_PER_PIXEL * images * size * size
    if need > have:
        most = math.isqrt(max(0, int((have - BASE_BYTES) / (BYTES_PER_PIXEL * images))))
        raise StudyError(f"{name} = {size} with {images_name} = {images}: {what} of {images} "
                         f"images at {size}x{size} needs about {need / 1e9:,.0f} GB, this "
                         f"machine has {have / 1e9:.0f} GB; at {images} images use at most "
                         f"{most}px, or fewer images")
