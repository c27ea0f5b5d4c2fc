"""grid: the seed's closing table as an experiment grid at step 0 (no training):
activations x initializers x BatchNorm on/off x Keras'/true depthwise fan -> grid/cells.tsv."""
import itertools
import os
import time

from initstudy.data import PREPARED, load_manifest
from initstudy.files import write_text
from initstudy.params import load_params, run_stage, validate_grid

COLUMNS = ("activation", "initializer", "batch_norm", "depthwise_fan", "signal_ratio",
           "gradient_ratio", "min_signal_std", "dead_units", "saturated_fraction")


def main():
    params = load_params()
    grid = validate_grid(params)
    manifest = load_manifest(PREPARED)

    from initstudy.device import make_deterministic
    from initstudy.diagnostics import fixed_batch, headline, layer_stats
    from initstudy.model import build_mobilenet_v2

    diag = params["diagnostics"]
    make_deterministic(diag["seed"])  # the same numbers on every rerun
    images, labels = fixed_batch(PREPARED, manifest, diag["images"], diag["seed"])
    cells = list(itertools.product(grid["activations"], grid["initializers"],
                                   grid["batch_norm"], grid["depthwise_fan"]))
    lines, start = ["\t".join(COLUMNS)], time.perf_counter()
    for i, (act, init, bn, fan) in enumerate(cells, start=1):
        model = build_mobilenet_v2(len(manifest["classes"]), grid["image_size"], init, act,
                                   seed=diag["seed"], input_size=manifest["image_shape"][0],
                                   input_mean=manifest["channel_mean"],
                                   input_std=manifest["channel_std"], batch_norm=bn,
                                   depthwise_fan=fan)
        h = headline(layer_stats(model, images, labels, init, act, fan))
        lines.append("\t".join([act, init, str(bn).lower(), fan] +
                               ["" if h[k] is None else f"{h[k]:.4g}" for k in COLUMNS[4:]]))
        print(f"[{i}/{len(cells)} {time.perf_counter() - start:.0f}s] {act} + {init}, "
              f"batch_norm {bn}, fan {fan}: signal ratio {h['signal_ratio']:.3g}", flush=True)
    os.makedirs("grid", exist_ok=True)
    write_text(os.path.join("grid", "cells.tsv"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    run_stage(main)
