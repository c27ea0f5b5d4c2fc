"""The code's layout rules that a reader relies on: a module's underscore names are its own."""
import ast
import os

from conftest import ROOT

PACKAGES = ("initstudy", "stages", "tools", "bench", "tests")


def python_files():
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            yield from (os.path.join(folder, f) for f in sorted(files) if f.endswith(".py"))


def private_uses(path):
    """(line, what) for each use in `path` of another project module's underscore name: a
    `from initstudy.x import _y` or an `x._y` on a module imported as `x`."""
    tree = ast.parse(open(path).read(), path)
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
            for alias in node.names:
                if alias.name.startswith("_"):
                    yield node.lineno, f"from {node.module} import {alias.name}"
                else:  # `from initstudy import device` imports a module too
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names
                           if a.name.split(".")[0] in PACKAGES)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__") and ast.unparse(node.value) in modules):
            yield node.lineno, ast.unparse(node)


def test_no_module_uses_another_modules_underscore_names():
    found = [f"{os.path.relpath(path, ROOT)}:{line}: {what}"
             for path in python_files() for line, what in private_uses(path)]
    assert not found, "\n".join(found)


def test_the_check_finds_a_private_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from initstudy.config import _int\nfrom initstudy import device\n"
                      "device._held_lock\n")
    assert [what for _, what in private_uses(str(sample))] == [
        "from initstudy.config import _int", "device._held_lock"]
