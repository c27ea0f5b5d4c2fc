import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Real CIFAR-10 images (JPEG re-encodes) shipped beside the project, never inside it.
MINI_ARCHIVE = os.environ.get(
    "CIFAR10_MINI", os.path.join(ROOT, "..", "shared", "data", "cifar10-jpeg-mini.tar.gz"))


@pytest.fixture
def mini_archive():
    if not os.path.exists(MINI_ARCHIVE):
        pytest.fail(f"{MINI_ARCHIVE} not found: set CIFAR10_MINI to cifar10-jpeg-mini.tar.gz")
    return MINI_ARCHIVE
