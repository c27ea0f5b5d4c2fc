"""Trainings side by side, as the train stage runs an experiment's seeds: one training alone
against N at once (each a fresh process under the study's CPU settings, one thread per op),
images/s per run and in total; and the study's own trainings (logs/*/seed*.json of
the last `dvc repro`), which also score, recalibrate BN and log weight updates each epoch.

Usage: python -m bench.parallel [--prepared data/prepared] [--epochs 3] [--steps 150]
    [--runs 2 3] [--out bench/results-parallel.json]
"""
import argparse
import glob
import json
import os
import statistics

from bench.portability import cpu_name, run_variant, side_by_side, start_variant
from initstudy.paths import LOGS


def study_speeds(pattern=os.path.join(LOGS, "*", "seed*.json")):
    """images/s of each training of the last `dvc repro` (whole epochs, scoring excluded)."""
    speeds = [json.load(open(path))["images_per_second"] for path in sorted(glob.glob(pattern))]
    return {"runs": len(speeds), "median_images_per_second": statistics.median(speeds),
            "min": min(speeds), "max": max(speeds)} if speeds else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", default=os.path.join("data", "prepared"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--runs", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--out", default=os.path.join("bench", "results-parallel.json"))
    args = parser.parse_args()
    alone = run_variant(args.prepared, {}, False, args.epochs, args.steps)["images_per_second"]
    print(f"1 training alone: {alone:.0f} images/s", flush=True)
    results = {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)), "data": args.prepared,
               "epochs": args.epochs, "steps_per_epoch": args.steps,
               "alone_images_per_second": alone, "side_by_side": {}}
    for runs in args.runs:
        each = [r["images_per_second"] for r in side_by_side(
            [lambda: start_variant(args.prepared, {}, False, args.epochs, args.steps)] * runs)]
        results["side_by_side"][runs] = {"images_per_second_each": each, "total": sum(each),
                                         "total_over_alone": round(sum(each) / alone, 3)}
        print(f"{runs} side by side: {', '.join(f'{x:.0f}' for x in each)} images/s, "
              f"{sum(each):.0f} in total, {sum(each) / alone:.2f}x one alone", flush=True)
    results["study"] = study_speeds()
    if results["study"]:
        print(f"the study's {results['study']['runs']} trainings: median "
              f"{results['study']['median_images_per_second']:.0f} images/s each", flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
