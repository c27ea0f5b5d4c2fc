"""step0: one experiment's freshly initialized model on one fixed batch of training images,
forward and backward -> per-layer statistics (TSV) and headline numbers (JSON) in metrics/step0/.

Usage: python -m stages.step0 <experiment>
"""
import sys

from initstudy.config import load_study
from initstudy.shards import PREPARED, fixed_batch, load_manifest
from initstudy.runner import run_stage
from initstudy.files import all_or_nothing, writable, write_json, write_tsv
from initstudy.paths import STEP0, step0_path
from initstudy.formatting import fmt, significant


def main():
    study = load_study()
    experiment = study.experiment(sys.argv[1])
    manifest = load_manifest(PREPARED)
    writable(STEP0)

    from initstudy.seeding import make_deterministic
    from initstudy.diagnostics import COLUMNS, headline, layer_stats
    from initstudy.model import build_for_experiment

    diag = study.diagnostics
    make_deterministic(diag.seed)  # the same numbers on every rerun
    images, labels = fixed_batch(PREPARED, manifest, diag.images, diag.seed)
    model, _ = build_for_experiment(study.model, experiment, manifest, diag.seed, images)
    rows = layer_stats(model, images, labels, experiment.initializer, experiment.activation,
                       study.model.depthwise_fan)
    summary = significant(headline(rows))
    with all_or_nothing() as staged:  # the table and its headline, both or neither
        write_tsv(staged(step0_path(experiment.name, "tsv")), rows, COLUMNS)
        write_json(staged(step0_path(experiment.name, "json")), summary)
    print(f"{experiment.name} at step 0: last/first signal std "
          f"{fmt(summary['signal_ratio'], '.3g')}, first/last gradient std "
          f"{fmt(summary['gradient_ratio'], '.3g')}")


if __name__ == "__main__":
    run_stage(main, gpu=True)
