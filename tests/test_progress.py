"""What a run prints: whole progress lines naming their job when jobs run side by side off a
terminal, bars on separate lines on one, a study-level line after each finished job, and no
third-party noise."""

import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios

from workflow_helpers import ROOT

from tunebench import progress

# A tuning job's progress line off a terminal, whole: its job, step, loss and rate.
LINE = re.compile(r"\[tunebench\] tune tiny/(lora|last)/big_count seed 0: (\d+)/60 steps \(\d+%\), "
                  r"loss \d+\.?\d*, samples/s \d+\.?\d*, \d+\.?\d* steps/s, (ETA|in) \d+ (s|min \d+ s)")


def test_two_jobs_side_by_side_print_whole_lines_that_name_their_job(parallel_tuning):
    _, output, _ = parallel_tuning
    assert "\r" not in output  # no carriage-return bars off a terminal
    lines = output.splitlines()
    # Every line holding tunebench's text holds one job's, from its start: no line holds two jobs'
    # text, or a job's and Snakemake's.
    assert all(line.startswith("[tunebench]") and line.count("[tunebench]") == 1 for line in lines if "[tunebench]" in line)
    assert not [line for line in lines if "[tunebench]" in line and "tiny/lora" in line and "tiny/last" in line]
    steps = {"lora": [], "last": []}
    where = {"lora": [], "last": []}
    for i, line in enumerate(lines):
        if "steps/s" in line:
            found = LINE.fullmatch(line)
            assert found, line
            steps[found[1]].append(int(found[2]))
            where[found[1]].append(i)
    assert steps == {"lora": list(range(1, 61)), "last": list(range(1, 61))}  # a line at every 1%: every step
    # The two jobs really ran at once: their lines interleave.
    assert where["lora"][0] < where["last"][-1] and where["last"][0] < where["lora"][-1]


def test_after_each_finished_job_a_study_line_counts_the_jobs_and_gives_an_eta(study):
    workdir, _ = study
    lines = (workdir / "run.log").read_text().splitlines()
    finished = [(i, int(m[1]), int(m[2])) for i, line in enumerate(lines)
                if (m := re.fullmatch(r"(\d+) of (\d+) steps \(\d+%\) done", line))]
    assert finished and finished[-1][1] == finished[-1][2]
    for i, done, total in finished:
        line = lines[i + 1]
        assert line.startswith(f"[tunebench] study small: {done}/{total} jobs done"), line
        if done < total:
            assert re.search(r", \d+ running, .* so far, ETA \d+", line), line
        else:
            assert re.fullmatch(rf"\[tunebench\] study small: {total}/{total} jobs done in \d+.*", line), line


def test_third_party_noise_is_silenced_at_the_source(study):
    workdir, results = study
    log = (workdir / "run.log").read_text()
    noise = ["Loading weights", "Writing model shards", "it/s]", "is_gradient_checkpointing", "PTBTokenizer tokenized"]
    assert [n for n in noise if n in log] == [] and "\r" not in log
    # Where java is, PTBTokenizer ran, silently: CIDEr's captions were tokenised by it.
    scores = json.loads((results / "scores" / "tiny" / "zeroshot" / "shapes_caption" / "seed0.json").read_text())
    assert scores["shapes_caption"]["tokenizer"] == ("ptb-java" if shutil.which("java") else "ptb-python")


def test_known_warnings_are_dropped_and_others_still_show(tmp_path):
    # In a process of its own, as a job runs: pytest records the warnings of its tests instead.
    log = tmp_path / "job.log"
    job = ("import warnings\nfrom tunebench import progress\n"
           f"with progress.logged({str(log)!r}):\n"
           "    warnings.warn('`is_gradient_checkpointing` is deprecated and will be removed in v6.', FutureWarning)\n"
           "    warnings.warn('this one matters', UserWarning)\n")
    done = subprocess.run([sys.executable, "-c", job], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "this one matters" in done.stderr and "this one matters" in log.read_text()
    assert "is_gradient_checkpointing" not in done.stderr + log.read_text()


def test_a_subprocess_s_known_noise_is_dropped_and_the_rest_kept(capfd):
    script = ("import sys; print('PTBTokenizer tokenized 671 tokens at 9853.45 tokens per second.', file=sys.stderr); "
              "print('Error: java ran out of memory', file=sys.stderr)")
    with progress.dropping_lines(re.compile(r"^PTBTokenizer tokenized")):
        subprocess.run([sys.executable, "-c", script], check=True)
    err = capfd.readouterr().err
    assert "Error: java ran out of memory" in err and "PTBTokenizer" not in err


def test_off_a_terminal_a_line_every_n_percent_then_one_at_the_end(tmp_path, capsys):
    with progress.logged(tmp_path / "job.log", {"percent": 25, "seconds": 3600}):
        with progress.Progress("predict tiny/lora/big_count seed 0 on shapes_vqa", 10, "answer") as bar:
            for _ in range(10):
                bar.update(1)
    lines = (tmp_path / "job.log").read_text().splitlines()
    assert [re.match(r".*: (\d+)/10 answers", line)[1] for line in lines] == ["3", "5", "8", "10"]
    assert lines[-1].startswith("[tunebench] predict tiny/lora/big_count seed 0 on shapes_vqa: 10/10 answers (100%)")
    assert capsys.readouterr().err.splitlines() == lines  # the console got the same lines


def read_all(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode()


def test_on_a_terminal_each_job_s_bar_takes_its_own_line(monkeypatch):
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows of 100 columns
    with open(terminal, "w") as tty:
        monkeypatch.setattr(sys, "stderr", tty)
        first, second = progress.Progress("tune a", 4, "step"), progress.Progress("tune b", 4, "step")
        assert (first.bar.pos, second.bar.pos) == (0, -1)  # tqdm counts lines below as negative
        first.update(1)
        first.close()
        third = progress.Progress("tune c", 4, "step")
        assert third.bar.pos == 0  # the first line is free again
        third.close()
        second.close()
        tty.flush()
        drawn = read_all(controller)
    os.close(controller)
    assert "tune a:" in drawn and "\r" in drawn  # a tqdm bar, not a plain line
    assert "[tunebench]" not in drawn
