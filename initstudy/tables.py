"""The report's text: the results table, the tests between experiments, the step-0 table,
the reference's published numbers and the grid's verdict on its closing table (markdown)."""
import math
import os

SIGNIFICANCE = 0.05


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


def verdicts(tests, seeds):
    if seeds < 2:
        return ["With one seed per experiment there is no estimate of run-to-run noise, so no "
                "difference between these experiments can be called real; set `train.seeds` "
                "to 3 or more."]
    lines = []
    for t in tests:
        if t["p_holm"] is None:
            continue
        better, worse = (t["a"], t["b"]) if t["diff"] > 0 else (t["b"], t["a"])
        if t["significant"]:
            lines.append(f"- **{better}** beats {worse} by {abs(t['diff']):.4f} test accuracy "
                         f"(95% CI of {t['a']} - {t['b']}: {interval(t['ci_low'], t['ci_high'])}, "
                         f"Holm-adjusted p = {t['p_holm']:.3g}): a real difference at these seeds.")
        else:
            lines.append(f"- {t['a']} vs {t['b']}: {t['diff']:+.4f} "
                         f"(95% CI {interval(t['ci_low'], t['ci_high'])}, Holm-adjusted "
                         f"p = {t['p_holm']:.3g}): not distinguishable from run-to-run noise.")
    return lines


def results_table(experiments):
    lines = ["| experiment | initializer | activation | lr | train acc | val acc | val acc 95% CI "
             "| val loss | val loss 95% CI | seeds | diverged |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in experiments:
        m = e["metrics"]
        lines.append(
            f"| {e['experiment']} | {e['initializer']} | {e['activation']} | "
            f"{e['learning_rate']:g} | "
            f"{fmt(m['train_accuracy'])} | {fmt(m['test_accuracy'])} | "
            f"{interval(m['test_accuracy_ci95_low'], m['test_accuracy_ci95_high'])} | "
            f"{fmt(m['test_loss'])} | {interval(m['test_loss_ci95_low'], m['test_loss_ci95_high'])} "
            f"| {m['seeds']} | {m['diverged']} |")
    for e in experiments:
        bad = [r for r in e["runs"] if r["diverged"]]
        if bad:
            where = ", ".join(f"{r['seed']}/{r['diverged_epoch']}" for r in bad)
            lines += ["", f"**{e['experiment']}: {len(bad)} of {len(e['runs'])} run(s) diverged** "
                          f"(loss not finite; seed/epoch: {where}); "
                          "left out of the means, intervals, tests and curves."]
    return lines


def step0_table(experiments):
    lines = ["| experiment | last/first signal std | first/last gradient std | "
             "min signal std | dead units (ReLU family) |", "|---|---|---|---|---|"]
    for e in experiments:
        h = e["step0_headline"]
        lines.append(f"| {e['experiment']} | {fmt(h['signal_ratio'], '.3g')} | "
                     f"{fmt(h['gradient_ratio'], '.3g')} | {fmt(h['min_signal_std'], '.3g')} | "
                     f"{fmt(h['dead_units'], '.3f')} |")
    return lines


def tests_table(tests):
    lines = ["| a | b | a - b | 95% CI | p (Welch) | p (Holm) | significant |",
             "|---|---|---|---|---|---|---|"]
    return lines + [f"| {t['a']} | {t['b']} | {t['diff']:+.4f} | "
                    f"{interval(t['ci_low'], t['ci_high'])} | {fmt(t['p'], '.3g')} | "
                    f"{fmt(t['p_holm'], '.3g')} | {'yes' if t['significant'] else 'no'} |"
                    for t in tests]


def reference_table(reference):
    lines = ["| experiment | initializer | activation | train acc | val acc | val loss |",
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


def results_markdown(study, manifest, experiments, tests, reference):
    seeds = len(study.train.seeds)
    lines = ["# Weight-initialization study: results", "",
             f"Ours: {setting_line(study)}. Validation = the test split, as in the reference. "
             f"Mean over {seeds} seed(s); 95% t-interval of the mean.", ""]
    lines += data_lines(manifest, study) + [""]
    lines += results_table(experiments)
    lines += ["", "## At initialization (step 0, one batch, before any training)", ""]
    lines += step0_table(experiments)
    lines += ["", "## Which differences are real", "",
              "Welch's t-test on test accuracy across seeds for every pair, p-values "
              f"Holm-corrected for the number of pairs, significant at {SIGNIFICANCE}.", ""]
    lines += verdicts(tests, seeds)
    if seeds >= 2:
        lines += [""] + tests_table(tests)
    lines += ["", "## The reference study's published numbers, for comparison", "",
              f"{reference['study']} Where our settings above differ, the numbers are not "
              "comparable one to one.", ""]
    lines += reference_table(reference)
    return lines


def panels(cells):
    """The (batch_norm, depthwise_fan) combinations of the grid, BN on first."""
    return sorted({(c["batch_norm"], c["depthwise_fan"]) for c in cells}, reverse=True)


def panel_name(bn, fan):
    return f"BN {'on' if bn else 'off'}, {fan} fan"


def best_per_panel(cells, activation):
    """Per panel: the cell of `activation` whose signal ratio is closest to 1 (or None)."""
    best = {}
    for combo in panels(cells):
        pool = [c for c in cells if c["activation"] == activation and c["signal_ratio"]
                and (c["batch_norm"], c["depthwise_fan"]) == combo]
        best[combo] = min(pool, key=lambda c: abs(math.log10(c["signal_ratio"]))) if pool else None
    return best


def grid_verdicts(cells, advice):
    """Per activation: the initializer that keeps the signal best in each panel, and whether
    the panel where the initializer acts alone (BN off, per-channel fan) agrees with `advice`."""
    combos = panels(cells)
    alone = (False, "per_channel") if (False, "per_channel") in combos else combos[0]
    head = " | ".join(f"best with {panel_name(*c)}" for c in combos)
    lines = [f"| activation | {head} | the reference says | agrees ({panel_name(*alone)})? |",
             "|---" * (len(combos) + 3) + "|"]
    for act in dict.fromkeys(c["activation"] for c in cells):
        best = best_per_panel(cells, act)
        shown = " | ".join("-" if b is None else f"{b['initializer']} ({b['signal_ratio']:.3g})"
                           for b in best.values())
        said = advice.get(act, "-")
        verdict = best[alone] and ("yes" if best[alone]["initializer"] == said else
                                   f"no: {best[alone]['initializer']} keeps the signal better")
        lines.append(f"| {act} | {shown} | {said} | {verdict or '-'} |")
    return ["## The reference's closing table, tested at step 0", "",
            "Ratio of the last to the first conv layer's signal std on one batch at "
            "initialization (1 = preserved), per activation: the initializer closest to 1. "
            "With BN on, BN re-normalizes every layer and hides the initializer; with Keras' "
            "depthwise fan and no BN every cell collapses; BN off with the per-channel fan "
            "shows the initializers' own effect, so the verdict is taken there.", ""] + lines
