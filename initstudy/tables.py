"""The report's text: the results table, the analysis of the differences between
experiments, the step-0 table, the reference's published numbers (on CIFAR-10 only) and the
grid's verdict on its closing table (markdown)."""
import math
import os

SIGNIFICANCE = 0.05
# a drift above this many decades (signal and gradient together off by over 1000x) is a
# collapse or an explosion, not a winner, however it ranks
LOST_DECADES = 3


def fmt(x, spec=".4f"):
    return "-" if x is None else format(x, spec)


def interval(lo, hi):
    return "-" if lo is None else f"[{lo:.4f}, {hi:.4f}]"


def setting_line(study):
    p, m, t = study.prepare, study.model, study.train
    source = f"image folder {os.path.basename(p.folder)}" if p.source == "folder" \
        else f"tfds {p.tfds_name}"
    subset = f", first {p.max_per_class} images per class" if p.max_per_class else ""
    return (f"{source}{subset}, {m.image_size}x{m.image_size}, {t.epochs} epochs, "
            f"batch {t.batch_size}, plain SGD lr {t.learning_rate} (unless an experiment sets "
            f"its own), seeds {list(t.seeds)}, "
            f"batch_norm {str(m.batch_norm).lower()}, depthwise_fan {m.depthwise_fan}")


def analysis_lines(analysis, seeds):
    """The headline analysis of test accuracy (stats.seed_analysis), in words and a table."""
    if analysis is None:
        return ["With one seed per experiment there is no estimate of run-to-run noise: no "
                "difference between these experiments can be called real or ruled out. Add "
                "seeds (only the new runs train): `dvc exp run -S 'train.seeds=[0,1,2]'`."]
    a = analysis
    blocked = "-" if a["blocked_f"] is None else \
        f"F({a['blocked_df'][0]}, {a['blocked_df'][1]}) = {a['blocked_f']:.2f}, p = {a['blocked_p']:.3g}"
    lines = [f"One-way ANOVA over {len(a['experiments'])} experiments x {a['seeds_per_experiment']} "
             f"seeds: F({a['anova_df'][0]}, {a['anova_df'][1]}) = {a['anova_f']:.2f}, "
             f"p = {a['anova_p']:.3g} (Levene's test of equal variances: p = {a['levene_p']:.3g}). "
             f"Seed-blocked ANOVA (a seed fixes the batch order and the standardized weight draws "
             f"in every experiment): {blocked}. Pooled run-to-run sd {a['pooled_sd']:.4f}: at "
             f"{a['seeds_per_experiment']} seeds a true gap smaller than {a['mdd']:.4f} "
             f"({a['mdd_corrected']:.4f} after correcting for {len(a['pairs'])} pairs) would be "
             f"missed more often than 1 time in {1 / (1 - a['power']):.0f} "
             f"(minimum detectable difference at {a['power']:.0%} power, alpha {a['alpha']}).", ""]
    for t in a["pairs"]:
        ci = interval(t["ci_low"], t["ci_high"])
        if t["significant"]:
            better, worse = (t["a"], t["b"]) if t["diff"] > 0 else (t["b"], t["a"])
            lines.append(f"- **{better}** above {worse} by {abs(t['diff']):.4f} (Tukey 95% "
                         f"interval of {t['a']} - {t['b']}: {ci}, p = {t['p_tukey']:.3g}).")
        else:
            bound = max(abs(t["ci_low"]), abs(t["ci_high"]))
            lines.append(f"- {t['a']} vs {t['b']}: {t['diff']:+.4f}, no difference detected "
                         f"(Tukey 95% interval {ci}, p = {t['p_tukey']:.3g}); the data rule out "
                         f"a gap larger than {bound:.4f}, not a smaller one.")
    lines += ["", "| a | b | a - b | Tukey 95% interval | in pooled sd | p (Tukey) |",
              "|---|---|---|---|---|---|"]
    return lines + [f"| {t['a']} | {t['b']} | {t['diff']:+.4f} | "
                    f"{interval(t['ci_low'], t['ci_high'])} | "
                    f"{t['diff'] / a['pooled_sd']:+.2f} | {t['p_tukey']:.3g} |"
                    for t in a["pairs"]] if a["pooled_sd"] else lines


def results_table(experiments):
    lines = ["| experiment | initializer | activation | lr | train acc (running) "
             "| train acc (inference) | val acc | test acc | test acc 95% CI | test loss "
             "| seeds | diverged |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in experiments:
        m = e["metrics"]
        lines.append(
            f"| {e['experiment']} | {e['initializer']} | {e['activation']} | "
            f"{e['learning_rate']:g} | {fmt(m['train_accuracy'])} | "
            f"{fmt(m['inference_accuracy'])} | {fmt(m['val_accuracy'])} | "
            f"{fmt(m['test_accuracy'])} | "
            f"{interval(m['test_accuracy_ci95_low'], m['test_accuracy_ci95_high'])} | "
            f"{fmt(m['test_loss'])} | {m['seeds']} | {m['diverged']} |")
    for e in experiments:
        bad = [r for r in e["runs"] if r["diverged"]]
        if bad:
            where = ", ".join(f"{r['seed']}/{r['diverged_epoch']}" for r in bad)
            lines += ["", f"**{e['experiment']}: {len(bad)} of {len(e['runs'])} run(s) diverged** "
                          f"(loss not finite; seed/epoch: {where}); "
                          "left out of the means, intervals, tests and curves."]
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
    kind, at the first step and averaged over the first `steps` steps (mean over seeds)."""
    lines = [f"Relative kernel change per SGD step, ||dW|| / ||W||: the median over the layers "
             f"of each kind, at step 1 and averaged over steps 1-{steps}, mean over seeds. With "
             "BN after every conv the network ignores a kernel's scale, so this, not the "
             "learning rate, is the step each layer takes (plot: weight_updates.png).", "",
             "| experiment | depthwise, step 1 | depthwise, mean | conv, step 1 | conv, mean "
             "| depthwise / conv (mean) |", "|---|---|---|---|---|---|"]
    for e in experiments:
        curve = e["updates"]
        if not curve:
            lines.append(f"| {e['experiment']} | - | - | - | - | - |")
            continue

        def mean(kind):
            return sum(c[kind] for c in curve) / len(curve)

        lines.append(f"| {e['experiment']} | {fmt(curve[0]['depthwise'], '.3g')} | "
                     f"{fmt(mean('depthwise'), '.3g')} | {fmt(curve[0]['conv'], '.3g')} | "
                     f"{fmt(mean('conv'), '.3g')} | {mean('depthwise') / mean('conv'):.3g} |")
    return lines


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
    """What was trained on: the source, the classes with their counts per split, the sizes."""
    source = ", ".join(f"{k} {v}" for k, v in manifest["source"].items() if v is not None)
    splits = manifest["splits"]
    lines = [f"Data: {source}; stored at {study.prepare.storage_size}x{study.prepare.storage_size}, "
             f"the model sees {study.model.image_size}x{study.model.image_size}; "
             + "; ".join(f"{s} {v['count']} images" for s, v in splits.items()) + ".", "",
             "| class | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    return lines + [f"| {c} | " + " | ".join(str(v["per_class"][c]) for v in splits.values()) + " |"
                    for c in manifest["classes"]]


def results_markdown(study, manifest, experiments, analysis, tests, reference):
    seeds = len(study.train.seeds)
    validation = manifest.get("validation") or {}
    lines = ["# Weight-initialization study: results", "",
             f"Ours: {setting_line(study)}. Validation: {validation.get('per_class')} images "
             f"per class drawn from train (seed {validation.get('seed')}), watched every epoch; "
             "the test split is scored once, for this table. Train accuracy: Keras' running "
             "mean over the last epoch (BN in training mode) and the model at the epoch's end "
             f"in inference mode on the first {study.train.inference_images} training images. "
             f"Mean over {seeds} seed(s); 95% t-interval of the mean.", ""]
    lines += data_lines(manifest, study) + [""]
    lines += results_table(experiments)
    lines += ["", "## At initialization (step 0, one batch, before any training)", ""]
    lines += step0_table(experiments)
    lines += ["", f"## Effective learning rate (first {study.train.weight_update_steps} steps)", ""]
    lines += updates_table(experiments, study.train.weight_update_steps)
    lines += ["", "## Which differences are real", ""]
    lines += analysis_lines(analysis, seeds)
    if seeds >= 2:
        lines += ["", "Sensitivity check: Welch's t-test for every pair, p-values "
                  f"Holm-corrected for the number of pairs, significant at {SIGNIFICANCE}.", ""]
        lines += tests_table(tests)
    lines += ["", "## The reference study's published numbers", ""]
    return lines + reference_lines(reference, manifest, study)


def panels(cells):
    """The (batch_norm, depthwise_fan) combinations of the grid, BN on first."""
    return sorted({(c["batch_norm"], c["depthwise_fan"]) for c in cells}, reverse=True)


def panel_name(bn, fan):
    return f"BN {'on' if bn else 'off'}, {fan} fan"


def ranked(cells, activation, combo):
    """The cells of `activation` in one panel, least drift first."""
    pool = [c for c in cells if c["activation"] == activation
            and (c["batch_norm"], c["depthwise_fan"]) == combo]
    return sorted(pool, key=lambda c: c["drift"])


def winner(pool):
    """(initializer, why) by the verdict rule: the least mean drift wins only when its range
    over the initialization seeds lies wholly below the runner-up's; otherwise no clear winner."""
    if not pool:
        return None, "-"
    best = pool[0]
    if not math.isfinite(best["drift"]):
        return None, "none: every initializer collapses"
    shown = f"{best['initializer']} ({drift_range(best)})"
    if best["drift"] > LOST_DECADES:
        return None, f"none: every initializer loses over {10 ** LOST_DECADES:,}x (least: {shown})"
    if len(pool) > 1 and best["drift_max"] >= pool[1]["drift_min"]:
        return None, (f"no clear winner: {shown} overlaps {pool[1]['initializer']} "
                      f"({drift_range(pool[1])})")
    return best["initializer"], shown


def drift_range(c):
    return f"{c['drift']:.2f} [{c['drift_min']:.2f}, {c['drift_max']:.2f}]"


def grid_verdicts(cells, advice):
    """Per activation: the initializer that keeps signal and gradient best in each panel, and
    whether the panel where the initializer acts alone (BN off, per-channel fan) agrees with
    `advice`."""
    combos = panels(cells)
    alone = (False, "per_channel") if (False, "per_channel") in combos else combos[0]
    head = " | ".join(f"best with {panel_name(*c)}" for c in combos)
    lines = [f"| activation | {head} | the reference says | agrees ({panel_name(*alone)})? |",
             "|---" * (len(combos) + 3) + "|"]
    for act in dict.fromkeys(c["activation"] for c in cells):
        verdicts = {combo: winner(ranked(cells, act, combo)) for combo in combos}
        shown = " | ".join(why for _, why in verdicts.values())
        said = advice.get(act, "-")
        chosen, why = verdicts[alone]
        agrees = ("yes" if chosen == said else f"no: {chosen} keeps signal and gradient better"
                  ) if chosen else why.split(":")[0]
        lines.append(f"| {act} | {shown} | {said} | {agrees} |")
    return ["## The reference's closing table, tested at step 0", "",
            "Per cell, the drift of one initialization: |log10(last/first conv per-unit signal "
            "std)| + |log10(first/last conv output-gradient std)|, in decades (0 = forward and "
            "backward both preserved), as a mean [min, max] over the grid's initialization "
            "seeds. The least drift wins a panel only when its range lies wholly below the "
            "runner-up's; otherwise the panel has no clear winner; and none wins where even "
            f"the least drift exceeds {LOST_DECADES} decades. With BN on, BN re-normalizes "
            "every layer and hides the initializer; with Keras' depthwise fan and no BN the "
            "signal collapses; BN off with the per-channel fan shows the initializers' own "
            "effect, so the verdict is taken there. ReLU6's ratios are capped by its clipping "
            "at 6.", ""] + lines
