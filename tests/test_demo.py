"""python -m micrograd.demo: training, progress output, the picture and its text fallback."""
from __future__ import annotations

import builtins
import io
import os
import subprocess
import sys

import pytest

from micrograd import demo


def _run(capsys, *argv):
    assert demo.main(list(argv)) == 0
    return capsys.readouterr()


def test_small_run_prints_accuracy_and_progress(capsys):
    out = _run(capsys, "--steps", "12", "--samples", "30", "--hidden", "8")
    assert out.out.splitlines()[-1].startswith("accuracy: ")
    float(out.out.splitlines()[-1].split()[-1])
    # not a terminal: plain lines, no carriage returns, the last step shown
    assert "\r" not in out.err
    assert "step 12/12 [" in out.err and "loss " in out.err and "MLP(2, [8, 1])" in out.err


def test_progress_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = demo.ProgressBar(stream, width=10)
    for k in range(1, 4):
        bar(k, 3, 0.5, 0.75)
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n")
    assert "step 3/3 [##########] loss 0.5000 accuracy 0.75" in text


def test_text_fallback_without_matplotlib(capsys, monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    target = tmp_path / "boundary.png"
    out = _run(capsys, "--steps", "3", "--samples", "20", "--hidden", "4", "--out", str(target))
    assert not target.exists()
    assert "matplotlib is not installed" in out.err and "[plot]" in out.err
    lines = out.out.splitlines()
    grid = lines[:-1]
    assert len(grid) == 24 and all(len(row) == 64 for row in grid)
    assert set("".join(grid)) <= set("+.XO") and "X" in "".join(grid) and "O" in "".join(grid)


def test_png_with_matplotlib(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "boundary.png"
    out = _run(capsys, "--steps", "3", "--samples", "20", "--hidden", "4", "--out", str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {target}" in out.err


@pytest.mark.parametrize("argv", [
    ["--optimizer", "adam", "--activation", "tanh"],
    ["--activation", "sigmoid", "--lr", "0.5", "--noise", "0", "--seed", "3"],
])
def test_options(capsys, argv):
    out = _run(capsys, "--steps", "4", "--samples", "16", "--hidden", "6,5", *argv)
    assert "MLP(2, [6, 5, 1])" in out.err and out.out.startswith("accuracy: ")


@pytest.mark.parametrize("argv", [["--hidden", "a,b"], ["--hidden", "0"], ["--steps", "0"],
                                  ["--noise", "-1"], ["--optimizer", "rmsprop"],
                                  ["--activation", "linear"], ["--bogus"]])
def test_bad_arguments(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        demo.main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_train_api():
    result = demo.train(steps=5, samples=20, hidden=(4,), optimizer="adam", lr=0.1)
    assert len(result.losses) == len(result.accuracies) == 5
    assert result.losses[-1] < result.losses[0]
    assert 0.0 <= demo.accuracy(result.model, result.X, result.y) <= 1.0
    with pytest.raises(ValueError, match="optimizer"):
        demo.train(steps=1, optimizer="rmsprop")


def test_default_demo_as_a_module():
    from micrograd import IMPLEMENTATION
    if IMPLEMENTATION != "compiled":
        pytest.skip("the full demo takes ~20 s on the pure engine; see test_small_run_*")
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "micrograd.demo"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "accuracy: 1.00"
    assert "step 100/100" in out.stderr


def test_python_dash_m_micrograd():
    out = subprocess.run([sys.executable, "-m", "micrograd", "--steps", "2", "--samples", "10",
                          "--hidden", "3"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("accuracy: ")
