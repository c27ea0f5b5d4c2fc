"""prepare: CIFAR-10 (tensorflow-datasets) or an image folder -> TFRecord shards + manifest."""
from initstudy import data
from initstudy.params import load_params, run_stage, validate_prepare


def main():
    p = validate_prepare(load_params())
    if p["source"] == "tfds":
        classes, splits = data.read_tfds(p["tfds_name"], p["data_dir"], p["manual_dir"],
                                         p["max_per_class"], p["storage_size"])
        source = {"tfds": p["tfds_name"], "manual_dir": p["manual_dir"]}
    else:
        classes, splits = data.read_image_folder(p["folder"], p["storage_size"],
                                                 p["max_per_class"])
        source = {"folder": p["folder"]}
    manifest = data.write_prepared(classes, splits, data.PREPARED, p["shards"], source)
    counts = ", ".join(f"{s} {v['count']}" for s, v in manifest["splits"].items())
    print(f"prepared {counts} images of {len(classes)} classes, "
          f"{manifest['image_shape']} uint8, into {data.PREPARED}")


if __name__ == "__main__":
    run_stage(main)
