"""The sweep plans: sweeps.yaml is validated in one line per bad value, the -S overrides they
queue make a valid study, and their tables classify runs as the README says (trains, stuck
at chance, diverged; best rate by validation) with the class count of the data."""
import glob
import json
import os
import shutil

import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from conftest import ROOT, commit, sh, stage
from initstudy.config import load_study
from initstudy.errors import StudyError
from tools.plans import check_plan, load_sweeps, parse_sweeps, plan
from tools.sweep import prepared_data, report_section, sweep_markdown, waiting
from tools.trained_grid import best_rates, spearman_interval

SWEEPS = os.path.join(ROOT, "sweeps.yaml")
PARAMS = os.path.join(ROOT, "params.yaml")


@pytest.mark.parametrize("name", ["lr", "lr_seeds", "bn_free"])
def test_each_queued_experiment_is_a_valid_study_with_the_added_initializers(tmp_path, name):
    runs = plan(load_sweeps(SWEEPS), name)
    assert len({exp for exp, _ in runs}) == len(runs) == {"lr": 5, "bn_free": 2}.get(name, len(runs))
    assert runs and all(exp.endswith("-seeds") for exp, _ in runs) == (name == "lr_seeds")
    check_plan(runs, PARAMS)  # what `queue` checks before it queues anything
    study_params = load_study(PARAMS)
    for exp, overrides in runs:
        params = tmp_path / "params.yaml"
        shutil.copy(PARAMS, params)
        apply_overrides(str(params), overrides)  # what `dvc exp run -S` does
        study = load_study(str(params))
        assert list(study.experiments)[-2:] == ["orthogonal", "lsuv"]
        assert study.experiments["lsuv"].initializer == "lsuv"
        assert study.train.seeds == ((0, 1, 2) if name == "lr_seeds" else (0,))
        if name == "bn_free":
            assert study.model.batch_norm is False and study.prepare.max_per_class == 600
        else:  # the budget findings/lr*.md were measured with, on the study's own model
            assert study.prepare.max_per_class == 2500 and study.model == study_params.model
        # every plan: a constant rate, no precise BN, 2 epochs, as its committed table
        assert (study.train.epochs, study.train.schedule, study.train.precise_bn_batches) == \
            (2, "constant", 0)
    if name == "lr":
        rates = [float(overrides[0].split("=")[1]) for _, overrides in runs]
        assert sorted(rates) == [0.005, 0.016, 0.05, 0.16, 0.5]
        assert rates[0] == study_params.train.learning_rate  # the study's own rate first


def sweeps(**change):
    doc = yaml.safe_load(open(SWEEPS))
    for key, value in change.items():
        section, _, field = key.partition("__")
        if field:
            doc[section][field] = value
        elif value is None:
            del doc[section]
        else:
            doc[section] = value
    return doc


@pytest.mark.parametrize("change,message", [
    (dict(lr__learning_rates="x"),
     "sweeps.yaml: lr.learning_rates = 'x': must be a non-empty list of distinct numbers > 0"),
    (dict(lr_seeds__learning_rates=[0.016, 0.016]),
     "sweeps.yaml: lr_seeds.learning_rates = [0.016, 0.016]: must be a non-empty list of "
     "distinct numbers > 0"),
    (dict(lr__learning_rates=[0.05, -1]),
     "sweeps.yaml: lr.learning_rates = [0.05, -1]: must be a non-empty list of distinct "
     "numbers > 0"),
    (dict(lr__rates=[0.05]),
     "sweeps.yaml: lr has unknown key(s) rates: allowed are learning_rates, set"),
    (dict(lr__set=["train.seeds=[0]"]),
     "sweeps.yaml: lr.set = ['train.seeds=[0]']: must be a mapping of params (e.g. "
     "train.seeds) to values"),
    (dict(bn_free__fans=["keras", "fan_in"]),
     "sweeps.yaml: bn_free.fans has 'fan_in': allowed are keras, per_channel"),
    (dict(bn_free=None),
     "sweeps.yaml: bn_free = None: must be a mapping with keys fans, set"),
    (dict(lr_sedes={}),
     "sweeps.yaml: unknown key(s) lr_sedes: allowed are add_experiments, lr, lr_seeds, bn_free, "
     "trained_grid"),
    (dict(trained_grid__activations=["relu", "swish"]),
     "sweeps.yaml: trained_grid.activations has 'swish': allowed are relu6, relu, selu, "),
    (dict(trained_grid__seeds=[0, 0]),
     "sweeps.yaml: trained_grid.seeds = [0, 0]: must be a list of distinct integers >= 0"),
    (dict(add_experiments__lsuv={"initializer": "kaiming", "activation": "relu6"}),
     "sweeps.yaml: add_experiments.lsuv.initializer = 'kaiming': must be one of "),
    (dict(add_experiments__lsuv="lsuv"),
     "sweeps.yaml: add_experiments.lsuv = 'lsuv': must be a mapping with initializer, "
     "activation and optionally learning_rate"),
])
def test_a_bad_sweeps_file_is_refused_in_one_line_naming_the_value(change, message):
    with pytest.raises(StudyError) as e:
        parse_sweeps(sweeps(**change))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_the_sweeps_file_accepts_what_yaml_reads_as_a_string():
    parsed = parse_sweeps(sweeps(lr__learning_rates=["1e-3", 0.05], lr__set=None))
    assert parsed["lr"] == {"learning_rates": [0.001, 0.05], "set": {}}
    exp, overrides = plan(parsed, "lr")[0]
    assert exp == "lr-0p001" and overrides[0] == "train.learning_rate=0.001"


@pytest.mark.parametrize("set_,message", [
    ({"train.seeds": [0, 1.5]}, "train.seeds = [0, 1.5]: must be a list of distinct integers"),
    ({"train.seedz": [0]}, "train.seedz"),  # Hydra's own: no such key to override
])
def test_a_plan_that_would_queue_an_invalid_study_is_refused_before_queueing(set_, message):
    runs = plan(parse_sweeps(sweeps(lr__set=set_)), "lr")
    with pytest.raises(StudyError) as e:
        check_plan(runs, PARAMS)
    assert str(e.value).startswith("sweeps.yaml: lr-0p05 would not be a valid study: ")
    assert message in str(e.value)


def params(classes="ab", **train):
    return {"experiments": {c: {"initializer": "he_normal", "activation": "relu6"} for c in classes},
            "prepare": {"max_per_class": 600, "validation_per_class": 100},
            "train": {"seeds": [0], "epochs": 2, "batch_size": 64, "learning_rate": 0.05,
                      **train}}


def metrics(val, diverged=0, test=None, val_loss=2.3026):
    return {"val_accuracy": None if diverged else val, "test_accuracy": test, "diverged": diverged,
            "val_loss": val_loss,
            "seeds": 1, "test_accuracy_ci95_low": None, "test_accuracy_ci95_high": None}


TEN_CLASSES = (10, [1000] * 10)  # CIFAR-10's test split: (classes, test images per class)


def rows(lines):
    """experiment -> its table row's cells ("| a" first)."""
    return {line.split(" | ")[0][2:]: line.rstrip("| ").split(" | ") for line in lines
            if line.startswith("| ") and not line.startswith("| experiment")}


def test_bn_free_table_names_trains_stuck_and_diverged():
    found = {"bn-free-keras": (params(), {"metrics/a.json": metrics(0.1),
                                         "metrics/b.json": metrics(0.159)}),
             "bn-free-per-channel": (params(), {"metrics/a.json": metrics(None, diverged=1),
                                               "metrics/b.json": metrics(0.118, val_loss=126)})}
    table = rows(sweep_markdown("bn_free", found, TEN_CLASSES, {"a": 0.05, "b": 0.05}))
    # chance band for 1,000 validation images: 0.1 + 2.58 * sqrt(0.09 / 1000) = 0.1245
    a, b = " | ".join(table["a"]), " | ".join(table["b"])
    assert "stuck at chance (constant output)" in a and "diverged (1 of 1)" in a
    assert b.count("trains") == 1 and "stuck at chance (loss 126)" in b


def test_chance_and_constant_output_follow_the_datas_class_count():
    # 5 classes, 500 validation images: chance 0.2 + 2.58 * sqrt(0.16 / 500) = 0.246; a
    # constant output scores ln 5 = 1.609, not ln 10
    found = {"bn-free-keras": (params(), {"metrics/a.json": metrics(0.23, val_loss=1.6094),
                                         "metrics/b.json": metrics(0.25, val_loss=1.5)})}
    lines = sweep_markdown("bn_free", found, (5, [100] * 5), {"a": 0.05, "b": 0.05})
    assert "validation accuracy below 0.246 (1/5 plus" in lines[2]
    table = rows(lines)
    assert table["a"][1].endswith("stuck at chance (constant output)")
    assert table["b"][1].endswith("trains")


def test_lr_table_picks_each_experiments_best_rate_on_validation():
    # queued out of order (the study's rate first); the table's columns go by rate
    found = {f"lr-{r}": (params(learning_rate=r),
                         {"metrics/a.json": metrics(v, test=v), "metrics/b.json": metrics(w, test=w)})
             for r, v, w in [(0.05, 0.4, 0.25), (0.5, None, 0.1), (0.005, 0.2, 0.3)]}
    found["lr-0.5"][1]["metrics/a.json"] = metrics(None, diverged=1)
    lines = sweep_markdown("lr", found, TEN_CLASSES, {"a": 0.05, "b": 0.05})
    assert lines[4].endswith("| best lr (val) | test at best | test at lr 0.05 |")
    a, b = rows(lines)["a"], rows(lines)["b"]
    assert a[3] == "diverged" and a[4] == "0.05" and b[4] == "0.005"
    assert b[3] == "0.100 (chance)" and b[1] == "0.300"
    assert b[5].startswith("0.300") and b[6].startswith("0.250")  # best vs the study's rate
    # one seed: Wilson's interval for 0.3 of 6,000 test images (600 per class)
    assert b[5] == "0.300 [0.289, 0.312]"


def test_lr_table_measures_against_the_studys_own_rate_and_an_experiments_own_rate():
    """No rate is built in: the last column is the study's rate for each experiment, and an
    experiment with its own learning_rate trains at it in every column."""
    def run(r):
        p = params(learning_rate=r)
        p["experiments"]["b"] = {"initializer": "he_normal", "activation": "relu6", "learning_rate": 0.5}
        return (p, {"metrics/a.json": metrics(0.2 + r, test=0.2 + r),
                    "metrics/b.json": metrics(0.3, test=0.3)})

    found = {f"lr-{r}": run(r) for r in (0.1, 0.01)}
    lines = sweep_markdown("lr", found, TEN_CLASSES, {"a": 0.01, "b": 0.5})
    assert lines[4].endswith("| test at the study's lr |")
    a, b = rows(lines)["a"], rows(lines)["b"]
    assert a[3] == "0.1" and a[5].startswith("0.210")  # the study trains a at 0.01
    assert b[3] == "0.5" and b[5].startswith("0.300")  # b's own rate, whatever train's


def test_the_tables_take_the_class_count_from_the_prepared_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StudyError, match="data/prepared/manifest.json is missing"):
        prepared_data()
    os.makedirs("data/prepared")
    manifest = {"classes": ["cat", "dog", "fox"],
                "splits": {"test": {"count": 150, "per_class": {"cat": 50, "dog": 50, "fox": 50}}}}
    with open("data/prepared/manifest.json", "w") as f:
        json.dump({"splits": manifest["splits"]}, f)
    with pytest.raises(StudyError, match="has no classes or test counts: re-run prepare"):
        prepared_data()
    with open("data/prepared/manifest.json", "w") as f:
        json.dump(manifest, f)
    assert prepared_data() == (3, [50, 50, 50])


def docs():
    """The README and whatever docs/ it is split into."""
    paths = [os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "**", "*.md"),
                                                         recursive=True)]
    return "".join(open(p).read() for p in paths if os.path.exists(p))


def test_bad_usage_and_a_bad_sweeps_file_are_one_line(tmp_path):
    run = stage(ROOT, "tools.sweep", "queue", "everything", check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1 and "everything" in run.stderr
    usage = run.stderr.strip()
    (tmp_path / "sweeps.yaml").write_text(yaml.safe_dump(sweeps(lr__learning_rates="x")))
    run = stage(tmp_path, "tools.sweep", "queue", "lr", check=False, PYTHONPATH=ROOT)
    assert run.returncode == 2 and run.stderr == (
        "error: sweeps.yaml: lr.learning_rates = 'x': must be a non-empty list of distinct "
        "numbers > 0\n")
    assert f"`{usage}`" in docs()  # the failure table quotes it


def test_the_seed_plan_quotes_each_experiments_own_report(tmp_path, monkeypatch):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.md").write_text(
        "# R\n\n## Which differences are real\n\nF(5, 12) = 1.0\n\n## Next\nother\n")
    sh("git init -q", tmp_path)
    commit(tmp_path, "exp")
    sh("git update-ref refs/exps/ab/cdef/lr-0p016-seeds HEAD", tmp_path)  # how DVC stores one
    monkeypatch.chdir(tmp_path)
    assert report_section("lr-0p016-seeds", "## Which differences are real") == ["F(5, 12) = 1.0"]
    with pytest.raises(StudyError, match="lr-0p5-seeds"):
        report_section("lr-0p5-seeds", "## Which differences are real")


def grid_study(tmp_path, overrides):
    """The study `dvc exp run -S` would make of params.yaml with `overrides`."""
    path = tmp_path / "params.yaml"
    shutil.copy(PARAMS, path)
    apply_overrides(str(path), overrides)
    return load_study(str(path))


def test_the_trained_grid_queues_every_cell_at_each_rate(tmp_path):
    parsed = load_sweeps(SWEEPS)
    grid = parsed["trained_grid"]
    cells = {f"{a}-{i}" for a in grid["activations"] for i in grid["initializers"]}
    assert len(cells) == 30  # five activations x six initializers
    search = plan(parsed, "trained_grid")
    check_plan(search, PARAMS)
    assert [exp for exp, _ in search] == [f"grid-lr-{r:g}".replace(".", "p")
                                          for r in grid["learning_rates"]]
    for (exp, overrides), rate in zip(search, grid["learning_rates"]):
        study = grid_study(tmp_path, overrides)
        assert set(study.experiments) == cells  # the study's own four are removed
        assert all(e.learning_rate == rate for e in study.experiments.values())
        assert study.train.seeds == (0,) and study.model.batch_norm is False
        assert study.model.residual_scale == "skipinit"
        assert study.experiments["tanh-lsuv"].initializer == "lsuv"


def test_each_cells_best_rate_is_its_best_validation_and_chance_gets_no_seeds():
    search = {"a": {0.01: metrics(0.30), 0.1: metrics(0.45), 1.0: metrics(None, diverged=1)},
              "b": {0.01: metrics(0.105), 0.1: metrics(0.11)},
              "c": {0.01: metrics(None, diverged=1)},
              "d": {}}
    best, left_out = best_rates(search, band=0.124)
    assert best == {"a": 0.1}
    assert left_out == {"b": "stuck at chance at every rate (best val 0.110)",
                        "c": "diverged at every rate", "d": "not run"}


def test_the_step0_rank_correlation_has_an_interval_around_it():
    drift = [0.1, 0.5, 0.9, 1.5, 2.0, 4.0]
    assert spearman_interval(drift[:3], [0.5, 0.4, 0.3]) is None  # too few cells
    perfect = spearman_interval(drift, [0.6, 0.55, 0.5, 0.3, 0.2, 0.1])
    assert perfect["rho"] == pytest.approx(-1) and perfect["ci_high"] < -0.9
    mixed = spearman_interval(drift, [0.3, 0.6, 0.1, 0.5, 0.2, 0.4])
    assert mixed["ci_low"] < mixed["rho"] < mixed["ci_high"]
    assert mixed["ci_low"] < 0 < mixed["ci_high"]  # six cells in no order decide nothing


def test_queueing_again_skips_the_experiments_dvcs_queue_already_holds():
    table = """Task     Name           Created    Status
9acfd2f  grid-lr-0p003  06:57 PM   Running
41f4dca  grid-lr-0p03   06:57 PM   Queued
d9bb771  grid-lr-0p1    06:57 PM   Failed
7c1d2e3  grid-lr-0p01   06:57 PM   Success

Worker status: 2 active, 0 idle
"""
    assert waiting(table) == {"grid-lr-0p003", "grid-lr-0p03"}  # failed ones queue again
