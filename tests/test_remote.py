"""Sharing through a DVC remote (docs/sharing.md): push after each run, and a fresh clone
pulls an older commit's models and prepared data, as its dvc.lock records them."""
import hashlib
import json
import os

import pytest
import yaml

from conftest import commit, sh, write_params

def md5(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def cached_outs(repo):
    """Every DVC-cached output `repo`'s dvc.lock records: path -> its entry (md5, size, nfiles);
    not the `cache: false` ones, which git tracks."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    tracked = set(sh("git ls-files", repo).split())
    return {out["path"]: out for stage in lock["stages"].values() for out in stage.get("outs", [])
            if not any(f == out["path"] or f.startswith(out["path"] + "/") for f in tracked)}


def assert_restored(repo, out):
    """`out` (a dvc.lock entry) is in `repo` exactly: each file with the md5 that the folder's
    .dir listing in the cache gives, and the folder with the size and file count dvc.lock gives."""
    path = repo / out["path"]
    if not out["md5"].endswith(".dir"):
        assert md5(path) == out["md5"] and path.stat().st_size == out["size"], out
        return
    h = out["md5"]  # the folder's listing (relpath, md5 of each file), itself pulled
    listing = json.loads((repo / ".dvc" / "cache" / "files" / "md5" / h[:2] / h[2:]).read_text())
    files = {os.path.relpath(os.path.join(d, f), path)
             for d, _, names in os.walk(path) for f in names}
    assert files == {e["relpath"] for e in listing}, out["path"]
    for entry in listing:
        assert md5(path / entry["relpath"]) == entry["md5"], (out["path"], entry["relpath"])
    assert len(files) == out["nfiles"], out
    assert sum((path / f).stat().st_size for f in files) == out["size"], out


@pytest.mark.slow
def test_a_clone_pulls_an_older_commits_models_and_data(tmp_path, tiny_study):
    repo, remote, clone = tiny_study, tmp_path / "remote", tmp_path / "clone"
    remote.mkdir()
    sh(f"dvc remote add -d shared {remote}", repo)
    commit(repo, "sharing through a DVC remote")
    sh("dvc push", repo)
    older = sh("git rev-parse HEAD", repo).strip()
    older_outs = cached_outs(repo)

    # one experiment's rate changed: only its training and what follows re-run
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["experiments"]["he_normal"]["learning_rate"] = 0.2
    write_params(repo, params)
    sh("dvc repro", repo)
    commit(repo, "learning rate 0.2")
    sh("dvc push", repo)
    newer_outs = cached_outs(repo)

    models = os.path.join("models", "he_normal")
    prepared = os.path.join("data", "prepared")
    assert {models, prepared} <= set(older_outs)
    assert not any(p.startswith(("metrics", "report")) for p in older_outs)  # git's part
    assert older_outs[models]["md5"] != newer_outs[models]["md5"]  # the older models differ

    # another teammate: a clone, the older commit, its outputs from the remote alone
    sh(f"git clone -q {repo} {clone}", tmp_path)
    assert not (clone / models).exists() and not (clone / prepared).exists()
    sh(f"git checkout -q {older}", clone)
    sh("dvc pull", clone)
    assert (clone / models / "seed0" / "model.keras").stat().st_size > 0
    for out in older_outs.values():
        assert_restored(clone, out)
    assert "up to date" in sh("dvc status", clone)  # nothing to re-run at the older commit

    # and back to the newest commit: its outputs were pushed too
    sh("git checkout -q - && dvc pull", clone)
    for out in newer_outs.values():
        assert_restored(clone, out)
