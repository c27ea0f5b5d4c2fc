"""Scale-out with DVC's own machinery: two workers each run part of a grid and `dvc exp push`
to a shared git remote (results) and a shared DVC remote (models); a collector pulls both,
compares them and restores one's model."""
import json

import pytest

from conftest import build_study, commit, sh

HE = {"he_normal": {"initializer": "he_normal", "activation": "relu6"}}


@pytest.mark.slow
def test_two_workers_push_and_a_collector_pulls_compares_and_restores(tmp_path, mini_archive):
    origin, storage = tmp_path / "origin.git", tmp_path / "dvc-storage"
    sh(f"git init -q --bare -b main {origin}", tmp_path)
    base = tmp_path / "base"
    build_study(base, "tiny", mini_archive, experiments=HE)
    sh(f"git init -q -b main && dvc remote add -d shared {storage} && git remote add origin {origin}",
       base)
    commit(base, "study")
    sh("git push -q origin main", base)

    for worker, activation in (("a", "relu"), ("b", "selu")):
        clone = tmp_path / f"worker-{worker}"
        sh(f"git clone -q {origin} {clone}", tmp_path)
        sh(f"dvc exp run -n grid-{worker} -S experiments.he_normal.activation={activation}", clone)
        sh(f"dvc exp push origin grid-{worker}", clone)  # git refs to origin, models to storage

    collector = tmp_path / "collector"
    sh(f"git clone -q {origin} {collector}", tmp_path)
    sh("dvc exp pull --no-cache origin grid-a && dvc exp pull --no-cache origin grid-b", collector)
    shown = json.loads(sh("dvc exp show --json", collector))
    runs = {rev["name"]: rev["data"] for row in shown for exp in (row.get("experiments") or [])
            for rev in exp.get("revs", [])}
    assert {"grid-a", "grid-b"} <= runs.keys(), shown
    for name, activation in (("grid-a", "relu"), ("grid-b", "selu")):
        params = runs[name]["params"]["params.yaml"]["data"]
        assert params["experiments"]["he_normal"]["activation"] == activation
        assert 0 <= runs[name]["metrics"]["metrics/he_normal.json"]["data"]["test_accuracy"] <= 1

    # exp apply sets grid-b's params and results; its checkout of models fails, since --no-cache
    # pulled none, and `dvc pull` then brings them from the shared DVC remote
    sh("dvc exp apply grid-b; dvc pull -q", collector)
    assert "activation: selu" in (collector / "params.yaml").read_text()
    assert (collector / "models" / "he_normal" / "seed0" / "model.keras").stat().st_size > 1e6
    history = json.loads((collector / "models" / "he_normal" / "seed0" / "history.json").read_text())
    assert history["activation"] == "selu"
