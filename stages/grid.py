"""grid: the reference's closing table as an experiment grid at step 0 (no training):
activations x initializers x BatchNorm on/off x Keras'/per-channel depthwise fan, each cell
over several initialization seeds -> grid/cells.tsv."""
import itertools
import os
import time

from initstudy.config import load_study
from initstudy.shards import PREPARED, fixed_batch, load_manifest
from initstudy.runner import run_stage
from initstudy.files import writable, write_tsv
from initstudy.paths import GRID
from initstudy.formatting import fmt

AXES = ("activation", "initializer", "batch_norm", "depthwise_fan")
MEASURES = ("drift", "drift_min", "drift_max", "signal_ratio", "signal_ratio_min",
            "signal_ratio_max", "gradient_ratio", "gradient_ratio_min", "gradient_ratio_max",
            "min_signal_std", "max_residual_std", "dead_units", "saturated_fraction")


def main():
    study = load_study()
    grid, diag = study.grid, study.diagnostics
    manifest = load_manifest(PREPARED)
    writable(os.path.dirname(GRID))

    from initstudy.seeding import make_deterministic
    from initstudy.diagnostics import grid_cell
    from initstudy.model import data_inputs

    make_deterministic(diag.seed)  # the same numbers on every rerun
    images, labels = fixed_batch(PREPARED, manifest, grid.images, diag.seed)
    cells = list(itertools.product(grid.activations, grid.initializers, grid.batch_norm,
                                   grid.depthwise_fan))
    rows, start = [], time.perf_counter()
    for i, (act, init, bn, fan) in enumerate(cells, start=1):
        h = grid_cell(act, init, bn, fan, grid.init_seeds, grid.image_size, images, labels,
                      data_inputs(manifest))
        rows.append({**dict(zip(AXES, (act, init, bn, fan))), **h})
        print(f"[{i}/{len(cells)} {time.perf_counter() - start:.0f}s] {act} + {init}, "
              f"batch_norm {bn}, fan {fan}: signal ratio {fmt(h['signal_ratio'], '.3g')}, "
              f"gradient ratio {fmt(h['gradient_ratio'], '.3g')}, drift {h['drift']:.3g} "
              f"[{h['drift_min']:.3g}, {h['drift_max']:.3g}] decades", flush=True)
    write_tsv(GRID, rows, AXES + MEASURES, float_format=".4g")


if __name__ == "__main__":
    run_stage(main, gpu=True)
