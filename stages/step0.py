"""step0: one experiment's freshly initialized model on one fixed batch of training images,
forward and backward -> per-layer statistics (TSV) and headline numbers (JSON) in metrics/step0/.

Usage: python -m stages.step0 <experiment>
"""
import os
import sys

from initstudy.data import PREPARED, load_manifest
from initstudy.files import write_json, write_text
from initstudy.params import load_params, run_stage, validate_diagnostics, validate_train



def main():
    name = sys.argv[1]
    params = load_params()
    experiment = validate_train(params, name)
    diag = validate_diagnostics(params)
    manifest = load_manifest(PREPARED)

    from initstudy.device import make_deterministic
    from initstudy.diagnostics import fixed_batch, headline, layer_stats, to_tsv
    from initstudy.model import build_for_experiment

    make_deterministic(diag["seed"])  # the same numbers on every rerun
    images, labels = fixed_batch(PREPARED, manifest, diag["images"], diag["seed"])
    model = build_for_experiment(params, experiment, manifest, seed=diag["seed"])
    rows = layer_stats(model, images, labels, experiment["initializer"],
                       experiment["activation"], params["model"]["depthwise_fan"])
    os.makedirs(os.path.join("metrics", "step0"), exist_ok=True)
    write_text(os.path.join("metrics", "step0", f"{name}.tsv"), to_tsv(rows))
    summary = {k: None if v is None else float(f"{v:.4g}") for k, v in headline(rows).items()}
    write_json(os.path.join("metrics", "step0", f"{name}.json"), summary)
    print(f"{name} at step 0: last/first signal std {summary['signal_ratio']:.3g}, "
          f"first/last gradient std {summary['gradient_ratio']:.3g}")


if __name__ == "__main__":
    run_stage(main)
