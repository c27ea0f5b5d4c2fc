"""grid: the reference's closing table as an experiment grid at step 0 (no training):
activations x initializers x BatchNorm on/off x Keras'/per-channel depthwise fan
-> grid/cells.tsv."""
import itertools
import os
import time

from initstudy.config import load_study
from initstudy.data import PREPARED, load_manifest
from initstudy.errors import run_stage
from initstudy.files import write_tsv
from initstudy.tables import fmt

OUT = os.path.join("grid", "cells.tsv")
AXES = ("activation", "initializer", "batch_norm", "depthwise_fan")
MEASURES = ("signal_ratio", "gradient_ratio", "min_signal_std", "dead_units",
            "saturated_fraction")


def main():
    study = load_study()
    grid, diag = study.grid, study.diagnostics
    manifest = load_manifest(PREPARED)

    from initstudy.device import make_deterministic
    from initstudy.diagnostics import fixed_batch, headline, layer_stats
    from initstudy.model import build_mobilenet_v2, data_inputs

    make_deterministic(diag.seed)  # the same numbers on every rerun
    images, labels = fixed_batch(PREPARED, manifest, diag.images, diag.seed)
    cells = list(itertools.product(grid.activations, grid.initializers, grid.batch_norm,
                                   grid.depthwise_fan))
    rows, start = [], time.perf_counter()
    for i, (act, init, bn, fan) in enumerate(cells, start=1):
        model = build_mobilenet_v2(image_size=grid.image_size, initializer=init, activation=act,
                                   seed=diag.seed, batch_norm=bn, depthwise_fan=fan,
                                   **data_inputs(manifest))
        h = headline(layer_stats(model, images, labels, init, act, fan))
        rows.append({**dict(zip(AXES, (act, init, bn, fan))), **h})
        print(f"[{i}/{len(cells)} {time.perf_counter() - start:.0f}s] {act} + {init}, "
              f"batch_norm {bn}, fan {fan}: signal ratio {fmt(h['signal_ratio'], '.3g')}",
              flush=True)
    os.makedirs("grid", exist_ok=True)
    write_tsv(OUT, rows, AXES + MEASURES, float_format=".4g")


if __name__ == "__main__":
    run_stage(main)
