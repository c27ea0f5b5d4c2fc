"""The report's text: the results table with its baselines, the analysis of the differences
between experiments, the step-0 table, the reference's published numbers (on CIFAR-10 only)
(markdown). The baselines' noise limits are initstudy.stats', the numbers' formatting and the
report JSON's rounding initstudy.formatting's, the grid's verdict rule initstudy.verdicts'."""
import os

from initstudy.formatting import PRECISION, fmt, interval
from initstudy.stats import NOISE_Z, accuracy_limits, baselines, inference_baseline

SIGNIFICANCE = 0.05
NOISE_MARK = "†"


OPTIMIZER_NAMES = {"sgd": "plain SGD", "momentum": "SGD with momentum 0.9", "adam": "Adam"}


def setting_line(study):
    p, m, t = study.prepare, study.model, study.train
    source = f"image folder {os.path.basename(p.folder)}" if p.source == "folder" \
        else f"tfds {p.tfds_name}"
    subset = f", first {p.max_per_class} images per class" if p.max_per_class else ""
    return (f"{source}{subset}, {m.image_size}x{m.image_size}, {t.epochs} epochs, "
            f"batch {t.batch_size}, {OPTIMIZER_NAMES[t.optimizer]} lr {t.learning_rate} "
            f"(unless an experiment sets its own), {t.schedule} schedule, seeds {list(t.seeds)}, "
            f"batch_norm {str(m.batch_norm).lower()}, depthwise_fan {m.depthwise_fan}, "
            f"residual_scale {m.residual_scale}")


def analysis_lines(analysis):
    """The analysis of test accuracy (stats.seed_analysis), in words and tables: the seed-blocked
    ANOVA / Tukey HSD as the headline, the unblocked one-way analysis as a sensitivity check."""
    if analysis is None:
        return ["Fewer than 2 seeds finished in every experiment: there is no estimate of "
                "run-to-run noise, and no difference between these experiments can be called "
                "real or ruled out. Add seeds (only the new runs train): "
                "`dvc exp run -S 'train.seeds=[0,1,2]'`."]
    a, b, o = analysis, analysis["blocked"], analysis["oneway"]
    k, pairs = len(a["experiments"]), len(b["pairs"])
    lines = [f"Headline: the seed-blocked ANOVA. A seed fixes the batch order and the "
             f"standardized weight draws in every experiment, so the runs form a randomized "
             f"complete block design: the {k} experiments are the treatments, the {b['seeds']} "
             f"seeds the blocks. Experiments: F({b['df'][0]}, {b['df'][1]}) = {b['f']:.2f}, "
             f"p = {b['p']:.3g}; seeds (blocks): F({b['block_df'][0]}, {b['block_df'][1]}) = "
             f"{b['block_f']:.2f}, p = {b['block_p']:.3g}. Residual sd {b['residual_sd']:.4f} on "
             f"(k-1)(b-1) = {b['df'][1]} df: Tukey's HSD, which decides every pair below, detects "
             f"a true gap of {b['mdd_tukey']:.4f} with {a['power']:.0%} power at alpha "
             f"{a['alpha']} (a single pre-planned t-test would detect {b['mdd']:.4f}; "
             f"{b['mdd_corrected']:.4f} after a Bonferroni correction for {pairs} pairs). A "
             f"smaller gap is missed more often than 1 time in {1 / (1 - a['power']):.0f}."]
    for d in a["dropped_blocks"]:
        lines += ["", f"Seed {d['seed']} is left out of the blocked analysis: a block needs every "
                      f"experiment, and {', '.join(d['missing_in'])} has no finished run at it. "
                      f"The blocked analysis' means and differences are over the {b['seeds']} "
                      "complete seeds."]
    lines.append("")
    for t in b["pairs"]:
        ci = interval(t["ci_low"], t["ci_high"])
        if t["significant"]:
            better, worse = (t["a"], t["b"]) if t["diff"] > 0 else (t["b"], t["a"])
            lines.append(f"- **{better}** above {worse} by {abs(t['diff']):.4f} (Tukey 95% "
                         f"interval of {t['a']} - {t['b']}: {ci}, p = {t['p_tukey']:.3g}).")
        else:
            bound = max(abs(t["ci_low"]), abs(t["ci_high"]))
            lines.append(f"- {t['a']} vs {t['b']}: {t['diff']:+.4f}, no difference detected "
                         f"(Tukey 95% interval {ci}, p = {t['p_tukey']:.3g}); the data rule out "
                         f"a gap larger than {bound:.4f}, not a smaller one. A true gap of "
                         f"{abs(t['diff']):.4f} would be detected with power "
                         f"{t['power_tukey']:.2f}.")
    lines += [""] + tukey_table(b["pairs"], b["residual_sd"], "residual sd")
    lines += ["", f"Sensitivity check, unblocked (seeds ignored; every finished run): one-way "
              f"ANOVA over {o['runs']} runs: F({o['df'][0]}, {o['df'][1]}) = {o['f']:.2f}, "
              f"p = {o['p']:.3g} (Levene's test of equal variances: p = {o['levene_p']:.3g}); "
              f"pooled sd {o['pooled_sd']:.4f}, Tukey detects {o['mdd_tukey']:.4f} with "
              f"{a['power']:.0%} power. " + agreement_line(a), ""]
    return lines + tukey_table(o["pairs"], o["pooled_sd"], "pooled sd")


def agreement_line(analysis):
    """Whether the blocked and the unblocked analysis call the same pairs, and why not where
    they differ: the seeds' shared effect only where the blocks explain something (their F
    test at alpha) and blocking lowered the residual sd; else the blocked analysis' fewer
    residual df."""
    b, o, alpha = analysis["blocked"], analysis["oneway"], analysis["alpha"]
    calls = {(t["a"], t["b"]): t["significant"] for t in o["pairs"]}
    differ = [f"{t['a']} vs {t['b']}" for t in b["pairs"]
              if calls.get((t["a"], t["b"])) is not None
              and calls[(t["a"], t["b"])] != t["significant"]]
    if not differ:
        return "Both analyses make the same call on every pair."
    where = f"They differ on {', '.join(differ)}"
    if b["block_p"] < alpha and b["residual_sd"] < o["pooled_sd"]:
        return (f"{where}: the seeds share an effect (p = {b['block_p']:.3g}) and blocking "
                f"lowered the residual sd from {o['pooled_sd']:.4f} to {b['residual_sd']:.4f}, "
                "which is what separates the two.")
    return (f"{where}, although the seeds explain little here (F = {b['block_f']:.2f}, p = "
            f"{b['block_p']:.3g}; residual sd {o['pooled_sd']:.4f} unblocked, "
            f"{b['residual_sd']:.4f} blocked): read those pairs as undecided.")


def tukey_table(pairs, sd, sd_name):
    lines = [f"| a | b | a - b | Tukey 95% interval | in {sd_name} | p (Tukey) |",
             "|---|---|---|---|---|---|"]
    return lines + [f"| {t['a']} | {t['b']} | {t['diff']:+.4f} | "
                    f"{interval(t['ci_low'], t['ci_high'])} | "
                    f"{fmt(t['diff'] / sd if sd else None, '+.2f')} | {t['p_tukey']:.3g} |"
                    for t in pairs]


def data_id(manifest):
    """The data a run trained on, in one short string for `dvc exp show`: the first 12 hex
    digits of the source's sha256 (data.source_hash, in the prepared manifest); a tfds
    download, which records no archive, as its name and version."""
    source = manifest["source"]
    if source.get("sha256"):
        return source["sha256"][:12]
    if "tfds" in source:
        return f"tfds {source['tfds']} {source.get('version', '')}".rstrip()
    return "no sha256 recorded"


def mark(x, limit):
    """An accuracy, marked with NOISE_MARK where it is within noise of its split's baseline."""
    return fmt(x) + (f" {NOISE_MARK}" if x is not None and x < limit else "")


def baseline_lines(manifest, inference_images):
    subset = inference_baseline(manifest, inference_images)
    lines = [f"Baselines: chance (1 / {len(manifest['classes'])} classes) and the majority-class "
             f"rate (largest class / number of images). {NOISE_MARK} marks an accuracy within "
             f"noise of the larger of the two, r: below r + {NOISE_Z} sqrt(r (1 - r) / n), "
             f"{NOISE_Z} binomial standard errors at the n images scored (the split's size; for "
             f"train accuracy in inference mode, the first {subset['images']} training images, "
             "with their own class counts: the row train (inference)).", "",
             "| split | images | chance | majority class | within noise below |",
             "|---|---|---|---|---|"]
    rows = list(baselines(manifest).items()) + [("train (inference)", subset)]
    return lines + [f"| {s} | {v['images']} | {v['chance']:.4f} | {v['majority']:.4f} | "
                    f"{v['noise_limit']:.4f} |" for s, v in rows]


def results_table(experiments, limits):
    """One row per experiment; "test acc (BN as trained)" beside "test acc" where the runs
    were also scored with BN's statistics as training left them (precise BN)."""
    raw = any(e["metrics"].get("test_accuracy_raw") is not None for e in experiments)
    lines = ["| experiment | initializer | activation | lr | train acc (running) "
             "| train acc (inference) | val acc | test acc "
             + ("| test acc (BN as trained) " if raw else "")
             + "| test acc 95% CI | test loss | seeds | diverged |",
             "|---" * (12 + raw) + "|"]
    for e in experiments:
        m = e["metrics"]
        lines.append(
            f"| {e['experiment']} | {e['initializer']} | {e['activation']} | "
            f"{e['learning_rate']:g} | {mark(m['train_accuracy'], limits['train_accuracy'])} | "
            f"{mark(m['inference_accuracy'], limits['inference_accuracy'])} | "
            f"{mark(m['val_accuracy'], limits['val_accuracy'])} | "
            f"{mark(m['test_accuracy'], limits['test_accuracy'])} | "
            + (f"{mark(m.get('test_accuracy_raw'), limits['test_accuracy_raw'])} | " if raw else "")
            + f"{interval(m['test_accuracy_ci95_low'], m['test_accuracy_ci95_high'])} | "
            f"{fmt(m['test_loss'])} | {m['seeds']} | {m['diverged']} |")
    if raw:
        lines += ["", "test acc: scored after BN's statistics were recomputed on training "
                      "images (precise BN), the headline, and what the analysis uses; test acc "
                      "(BN as trained): the same models with BN's moving averages as training "
                      "left them."]
    for e in experiments:
        bad = [r for r in e["runs"] if r["diverged"]]
        if bad:
            where = ", ".join(f"{r['seed']}/{r['diverged_epoch']}" for r in bad)
            lines += ["", f"**{e['experiment']}: {len(bad)} of {len(e['runs'])} run(s) diverged** "
                          f"(loss not finite; seed/epoch: {where}); "
                          "left out of the means, intervals, tests and curves."]
    return lines


def seeds_table(experiments, limit):
    """Test accuracy per run: experiments x seeds, the layout of the blocked design."""
    seeds = sorted({r["seed"] for e in experiments for r in e["runs"]})
    lines = ["| experiment | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---" * (len(seeds) + 1) + "|"]
    for e in experiments:
        runs = {r["seed"]: r for r in e["runs"]}
        cells = ["-" if s not in runs else "diverged" if runs[s]["diverged"]
                 else mark(runs[s]["test_accuracy"], limit) for s in seeds]
        lines.append(f"| {e['experiment']} | " + " | ".join(cells) + " |")
    return lines


def step0_table(experiments):
    lines = ["Signal: the per-unit std across the batch (pooled over batch x H x W x C in "
             "brackets, which also counts fixed per-unit offsets); residual: the largest per-unit "
             "std after a residual add.", "",
             "| experiment | last/first signal std (pooled) | first/last gradient std | "
             "min signal std | max residual std | dead units (ReLU family) |",
             "|---|---|---|---|---|---|"]
    for e in experiments:
        h = e["step0_headline"]
        lines.append(f"| {e['experiment']} | {fmt(h['signal_ratio'], '.3g')} "
                     f"({fmt(h['pooled_signal_ratio'], '.3g')}) | "
                     f"{fmt(h['gradient_ratio'], '.3g')} | {fmt(h['min_signal_std'], '.3g')} | "
                     f"{fmt(h['max_residual_std'], '.3g')} | {fmt(h['dead_units'], '.3f')} |")
    return lines


def updates_table(experiments, steps):
    """The effective learning rate per experiment: median ||dW|| / ||W|| over the layers of a
    kind, at the first step and averaged over the first `steps` steps (mean over seeds). A
    kind whose median is 0 (no measurable update) is named below the table, not divided by."""
    lines = [f"Relative kernel change per SGD step, ||dW|| / ||W||: the median over the layers "
             f"of each kind, at step 1 and averaged over steps 1-{steps}, mean over seeds. With "
             "BN after every conv the network ignores a kernel's scale, so this, not the "
             "learning rate, is the step each layer takes (plot: weight_updates.png).", "",
             "| experiment | depthwise, step 1 | depthwise, mean | conv, step 1 | conv, mean "
             "| depthwise / conv (mean) |", "|---|---|---|---|---|---|"]
    notes = []
    for e in experiments:
        curve = e["updates"]
        if not curve:
            lines.append(f"| {e['experiment']} | - | - | - | - | - |")
            continue

        def mean(kind):
            values = [c[kind] for c in curve if kind in c]
            return sum(values) / len(values) if values else None

        first = {k: curve[0].get(k) for k in ("depthwise", "conv")}
        means = {k: mean(k) for k in ("depthwise", "conv")}
        if means["depthwise"] is None or means["conv"] is None:
            ratio = "-"
        elif means["conv"] == 0:
            ratio = "- (no conv update)"
        else:
            ratio = f"{means['depthwise'] / means['conv']:.3g}"
        lines.append(f"| {e['experiment']} | {fmt(first['depthwise'], '.3g')} | "
                     f"{fmt(means['depthwise'], '.3g')} | {fmt(first['conv'], '.3g')} | "
                     f"{fmt(means['conv'], '.3g')} | {ratio} |")
        unchanged = e.get("unchanged") or {}
        for kind in ("depthwise", "conv"):
            if means[kind] is None or (means[kind] > 0 and first[kind] != 0):
                continue
            u = unchanged.get(kind)
            count = "" if u is None else (
                f" ({u['min']}{'' if u['min'] == u['max'] else '-' + str(u['max'])} of "
                f"{u['layers']} {kind} kernels unchanged per step, over the logged steps "
                "and seeds)")
            when = (f"at any of the {len(curve)} logged steps" if means[kind] == 0
                    else f"at step 1 (later steps move them: mean {means[kind]:.3g})")
            notes.append(f"- {e['experiment']}: no measurable update of the {kind} kernels "
                         f"{when}: the median ||dW|| / ||W|| is exactly 0{count}"
                         + ("; the depthwise / conv ratio is undefined." if kind == "conv"
                            and means[kind] == 0 else "."))
    if notes:
        notes += ["", "A kernel does not change where its gradient is 0 (behind a residual "
                      "branch scaled by 0, as SkipInit starts, or a dead activation) or where "
                      "its step is below float32's resolution of its weights."]
    return lines + ([""] + notes if notes else [])


def tests_table(tests):
    lines = ["| a | b | a - b | 95% CI | p (Welch) | p (Holm) | significant |",
             "|---|---|---|---|---|---|---|"]
    return lines + [f"| {t['a']} | {t['b']} | {t['diff']:+.4f} | "
                    f"{interval(t['ci_low'], t['ci_high'])} | {fmt(t['p'], '.3g')} | "
                    f"{fmt(t['p_holm'], '.3g')} | {'yes' if t['significant'] else 'no'} |"
                    for t in tests]


def reference_lines(reference, manifest, study):
    """The reference's published table, only where it compares: on CIFAR-10, with what
    differs between its run and ours."""
    if manifest["classes"] != reference["classes"]:
        return ["No reference: the data is not CIFAR-10 (classes "
                f"{', '.join(manifest['classes'])}), so the reference study's numbers do not "
                "apply."]
    differs = []
    if study.model.image_size != reference["image_size"]:
        differs.append(f"resolution {study.model.image_size}px vs {reference['image_size']}px")
    if study.train.epochs != reference["epochs"]:
        differs.append(f"{study.train.epochs} epochs vs {reference['epochs']}")
    if "folder" in manifest["source"]:
        differs.append("our images are a lossy JPEG re-encode of CIFAR-10")
    differs.append("its validation was the test split; ours is carved from train")
    lines = [f"{reference['study']} What differs from ours: {'; '.join(differs)}. The numbers "
             "are not comparable one to one.", "",
             "| experiment | initializer | activation | train acc | val acc | val loss |",
             "|---|---|---|---|---|---|"]
    return lines + [f"| {name} | {r['initializer']} | {r['activation']} | "
                    f"{r['train_accuracy']:.4f} | {r['val_accuracy']:.4f} | {r['val_loss']:.4f} |"
                    for name, r in reference["results"].items()]


def data_lines(manifest, study):
    """What was trained on: the source and its hash, the classes with their counts per split,
    the sizes."""
    from initstudy.sources import source_line

    splits = manifest["splits"]
    size = study.prepare.storage_size
    lines = [f"D{source_line(manifest)[1:]}; stored at {size}x{size}, "
             f"the model sees {study.model.image_size}x{study.model.image_size}; "
             + "; ".join(f"{s} {v['count']} images" for s, v in splits.items()) + ".", "",
             "| class | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    return lines + [f"| {c} | " + " | ".join(str(v["per_class"][c]) for v in splits.values()) + " |"
                    for c in manifest["classes"]]


def results_markdown(study, manifest, experiments, analysis, tests, reference):
    seeds = len(study.train.seeds)
    validation = manifest.get("validation") or {}
    limits = accuracy_limits(manifest, study.train.inference_images)
    lines = ["# Weight-initialization study: results", "",
             f"Ours: {setting_line(study)}. Validation: {validation.get('per_class')} images "
             f"per class drawn from train (seed {validation.get('seed')}), watched every epoch; "
             "the test split is scored once, for this table. Train accuracy: Keras' running "
             "mean over the last epoch (BN in training mode) and the model at the epoch's end "
             f"in inference mode on the first {study.train.inference_images} training images. "
             f"Mean over {seeds} seed(s); 95% t-interval of the mean. {PRECISION}", ""]
    lines += data_lines(manifest, study) + [""]
    lines += baseline_lines(manifest, study.train.inference_images) + [""]
    lines += results_table(experiments, limits)
    lines += ["", "## At initialization (step 0, one batch, before any training)", ""]
    lines += step0_table(experiments)
    lines += ["", f"## Effective learning rate (first {study.train.weight_update_steps} steps)", ""]
    lines += updates_table(experiments, study.train.weight_update_steps)
    lines += ["", "## Which differences are real", "",
              f"Test accuracy per run ({NOISE_MARK}: within noise of the test split's baseline):",
              ""] + seeds_table(experiments, limits["test_accuracy"]) + [""]
    lines += analysis_lines(analysis)
    if seeds >= 2:
        lines += ["", "Sensitivity check, unblocked and pairwise: Welch's t-test for every pair, "
                  f"p-values Holm-corrected for the number of pairs, significant at "
                  f"{SIGNIFICANCE}.", ""]
        lines += tests_table(tests)
    lines += ["", "## The reference study's published numbers", ""]
    return lines + reference_lines(reference, manifest, study)
