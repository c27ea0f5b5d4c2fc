"""prepare: an image folder or archive (default: the embedded CIFAR-10 JPEG re-encode) or
tensorflow-datasets' CIFAR-10 -> train / validation (carved from train, stratified) / test
TFRecord shards + manifest in data/prepared. Every input is checked before any output is
written: a bad one (an empty class folder, a class in one split only, a link in an archive,
a file that is not an image, images that do not vary) stops it with one line naming it, and
data/prepared stays as it was. Images in subfolders of a class folder are read as that class's;
images of any bit depth are scaled to 8 bits."""
from initstudy import shards, sources
from initstudy.config import load_study
from initstudy.runner import run_stage


def main():
    prepare = load_study().prepare
    classes, splits, source = sources.read_source(prepare)
    splits = sources.split_validation(classes, splits, prepare.validation_per_class,
                                   prepare.split_seed)
    manifest = shards.write_prepared(classes, splits, shards.PREPARED, prepare.shards, source,
                                   {"per_class": prepare.validation_per_class,
                                    "seed": prepare.split_seed, "drawn_from": "train"})
    counts = ", ".join(f"{s} {v['count']}" for s, v in manifest["splits"].items())
    print(f"prepared {counts} images of {len(classes)} classes, "
          f"{manifest['image_shape']} uint8, into {shards.PREPARED}")
    print(sources.source_line(manifest))


if __name__ == "__main__":
    run_stage(main)
