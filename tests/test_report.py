"""The report's logic: the grid verdict against the reference's advice, and the tables."""
import pytest

from initstudy.tables import grid_verdicts, panels

ADVICE = {"relu": "he_normal", "tanh": "glorot_normal", "selu": "lecun_normal"}


def cell(act, init, ratio, bn=False, fan="per_channel"):
    return {"activation": act, "initializer": init, "batch_norm": bn, "depthwise_fan": fan,
            "signal_ratio": ratio}


def verdict_rows(cells):
    rows = [line for line in grid_verdicts(cells, ADVICE) if line.startswith("| ")][1:]
    return {r.split(" | ")[0][2:]: r for r in rows}


def test_verdict_picks_the_ratio_closest_to_one_where_the_initializer_acts_alone():
    cells = [cell("relu", "he_normal", 1.2), cell("relu", "glorot_normal", 0.01),
             cell("tanh", "glorot_normal", 0.5), cell("tanh", "he_normal", 2.5),
             cell("selu", "he_normal", 1.1), cell("selu", "lecun_normal", 3.0),
             cell("selu", "random_normal", None),  # not measurable: never the best
             # with BN on every cell is preserved: this panel must not decide
             cell("relu", "glorot_normal", 1.0, bn=True), cell("relu", "he_normal", 1.3, bn=True),
             cell("tanh", "he_normal", 1.0, bn=True), cell("selu", "lecun_normal", 1.0, bn=True)]
    rows = verdict_rows(cells)
    assert rows["relu"].endswith("| he_normal | yes |")
    assert "glorot_normal (1)" in rows["relu"]  # best with BN on, shown but not the verdict
    assert rows["tanh"].endswith("| glorot_normal | yes |")  # |log 0.5| < |log 2.5|
    assert rows["selu"].endswith("| lecun_normal | no: he_normal keeps the signal better |")


def test_panels_put_bn_on_first_and_the_verdict_panel_is_named():
    cells = [cell("relu", "he_normal", 1.0, bn, fan)
             for bn in (False, True) for fan in ("keras", "per_channel")]
    assert panels(cells) == [(True, "per_channel"), (True, "keras"), (False, "per_channel"),
                             (False, "keras")]
    header = [line for line in grid_verdicts(cells, ADVICE) if line.startswith("| activation")][0]
    assert "agrees (BN off, per_channel fan)?" in header


@pytest.mark.parametrize("only", [(True, "keras"), (False, "keras")])
def test_without_the_per_channel_panel_the_verdict_uses_the_first_panel(only):
    cells = [cell("relu", "he_normal", 1.0, *only), cell("relu", "lecun_normal", 0.1, *only)]
    assert verdict_rows(cells)["relu"].endswith("| he_normal | yes |")


def test_readme_results_table_is_the_committed_reports():
    """The README quotes the committed run: its table must be report/summary.json's numbers."""
    import json
    import os

    from conftest import ROOT

    summary = json.load(open(os.path.join(ROOT, "report", "summary.json")))
    readme = open(os.path.join(ROOT, "README.md")).read()
    section = readme.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    rows = {cells[0]: cells[1:] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
             if line.startswith("| ") and not line.startswith("| experiment"))}
    assert rows.keys() == {e["experiment"] for e in summary["experiments"]}
    for e in summary["experiments"]:
        assert rows[e["experiment"]] == [
            e["initializer"], e["activation"], f"{e['train_accuracy']:.4f}",
            f"{e['test_accuracy']:.4f}", f"{e['test_loss']:.4f}"], e["experiment"]
