"""What "bit for bit" covers on CPUs: the same short training in a fresh process under the
study's CPU settings (initstudy/device.py: one thread per op, oneDNN at the CPU's own
instruction set), again, on one core, with TensorFlow's default threads, with oneDNN capped
at older instruction sets (ONEDNN_MAX_CPU_ISA stands in for an older CPU generation) and
with TensorFlow's own Eigen kernels (TF_ENABLE_ONEDNN_OPTS=0); prints a fingerprint of the
trained weights, the final loss and the speed.

Usage: python -m bench.portability [--epochs 6] [--out bench/results-portability.json]
Reads the mini archive the tests use (about 5 minutes on 2 cores); for speed on the study's
own data: python -m bench.portability --prepared data/prepared --epochs 3 --steps 150
    --out bench/results-speed.json
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHIVE = os.path.join("tests", "data", "cifar10-jpeg-mini.tar.gz")
DEFAULT_THREADS = {"TF_NUM_INTRAOP_THREADS": "0", "TF_NUM_INTEROP_THREADS": "0"}  # 0: TF's own
# name -> (environment over the study's, run on one core only). oneDNN's ISA names: its guide
# "CPU dispatcher control"; TensorFlow's Eigen matrix products call oneDNN's sgemm too.
VARIANTS = {
    "study settings": ({}, False),
    "study settings, again": ({}, False),
    "study settings, one core": ({}, True),
    "TF default threads": (DEFAULT_THREADS, False),
    "TF default threads, again": (DEFAULT_THREADS, False),
    "TF default threads, one core": (DEFAULT_THREADS, True),
    "oneDNN AVX2 at most": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
    "previous rounds' settings (AVX2 cap, TF default threads)":
        ({"ONEDNN_MAX_CPU_ISA": "AVX2", **DEFAULT_THREADS}, False),
    "oneDNN AVX at most": ({"ONEDNN_MAX_CPU_ISA": "AVX"}, False),
    "oneDNN SSE4.1 at most": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, False),
    "Eigen (oneDNN off)": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, False),
}


def train_once(prepared, epochs, steps=None, size=32):
    """One deterministic training (he_normal + relu6 at `size` px, seed 0; `steps` per epoch,
    default the whole split): weights digest, losses, seconds and images/s of the fastest
    epoch after the first."""
    import keras

    from bench.timer import EpochTimer
    from initstudy.shards import load_manifest, make_dataset
    from initstudy.seeding import make_deterministic
    from initstudy.model import build_mobilenet_v2, data_inputs

    manifest = load_manifest(prepared)
    make_deterministic(0)
    model = build_mobilenet_v2(image_size=size, initializer="he_normal", activation="relu6",
                               **data_inputs(manifest))
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = EpochTimer()
    steps = steps or -(-manifest["splits"]["train"]["count"] // 64)
    history = model.fit(make_dataset(prepared, manifest, "train", 64, 0, epochs=(0, epochs)),
                        epochs=epochs, steps_per_epoch=steps, verbose=0, shuffle=False,
                        callbacks=[timer])
    seconds = min(timer.seconds[1:] or timer.seconds)
    digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    return {"weights_sha256": digest[:16], "loss": history.history["loss"],
            "seconds_per_epoch": seconds, "images_per_second": round(steps * 64 / seconds, 1)}


def start_variant(prepared, env, one_core, epochs, steps=None, size=32):
    """train_once in a fresh process under `env` (over the study's CPU settings), on core 0
    alone if `one_core`: the running process (finish_variant reads its result)."""
    return subprocess.Popen([sys.executable, "-m", "bench.portability", "--one", prepared,
                             "--epochs", str(epochs), "--size", str(size)]
                            + (["--steps", str(steps)] if steps else []),
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
                            preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if one_core
                            else None, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish_variant(process):
    out, err = process.communicate()
    if process.returncode:
        raise RuntimeError(f"training failed:\n{err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def side_by_side(starts):
    """Processes started together, one per function in `starts`: each one's result."""
    return [finish_variant(p) for p in [start() for start in starts]]


def run_variant(prepared, env, one_core, epochs, steps=None, size=32):
    """start_variant and its result dict."""
    return finish_variant(start_variant(prepared, env, one_core, epochs, steps, size))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--prepared", help="train on this prepared data (e.g. data/prepared) "
                        "instead of the mini archive")
    parser.add_argument("--steps", type=int, help="steps per epoch (default: the whole split)")
    parser.add_argument("--size", type=int, default=32, help="the model's image size (px)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--out", default=os.path.join("bench", "results-portability.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # child process: one training, one JSON line on stdout
        from initstudy.device import set_cpu_environment

        set_cpu_environment()  # the study's CPU settings, under the variant's environment
        print(json.dumps(train_once(args.one, args.epochs, args.steps, args.size)))
        return

    from initstudy import shards, sources

    prepared = args.prepared
    if not prepared:
        prepared = tempfile.mkdtemp(prefix="portability-")
        classes, splits = sources.read_image_folder(ARCHIVE, 32)
        shards.write_prepared(classes, splits, prepared, 2, {"folder": ARCHIVE})
    results = {"cpu": cpu_name(), "data": args.prepared or ARCHIVE, "size": args.size,
               "epochs": args.epochs, "steps_per_epoch": args.steps, "variants": {}}
    for name in args.variants:
        env, one_core = VARIANTS[name]
        start = time.perf_counter()
        try:
            result = run_variant(prepared, env, one_core, args.epochs, args.steps, args.size)
        except RuntimeError as e:
            raise SystemExit(f"{name}: {e}") from None
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        results["variants"][name] = {"env": env, "one_core": one_core, **result}
        print(f"{name:58s} weights {result['weights_sha256']}  final loss "
              f"{result['loss'][-1]!r}  {result['images_per_second']:.0f} images/s", flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")


def cpu_name():
    """`<model>; <its avx, fma and amx flags>`, as the results record the machine."""
    from initstudy.device import cpu_info

    info = cpu_info()
    if info is None:
        return "unknown"
    model, flags = info
    return f"{model or '?'}; {' '.join(sorted(f for f in flags if f.startswith(('avx', 'fma', 'amx'))))}"


if __name__ == "__main__":
    main()
