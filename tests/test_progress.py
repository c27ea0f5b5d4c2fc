"""What a person sees while a train stage runs (progress.py), and what the main job's time
went to (training.phases, runner.log_stage_times, bench/overhead.py)."""
import io
import re
import subprocess
import sys
import threading

import pytest

from bench.overhead import last_repro, overhead
from initstudy import parallel, progress
from initstudy.progress import MARK, PROGRESS, StatusLine, progress_text


def test_progress_text_says_steps_speed_and_time_left():
    # 300 of 704 steps of epoch 1 of 2 in 80 s at batch 64: 240 images/s, and 404 + 704
    # steps of 64 images left at that speed: 295 s
    assert progress_text(0, 2, 300, 704, 64, 80.0) == \
        "epoch 1/2, step 300/704, 240 images/s, 4:55 left"
    assert progress_text(1, 2, 704, 704, 64, 100.0).endswith("0:00 left")


def screen(written):
    """What a terminal shows after `written`: \\r returns to the line's start, ESC[K clears."""
    lines, current = [], ""
    for part in re.split(r"(\r|\n|\x1b\[K)", written):
        if part == "\n":
            lines.append(current)
            current = ""
        elif part in ("\r", "\x1b[K"):
            current = "" if part == "\x1b[K" else current
        else:
            current += part
    return lines, current


def test_runs_lines_pass_through_and_their_progress_is_one_status_line():
    out = io.StringIO()
    status = StatusLine(out)
    status.line("[seed 0] ", "Epoch 1/2\n")
    status.line("[seed 0] ", MARK + "epoch 1/2, step 10/704\n")
    status.line("[seed 1] ", MARK + "epoch 1/2, step 12/704\n")
    status.line("[seed 1] ", "Epoch 1/2\n")
    status.line("[seed 0] ", MARK + "epoch 1/2, step 20/704\n")
    lines, last = screen(out.getvalue())
    assert lines == ["[seed 0] Epoch 1/2", "[seed 1] Epoch 1/2"]  # no progress among them
    assert last == "[seed 0] epoch 1/2, step 20/704 | [seed 1] epoch 1/2, step 12/704"
    status.done("[seed 0] ")
    status.done("[seed 1] ")
    assert screen(out.getvalue())[1] == ""  # the status line is gone with the runs


def test_without_a_terminal_the_runs_report_no_progress(monkeypatch):
    monkeypatch.setenv(PROGRESS, "relay")  # left over in the caller's environment
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # CI, a log file: no terminal
    env = parallel.run_environment()
    assert PROGRESS not in env and env["PYTHONUNBUFFERED"] == "1"
    monkeypatch.delenv(PROGRESS)
    assert progress.progress_callback(2, 704, 64) is None

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    assert parallel.run_environment()[PROGRESS] == "relay"
    assert progress.progress_callback(2, 704, 64) is not None


def test_the_relay_keeps_a_runs_last_real_line_for_its_error():
    child = subprocess.Popen(
        [sys.executable, "-c", f"print('error: bad value'); print({MARK + 'step 3'!r})"],
        stdout=subprocess.PIPE, text=True)
    out, last = io.StringIO(), [""]
    thread = threading.Thread(target=parallel.relay_output, args=(child, "[seed 0] ", last,
                                                             StatusLine(out)))
    thread.start()
    thread.join(30)
    child.wait()
    assert last[0] == "error: bad value"
    assert screen(out.getvalue()) == (["[seed 0] error: bad value"], "")


def record(stage, start, end):
    return {"stage": stage, "start": start, "end": end, "seconds": end - start}


def test_the_overhead_ratio_is_the_last_repros_wall_over_its_images_at_bench_speed():
    stages = [record("train@old", 0, 100),  # an earlier repro, an hour before
              record("prepare", 4000, 4030), record("train@a", 4031, 4631),
              record("train@b", 4632, 5232), record("evaluate@a", 5233, 5263),
              record("report", 5264, 5300)]
    assert [r["stage"] for r in last_repro(stages)] == ["prepare", "train@a", "train@b",
                                                         "evaluate@a", "report"]
    phases = {"wall": 590.0, "training": 500.0, "scoring": 60.0, "other": 30.0}
    runs = [{"images_trained": 90000, "mtime": 4600, "phases": phases,
             "epoch_seconds": [260.0, 250.0]},
            {"images_trained": 90000, "mtime": 5200, "phases": phases,
             "epoch_seconds": [250.0, 250.0]},
            {"images_trained": 90000, "mtime": 50, "phases": phases,  # the earlier repro's
             "epoch_seconds": [250.0, 250.0]}]
    result = overhead(stages, runs, best_images_per_second=360.0)
    assert result["images_trained"] == 180000 and result["runs"] == 2
    assert result["wall_seconds"] == 1300
    assert result["overhead_ratio"] == pytest.approx(1300 / 500)
    assert result["train_stage_over_bench"] == pytest.approx(180000 / 1200 / 360)
    assert result["run_phases_seconds"]["scoring"] == 120.0
    assert result["first_over_second_epoch"] == [pytest.approx(1.04), 1.0]
