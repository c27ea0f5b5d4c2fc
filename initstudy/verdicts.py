"""The grid's verdict rule: which initializer keeps signal and gradient best per activation
and panel (BN on/off x depthwise fan), and whether that agrees with the reference's advice."""
import math

# a drift above this many decades (signal and gradient together off by over 1000x) is a
# collapse or an explosion, not a winner, however it ranks
LOST_DECADES = 3


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
