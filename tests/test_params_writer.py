"""params.yaml through DVC's own writer (`dvc exp run -S`: dvc.utils.hydra.apply_overrides,
ruamel's round trip): every list param emptied, shortened or lengthened leaves a valid file
with every comment kept; a failed run's overrides, left in params.yaml, are refused by the
queueing tools; an empty experiments map stops whichever stage DVC still runs."""
import difflib
import os
import re
import shutil

import pytest
import yaml

from conftest import ROOT, build_study, commit, listing, sh, shell, stage
from initstudy.config import load_study
from initstudy.errors import StudyError
from tools.dvc import changed_params, require_params_at_head
from tools.plans import check_plan, hydra

PARAMS = os.path.join(ROOT, "params.yaml")


def list_params(node, prefix=""):
    """(dotted key, list) for every list in params.yaml, found by walking it."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from list_params(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        yield prefix[:-1], node


def longer(values):
    """`values` and one more value of their kind, not among them."""
    if all(isinstance(v, bool) for v in values):
        extra = not values[-1]
    elif all(isinstance(v, int) for v in values):
        extra = max(values) + 1
    else:
        extra = f"{values[-1]}_more"
    return [*values, extra] if extra not in values else [*values, *values]


def cases():
    lists = list(list_params(yaml.safe_load(open(PARAMS))))
    for key, values in lists:
        yield pytest.param(key, "emptied", [], id=f"{key}-emptied")
        if len(values) > 1:  # a one-item list shortened is the emptied one
            yield pytest.param(key, "shortened", values[:1], id=f"{key}-shortened")
        yield pytest.param(key, "lengthened", longer(values), id=f"{key}-lengthened")


def comments(text):
    """Every comment of a YAML text (from its first ` #`), in order."""
    return [m.group(1) for line in text.splitlines()
            if (m := re.search(r"(?:^|\s)(#.*)$", line))]


def with_value(params, key, value):
    *path, last = key.split(".")
    node = params
    for part in path:
        node = node[part]
    node[last] = value
    return params


def written(tmp_path, *overrides):
    """params.yaml's text after DVC's own -S code applied `overrides` to a copy."""
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    shutil.copy(PARAMS, path)
    apply_overrides(str(path), list(overrides))
    return path.read_text()


def test_the_walk_finds_the_studys_lists():
    """The parametrisation below is not empty: params.yaml's lists, as config.py reads them."""
    keys = [key for key, _ in list_params(yaml.safe_load(open(PARAMS)))]
    assert {"train.seeds", "grid.init_seeds", "grid.activations", "grid.initializers",
            "grid.batch_norm", "grid.depthwise_fan"} <= set(keys)


@pytest.mark.parametrize("key,change,value", list(cases()))
def test_every_list_param_through_dvcs_writer_keeps_the_file_whole(tmp_path, key, change, value):
    before = open(PARAMS).read()
    after = written(tmp_path, f"{key}={hydra(value)}")
    # the file parses (DVC's writer once merged the next key into `experiments: random_normal:`
    # after an emptied `seeds:  # comment`), the list is the override, every other value as it was
    assert yaml.safe_load(after) == with_value(yaml.safe_load(before), key, value)
    assert comments(after) == comments(before)  # every comment, in its order
    name = key.rsplit(".", 1)[1]
    changed = [line[1:] for line in difflib.unified_diff(before.splitlines(),
                                                         after.splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed and all(re.fullmatch(rf"\s*(- \S+|{name}:( \[\])?)", line)
                           for line in changed), changed  # the list's own lines only
    path = str(tmp_path / "params.yaml")
    if change == "emptied":  # the project's own one line, not DVC's "structure is corrupted"
        with pytest.raises(StudyError) as error:
            load_study(path)
        message = str(error.value)
        assert message.startswith(f"{key} = []: must be ") and "\n" not in message
        if key == "train.seeds":
            assert message == "train.seeds = []: must be a list of distinct integers >= 0"
    elif change == "shortened":  # still a valid study, with the shorter list
        study = load_study(path)
        assert list(getattr(getattr(study, key.split(".")[0]), name)) == value


def test_adding_and_removing_experiments_as_params_yaml_says_keeps_every_comment(tmp_path):
    text = open(PARAMS).read()
    documented = dict(re.findall(r"#\s+(add|remove):\s+dvc exp run -S '([^']+)'", text))
    assert set(documented) == {"add", "remove"}
    added = written(tmp_path, documented["add"])
    assert comments(added) == comments(text)
    new = documented["add"].lstrip("+").split("=")[0].split(".")[1]
    assert new in yaml.safe_load(added)["experiments"]
    assert documented["remove"] == f"~experiments.{new}"
    again = written(tmp_path, documented["add"], documented["remove"])
    assert yaml.safe_load(again) == yaml.safe_load(text) and comments(again) == comments(text)
    for name in yaml.safe_load(text)["experiments"]:  # the last one holds no section's comment
        removed = written(tmp_path, f"~experiments.{name}")
        assert comments(removed) == comments(without_experiment(text, name)), name


def without_experiment(text, name):
    """params.yaml's text without experiment `name`'s own lines (its comments go with it)."""
    lines = text.splitlines()
    start = lines.index(f"  {name}:")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    "))
    return "\n".join(lines[:start] + lines[end:])


def test_changed_params_names_each_changed_key_once():
    head = {"prepare": {"folder": "a", "max_per_class": None}, "train": {"seeds": [0, 1],
            "epochs": 2, "batch_norm": True}, "experiments": {"a": {"x": 1}, "b": {"x": 2}}}
    work = {"prepare": {"folder": "/nonexistent", "max_per_class": None},
            "train": {"seeds": [0], "epochs": 2.0, "batch_norm": 1},
            "experiments": {"a": {"x": 1}, "c": {"x": 3}}}
    assert changed_params(head, work) == ["prepare.folder", "train.seeds", "train.epochs",
                                          "train.batch_norm", "experiments.b", "experiments.c"]
    assert changed_params(head, yaml.safe_load(yaml.safe_dump(head))) == []
    assert changed_params(head, None) == ["(the whole file)"]


def git_repo(repo):
    """A git repository holding the checkout's params.yaml and sweeps.yaml, committed."""
    repo.mkdir()
    for name in ("params.yaml", "sweeps.yaml"):
        shutil.copy(os.path.join(ROOT, name), repo / name)
    sh("git init -q", repo)
    commit(repo, "study")
    return repo


def tracked(repo):
    """Every file git tracks and every ref, with its bytes: what a refusal must not change."""
    files = sh("git ls-files", repo).split()
    refs = sh("git for-each-ref --format='%(refname) %(objectname)'", repo)
    return {f: (repo / f).read_bytes() for f in files}, refs, sh("git stash list", repo)


def test_a_params_yaml_that_differs_from_head_is_refused_before_queueing(tmp_path,
                                                                         monkeypatch):
    repo = git_repo(tmp_path / "study")
    (repo / "params.yaml").write_text(written(tmp_path, "prepare.folder=/nonexistent",
                                              "train.seeds=[]"))
    before = tracked(repo)
    for tool in (["tools.sweep", "queue", "lr"], ["tools.queue", "1"]):
        run = stage(repo, *tool, check=False, timeout=120, PYTHONPATH=ROOT)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.startswith("error: params.yaml differs from HEAD in prepare.folder, "
                                     "train.seeds: "), run.stderr
        assert "`git show HEAD:params.yaml > params.yaml`" in run.stderr
        assert "queued" not in run.stdout  # nothing was queued
        assert tracked(repo) == before  # byte for byte, refs and stash included
    # a comment edit is no change of value; HEAD's values pass
    monkeypatch.chdir(repo)
    sh("git show HEAD:params.yaml > params.yaml", repo)
    (repo / "params.yaml").write_text(open(repo / "params.yaml").read() + "# a note\n")
    require_params_at_head("x")
    (repo / "params.yaml").write_text(written(tmp_path, "train.epochs=3"))
    with pytest.raises(StudyError, match=r"^params.yaml differs from HEAD in train.epochs: x;"):
        require_params_at_head("x")


def test_a_plan_that_would_empty_a_mapping_with_braces_is_refused(tmp_path):
    """`-S 'experiments={}'` is merged into the mapping (Hydra), so it changes nothing and DVC
    skips every stage: a plan saying so is refused before anything is queued."""
    assert yaml.safe_load(written(tmp_path, "experiments={}")) == yaml.safe_load(open(PARAMS))
    with pytest.raises(StudyError) as error:
        check_plan([("lr-0p05", ["train.learning_rate=0.05", "experiments={}"])], PARAMS)
    assert str(error.value) == (
        "sweeps.yaml: lr-0p05: -S experiments={} would change nothing: DVC merges a mapping "
        "into experiments, it does not empty it; remove each entry with ~experiments.NAME")
    check_plan([("lr-0p05", ["train.learning_rate=0.05", "+experiments.x={initializer: "
                             "he_normal, activation: relu}"])], PARAMS)


def dvc_repo(repo):
    build_study(repo, "tiny")
    sh("git init -q", repo)
    commit(repo, "study")
    return repo


@pytest.mark.slow
def test_an_emptied_seeds_list_through_dvc_exp_run_is_the_projects_one_line(tmp_path):
    repo = dvc_repo(tmp_path / "study")
    run = shell("dvc exp run -S 'train.seeds=[]'", repo, check=False, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "corrupted" not in out and "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert errors == ["error: train.seeds = []: must be a list of distinct integers >= 0"], out
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["seeds"] == []


@pytest.mark.slow
def test_a_failed_exp_runs_override_is_refused_by_the_queueing_tools(tmp_path):
    repo = dvc_repo(tmp_path / "study")
    head = (repo / "params.yaml").read_bytes()
    failed = shell("dvc exp run -S prepare.folder=/nonexistent", repo, check=False, timeout=600)
    assert failed.returncode != 0, failed.stdout
    # DVC leaves the override in params.yaml (and git's index may not show it)
    assert yaml.safe_load((repo / "params.yaml").read_text())["prepare"]["folder"] == \
        "/nonexistent"
    before = tracked(repo)
    for tool in (["tools.sweep", "queue", "lr"], ["tools.queue", "1"]):
        run = stage(repo, *tool, check=False, timeout=300)
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.startswith("error: params.yaml differs from HEAD in prepare.folder: ")
        assert tracked(repo) == before  # refs included: nothing was queued
    sh("git show HEAD:params.yaml > params.yaml", repo)  # the restore the line names
    assert (repo / "params.yaml").read_bytes() == head


@pytest.mark.slow
def test_an_empty_experiments_map_stops_every_stage_dvc_still_runs(tmp_path):
    """DVC resolves a foreach over {} to no stages: step0, train and evaluate vanish, prepare,
    grid and report stay, and each stops with the project's one line before any work."""
    repo = dvc_repo(tmp_path / "study")
    names = list(yaml.safe_load((repo / "params.yaml").read_text())["experiments"])
    from dvc.utils.hydra import apply_overrides

    apply_overrides(str(repo / "params.yaml"), [f"~experiments.{n}" for n in names])
    assert yaml.safe_load((repo / "params.yaml").read_text())["experiments"] == {}
    left = sorted(sh("dvc stage list --name-only", repo).split())
    assert left == ["grid", "prepare", "report"]
    before = listing(repo)
    for name in left:
        run = stage(repo, f"stages.{name}", check=False, timeout=300)
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.startswith("error: experiments = {}: must be a mapping of experiment "
                                     "names"), run.stderr
    assert [f for f in listing(repo) if not f.startswith(".git/")] == \
        [f for f in before if not f.startswith(".git/")]
