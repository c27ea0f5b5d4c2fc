"""Where the main job's time went: the last `dvc repro`'s stages and runs (logs/, written as
they ran) against what its trainings alone would take at the bench's best side-by-side speed
(bench/parallel.py's result, measured on the same machine).

  overhead ratio = the repro's wall time / (images its runs trained / best side-by-side images/s)
  train stages   = their images / their wall time, against that speed

Usage: python -m bench.overhead [--bench bench/results-parallel.json] [--out FILE]
"""
import argparse
import glob
import json
import os

from initstudy.paths import LOGS

GAP = 300  # seconds between one stage's end and the next one's start within one repro


def last_repro(stages):
    """The stages of the last `dvc repro`: the latest chain of stage records (start, end)
    in which each starts within GAP seconds of the end of the one before."""
    chain = []
    for record in sorted(stages, key=lambda r: r["start"]):
        if chain and record["start"] - max(r["end"] for r in chain) > GAP:
            chain = []
        chain.append(record)
    return chain


def overhead(stages, runs, best_images_per_second):
    """The figures bench.overhead prints, from stage records and runs' logs/ timings."""
    chain = last_repro(stages)
    start, end = min(r["start"] for r in chain), max(r["end"] for r in chain)
    runs = [r for r in runs if start <= r["mtime"] <= end]
    images = sum(r["images_trained"] for r in runs)
    train_wall = sum(r["seconds"] for r in chain if r["stage"].startswith("train@"))
    phases = {}
    for r in runs:
        for phase, seconds in r["phases"].items():
            phases[phase] = phases.get(phase, 0.0) + seconds
    return {"stages": {r["stage"]: r["seconds"] for r in chain}, "wall_seconds": end - start,
            "images_trained": images, "runs": len(runs),
            "bench_images_per_second": best_images_per_second,
            "overhead_ratio": (end - start) / (images / best_images_per_second),
            "train_stage_images_per_second": images / train_wall if train_wall else None,
            "train_stage_over_bench": images / train_wall / best_images_per_second
            if train_wall else None,
            "run_phases_seconds": {k: round(v, 1) for k, v in phases.items()},
            "first_over_second_epoch": [r["epoch_seconds"][0] / r["epoch_seconds"][1]
                                        for r in runs if len(r["epoch_seconds"]) > 1]}


def read_logs(folder=LOGS):
    stages = [json.load(open(p)) for p in glob.glob(os.path.join(folder, "stages", "*.json"))]
    runs = []
    for path in glob.glob(os.path.join(folder, "*", "seed*.json")):
        run = json.load(open(path))
        if "phases" in run:
            runs.append({**run, "mtime": os.path.getmtime(path)})
    return stages, runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=os.path.join("bench", "results-parallel.json"),
                        help="bench.parallel's result on this machine")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    stages, runs = read_logs()
    if not stages or not runs:
        raise SystemExit(f"error: no stage or run timings in {LOGS}/: run `dvc repro` first")
    with open(args.bench) as f:
        best = max(v["total"] for v in json.load(f)["side_by_side"].values())
    result = overhead(stages, runs, best)
    for stage, seconds in result["stages"].items():
        print(f"{stage:28s} {seconds:8.0f} s")
    ratios = result["first_over_second_epoch"]
    print(f"the repro: {result['wall_seconds']:.0f} s wall; its {result['runs']} runs trained "
          f"{result['images_trained']:,} images, {result['images_trained'] / best:.0f} s at "
          f"{best:.0f} images/s ({args.bench}): overhead ratio {result['overhead_ratio']:.2f}")
    if result["train_stage_over_bench"]:
        print(f"train stages: {result['train_stage_images_per_second']:.0f} images/s, "
              f"{result['train_stage_over_bench']:.2f} of the bench's side-by-side speed")
    print("runs' seconds by phase: " + ", ".join(
        f"{k} {v:.0f}" for k, v in result["run_phases_seconds"].items()))
    if ratios:
        print(f"first epoch / second: {min(ratios):.2f}-{max(ratios):.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
