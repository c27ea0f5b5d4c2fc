"""`dvc plots show/diff` pages render offline: vega is inlined by .dvc/plots/offline.html.
Checked in a real headless browser (Debian's chromium-headless-shell; .ci/run installs it)."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import ROOT, sh

BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")
PLOTS = """plots:
  - Test accuracy per epoch:
      template: .dvc/plots/by_experiment.json
      x: epoch
      y:
        report/history.json: val_accuracy
  - confusion:
      template: confusion
      x: actual
      y: predicted
      y:
        eval/predictions.csv: predicted
"""


def browse(page, tmp_path, *extra):
    """Loads a page offline (no proxy reachable, no network here) and returns what the
    browser printed and the DOM after scripts ran."""
    start = time.perf_counter()
    run = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                          "--proxy-server=127.0.0.1:9", "--enable-logging=stderr", "--v=0",
                          f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=5000", "--window-size=1400,2400", *extra,
                          f"file://{page}"], capture_output=True, text=True, timeout=60)
    return run, time.perf_counter() - start


@pytest.mark.skipif(BROWSER is None and not os.environ.get("CI"),
                    reason="no headless chromium here (apt-get install chromium-headless-shell)")
def test_offline_plots_page_renders_every_plot(tmp_path):
    assert BROWSER, "CI must install chromium-headless-shell (.ci/run)"
    repo = tmp_path / "study"
    shutil.copytree(os.path.join(ROOT, ".dvc", "plots"), repo / ".dvc" / "plots")
    shutil.copy(os.path.join(ROOT, ".dvc", "config"), repo / ".dvc" / "config")
    (repo / "dvc.yaml").write_text(PLOTS.replace("      y: predicted\n", ""))
    (repo / "report").mkdir()
    history = [{"experiment": e, "epoch": k, "val_accuracy": 0.1 * k + i / 50}
               for i, e in enumerate(["he_normal", "glorot_normal"]) for k in (1, 2, 3)]
    (repo / "report" / "history.json").write_text(json.dumps(history))
    (repo / "eval").mkdir()
    (repo / "eval" / "predictions.csv").write_text(
        "actual,predicted\n" + "".join(f"{a},{p}\n" for a, p in
                                       [("cat", "cat"), ("cat", "dog"), ("dog", "dog")]))
    sh("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm plots", repo)
    (repo / "report" / "history.json").write_text(json.dumps(
        [{**h, "val_accuracy": h["val_accuracy"] + 0.05} for h in history]))
    sh("dvc plots diff HEAD -o plots_out", repo)
    page = repo / "plots_out" / "index.html"
    html = page.read_text()
    assert not re.search(r"<script[^>]+src=", html)  # nothing loaded from elsewhere
    plots = len(re.findall(r"vegaEmbed\(", html))
    assert plots == 2

    run, _ = browse(page, tmp_path, "--dump-dom")
    dom = run.stdout
    assert dom.count("<svg") + dom.count("<canvas") >= plots, dom[-2000:]
    errors = [line for line in run.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert not errors, errors
    assert '"rev": "HEAD"' in html and '"rev": "workspace"' in html  # both revisions drawn

    shot = tmp_path / "plots.png"
    _, seconds = browse(page, tmp_path, f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000 and seconds < 10
    shutil.copy(shot, os.environ.get("PLOTS_SCREENSHOT", os.devnull))  # to look at it
