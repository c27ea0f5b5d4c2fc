"""The report's logic: the grid verdict against the reference's advice, and the tables."""
import math

import pytest

from initstudy.tables import grid_verdicts, panels

ADVICE = {"relu": "he_normal", "tanh": "glorot_normal", "selu": "lecun_normal"}


def cell(act, init, drift, spread=0.1, bn=False, fan="per_channel"):
    return {"activation": act, "initializer": init, "batch_norm": bn, "depthwise_fan": fan,
            "drift": drift, "drift_min": drift - spread, "drift_max": drift + spread}


def verdict_rows(cells):
    rows = [line for line in grid_verdicts(cells, ADVICE) if line.startswith("| ")][1:]
    return {r.split(" | ")[0][2:]: r for r in rows}


def test_verdict_picks_the_least_drift_where_the_initializer_acts_alone():
    cells = [cell("relu", "he_normal", 0.2), cell("relu", "glorot_normal", 2.0),
             cell("tanh", "glorot_normal", 0.3), cell("tanh", "he_normal", 1.5),
             cell("selu", "he_normal", 0.1), cell("selu", "lecun_normal", 0.6),
             cell("selu", "random_normal", math.inf, 0),  # collapsed: never the best
             # with BN on every cell is preserved: this panel must not decide
             cell("relu", "glorot_normal", 0.0, bn=True), cell("relu", "he_normal", 0.4, bn=True),
             cell("tanh", "he_normal", 0.0, bn=True), cell("selu", "lecun_normal", 0.0, bn=True)]
    rows = verdict_rows(cells)
    assert rows["relu"].endswith("| he_normal | yes |")
    assert "glorot_normal (0.00 [-0.10, 0.10])" in rows["relu"]  # best with BN on, not the verdict
    assert rows["tanh"].endswith("| glorot_normal | yes |")
    assert rows["selu"].endswith(
        "| lecun_normal | no: he_normal keeps signal and gradient better |")


def test_overlapping_spreads_give_no_clear_winner():
    cells = [cell("relu", "he_normal", 0.2, 0.3), cell("relu", "lecun_normal", 0.6, 0.3),
             cell("tanh", "glorot_normal", math.inf, 0), cell("tanh", "he_normal", math.inf, 0),
             cell("sigmoid", "he_normal", 13.0), cell("sigmoid", "glorot_normal", 14.0)]
    rows = verdict_rows(cells)
    # ranked first but 13 decades off: a collapse, not a winner
    assert "none: every initializer loses over 1,000x (least: he_normal" in rows["sigmoid"]
    assert rows["sigmoid"].endswith("| none |")
    assert "no clear winner: he_normal (0.20 [-0.10, 0.50]) overlaps lecun_normal" in rows["relu"]
    assert rows["relu"].endswith("| he_normal | no clear winner |")
    assert rows["tanh"].endswith("| none |")


def test_panels_put_bn_on_first_and_the_verdict_panel_is_named():
    cells = [cell("relu", "he_normal", 1.0, 0.1, bn, fan)
             for bn in (False, True) for fan in ("keras", "per_channel")]
    assert panels(cells) == [(True, "per_channel"), (True, "keras"), (False, "per_channel"),
                             (False, "keras")]
    header = [line for line in grid_verdicts(cells, ADVICE) if line.startswith("| activation")][0]
    assert "agrees (BN off, per_channel fan)?" in header


@pytest.mark.parametrize("only", [(True, "keras"), (False, "keras")])
def test_without_the_per_channel_panel_the_verdict_uses_the_first_panel(only):
    cells = [cell("relu", "he_normal", 0.1, 0.1, *only),
             cell("relu", "lecun_normal", 2.0, 0.1, *only)]
    assert verdict_rows(cells)["relu"].endswith("| he_normal | yes |")


def test_readme_results_table_is_the_committed_reports():
    """The README quotes the committed run: its table must be report/summary.json's numbers."""
    import json
    import os

    from conftest import ROOT

    summary = json.load(open(os.path.join(ROOT, "report", "summary.json")))
    readme = open(os.path.join(ROOT, "README.md")).read()
    section = readme.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    table = section[section.index("\n| experiment"):].strip().split("\n\n", 1)[0]  # the first
    rows = {cells[0]: cells[1:] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:])}
    assert rows.keys() == {e["experiment"] for e in summary["experiments"]}
    for e in summary["experiments"]:
        assert rows[e["experiment"]] == [
            e["initializer"], e["activation"], f"{e['train_accuracy']:.4f}",
            f"{e['inference_accuracy']:.4f}", f"{e['val_accuracy']:.4f}",
            f"{e['test_accuracy']:.4f}",
            f"[{e['test_accuracy_ci95_low']:.4f}, {e['test_accuracy_ci95_high']:.4f}]",
            f"{e['test_loss']:.4f}"], e["experiment"]
