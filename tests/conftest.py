import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Real CIFAR-10 images: 200 train and 50 test JPEG re-encodes per class (data/README.md).
MINI_ARCHIVE = os.path.join(ROOT, "tests", "data", "cifar10-jpeg-mini.tar.gz")


@pytest.fixture
def mini_archive():
    return MINI_ARCHIVE
