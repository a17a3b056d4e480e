"""`python -m micrograd.demo`: upstream's moons demo, trained and drawn (`digits`: demo_digits)."""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from typing import Any, Callable, List, Optional, Sequence, TextIO, Tuple

from micrograd import losses, optim
from micrograd.datasets import make_moons
from micrograd.engine import IMPLEMENTATION, Value, no_grad
from micrograd.nn import ACTIVATIONS, MLP

__all__ = ["ProgressBar", "TrainResult", "demo_loss", "train", "accuracy", "render_text",
           "save_text", "save_plot", "main"]

#: upstream demo's L2 strength
ALPHA = 1e-4


def _score(model: MLP, x: Sequence[float]) -> Value:
    # the demo's models end in one neuron, so model(x) is a bare Value (typed Value | list[Value])
    out = model(x)
    if not isinstance(out, Value):
        raise ValueError(f"the demo's model must have one output, not {len(out)}")
    return out


def demo_loss(model: MLP, X: Sequence[Sequence[float]], y: Sequence[int]) -> Tuple[Value, float]:
    """demo_loss(model, X, y) -> (loss, accuracy): upstream demo's hinge + 1e-4 * L2 loss.

    Scores are model(x) for each row; accuracy is the fraction whose sign matches y.
    """
    scores = [_score(model, row) for row in X]
    total = losses.hinge(scores, y) + ALPHA * losses.l2(model.parameters())
    acc = sum((yi > 0) == (s.data > 0) for yi, s in zip(y, scores)) / len(y)
    return total, acc


def accuracy(model: MLP, X: Sequence[Sequence[float]], y: Sequence[int]) -> float:
    """accuracy(model, X, y) -> float: fraction of rows where sign(model(x)) matches y."""
    with no_grad():
        return sum((yi > 0) == (_score(model, row).data > 0) for row, yi in zip(X, y)) / len(y)


class TrainResult:
    """What train() returns: the model, the data, and the loss and accuracy of each step."""

    def __init__(self, model: MLP, X: List[List[float]], y: List[int]) -> None:
        self.model = model
        self.X = X
        self.y = y
        self.losses: List[float] = []
        self.accuracies: List[float] = []
        self.seconds = 0.0


def train(steps: int = 100, samples: int = 100, noise: float = 0.1, seed: int = 1337,
          hidden: Sequence[int] = (16, 16), activation: str = "relu", optimizer: str = "sgd",
          lr: Optional[float] = None, decay_steps: Optional[int] = None,
          progress: Optional[Callable[[int, int, float, float], None]] = None) -> TrainResult:
    """train(steps=100, samples=100, noise=0.1, seed=1337, hidden=(16, 16), ...) -> TrainResult.

    Upstream's demo: moons data from make_moons(samples, noise, seed), random.seed(seed)
    for the weights of MLP(2, [*hidden, 1]), full-batch steps of demo_loss with the learning
    rate lr * (1 - 0.9 * k / decay_steps) (lr 1.0 for 'sgd', upstream's schedule, 0.05 for
    'adam'; decay_steps defaults to steps, so the rate always ends near lr / 10).
    progress(k, steps, loss, accuracy) is called after each step.
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}; expected 'sgd' or 'adam'")
    X, y = make_moons(samples, noise, seed=seed)
    random.seed(seed)
    model = MLP(2, [*hidden, 1], activation=activation)
    params = model.parameters()
    if lr is None:
        lr = 1.0 if optimizer == "sgd" else 0.05
    opt = optim.SGD(params, lr=lr) if optimizer == "sgd" else optim.Adam(params, lr=lr)
    decay = steps if decay_steps is None else decay_steps
    result = TrainResult(model, X, y)
    start = time.perf_counter()
    for k in range(steps):
        total, acc = demo_loss(model, X, y)
        opt.zero_grad()
        total.backward()
        # upstream: learning_rate = 1.0 - 0.9*k/100 (1.0 * x is exact, so lr=1.0 matches it)
        opt.lr = lr * (1.0 - 0.9 * k / decay)
        opt.step()
        result.losses.append(total.data)
        result.accuracies.append(acc)
        if progress is not None:
            progress(k + 1, steps, total.data, acc)
    result.seconds = time.perf_counter() - start
    return result


class ProgressBar:
    """ProgressBar(stream=sys.stderr): a one-line bar on a terminal, sparse plain lines otherwise."""

    def __init__(self, stream: Optional[TextIO] = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.start = time.perf_counter()

    def __call__(self, k: int, total: int, loss: float, acc: float) -> None:
        """bar(k, total, loss, acc) -> None: show step k of total."""
        filled = self.width * k // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        line = (f"step {k:>{len(str(total))}}/{total} [{bar}] loss {loss:.4f} "
                f"accuracy {acc:.2f} {time.perf_counter() - self.start:.2f}s")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if k == total else ""))
        elif k == total or k == 1 or k % max(total // 10, 1) == 0:
            # a log file gets about ten lines, not one per step
            self.stream.write(line + "\n")
        self.stream.flush()


def _grid(X: Sequence[Sequence[float]], nx: int, ny: int) -> Tuple[List[float], List[float]]:
    xs = [p[0] for p in X]
    ys = [p[1] for p in X]
    x0, x1 = min(xs) - 0.5, max(xs) + 0.5
    y0, y1 = min(ys) - 0.5, max(ys) + 0.5
    gx = [x0 + (x1 - x0) * i / (nx - 1) for i in range(nx)]
    gy = [y1 - (y1 - y0) * j / (ny - 1) for j in range(ny)]  # top row first
    return gx, gy


#: the last line of render_text's picture
TEXT_LEGEND = ("legend: X class +1, O class -1; + scored > 0, . scored <= 0 "
               "(the decision boundary runs between them)")


def render_text(model: MLP, X: Sequence[Sequence[float]], y: Sequence[int],
                width: int = 64, height: int = 24) -> str:
    """render_text(model, X, y, width=64, height=24) -> str: the decision boundary as text.

    height rows of width characters, then TEXT_LEGEND: '+' and '.' mark where the model scores
    above and below 0; 'X' and 'O' are the data points of label +1 and -1.
    """
    gx, gy = _grid(X, width, height)
    with no_grad():
        rows = [["+" if _score(model, [a, b]).data > 0 else "." for a in gx] for b in gy]
    dx = (gx[-1] - gx[0]) / (width - 1)
    dy = (gy[0] - gy[-1]) / (height - 1)
    for (a, b), label in zip(X, y):
        i = round((a - gx[0]) / dx)
        j = round((gy[0] - b) / dy)
        rows[j][i] = "X" if label > 0 else "O"
    return "\n".join("".join(r) for r in rows) + "\n" + TEXT_LEGEND


def save_text(model: MLP, X: Sequence[Sequence[float]], y: Sequence[int], path: str) -> None:
    """save_text(model, X, y, path) -> None: write render_text's picture to path (no matplotlib)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_text(model, X, y) + "\n")


def _boundary_figure(model: MLP, X: Sequence[Sequence[float]], y: Sequence[int],
                     h: float = 0.05) -> Any:
    # save_plot's figure, unsaved, so the tests can look at its labels and legend
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    xs = [p[0] for p in X]
    ys = [p[1] for p in X]
    nx = int((max(xs) - min(xs) + 2) / h) + 1
    ny = int((max(ys) - min(ys) + 2) / h) + 1
    gx = [min(xs) - 1 + i * h for i in range(nx)]
    gy = [min(ys) - 1 + j * h for j in range(ny)]
    with no_grad():
        S = [[_score(model, [a, b]).data for a in gx] for b in gy]
    Z = [[1.0 if s > 0 else 0.0 for s in row] for row in S]
    cmap = plt.cm.Spectral
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(gx, gy, Z, cmap=cmap, alpha=0.8)
    if min(map(min, S)) < 0.0 < max(map(max, S)):
        # contour() warns when the score never crosses 0 (a model that predicts one class)
        ax.contour(gx, gy, S, levels=[0.0], colors="k", linewidths=1.5)
    for label, name in ((1, "class +1"), (-1, "class -1")):
        pts = [p for p, yi in zip(X, y) if (yi > 0) == (label > 0)]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=cmap(1.0 if label > 0 else 0.0),
                   s=40, edgecolors="k", label=name)
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="k", linewidth=1.5, label="decision boundary"))
    ax.legend(handles=handles, loc="best", framealpha=0.9)
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(f"MLP decision boundary, accuracy {accuracy(model, X, y):.2f}")
    return fig


def save_plot(model: MLP, X: Sequence[Sequence[float]], y: Sequence[int], path: str,
              h: float = 0.05) -> None:
    """save_plot(model, X, y, path, h=0.05) -> None: draw the decision boundary with matplotlib.

    Raises ImportError when matplotlib is missing (pip install 'micrograd-compiled[plot]').
    """
    import matplotlib.pyplot as plt

    fig = _boundary_figure(model, X, y, h)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _hidden(text: str) -> List[int]:
    # every comma-separated item must be a size: '' and '16,,16' are mistakes, not [] or [16, 16]
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes sizes like 16,16, not {text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, not {text!r}")
    return sizes


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {n}")
    return n


def _nonneg_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, not {text}")
    return x


#: the --out suffix written as text (render_text), without matplotlib
TEXT_SUFFIX = ".txt"


def _plot_formats() -> Optional[List[str]]:
    # the suffixes savefig writes, or None without matplotlib; pgf is left out (it needs LaTeX)
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        return None
    return sorted(f for f in FigureCanvasBase.get_supported_filetypes() if f != "pgf")


def _check_out(parser: argparse.ArgumentParser, path: str, text: bool = True) -> None:
    """Exit with an argparse error unless --out PATH can be written once training is done.

    text=True accepts TEXT_SUFFIX, which needs no matplotlib. Checked before training, so a
    typo costs nothing: a missing folder, an unknown suffix, no matplotlib.
    """
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        parser.error(f"--out {path} is a folder; give a file name such as boundary.png")
    if not os.path.isdir(folder):
        parser.error(f"--out {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        parser.error(f"--out {path}: the folder {folder} is not writable")
    suffix = os.path.splitext(path)[1].lower()
    if text and suffix == TEXT_SUFFIX:
        return
    formats = _plot_formats()
    as_text = f"; --out NAME{TEXT_SUFFIX} writes the picture as text" if text else ""
    if formats is None:
        parser.error(f"--out {path} needs matplotlib, which is not installed "
                     f"(pip install 'micrograd-compiled[plot]'){as_text}")
    if suffix[1:] not in formats:
        known = ", ".join("." + f for f in formats) + (f", or {TEXT_SUFFIX}" if text else "")
        parser.error(f"--out {path}: {'no suffix' if not suffix else 'unknown suffix ' + suffix}; "
                     f"use one of {known}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m micrograd.demo",
        usage="%(prog)s [moons] [options]\n       %(prog)s digits [options]",
        description="Train upstream micrograd's moons demo: MLP(2, [16, 16, 1]), hinge + L2 loss, "
                    "SGD with a decaying learning rate.",
        epilog="The digits job trains MLP(64, [64, 64, 10]) on scikit-learn's 8x8 digits: "
               "see `python -m micrograd.demo digits --help`.")
    p.add_argument("--steps", type=_positive, default=100, help="training steps (default 100)")
    p.add_argument("--samples", type=_positive, default=100, help="moons points (default 100)")
    p.add_argument("--noise", type=_nonneg_float, default=0.1, help="moons noise (default 0.1)")
    p.add_argument("--seed", type=int, default=1337, help="seed of data and weights (default 1337)")
    p.add_argument("--hidden", type=_hidden, default=[16, 16],
                   help="hidden layer sizes, comma separated (default 16,16)")
    p.add_argument("--activation", choices=list(ACTIVATIONS), default="relu",
                   help="hidden activation (default relu); linear makes the whole MLP linear, "
                        "a straight boundary (with sgd it needs a smaller --lr, such as 0.1)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                   help="sgd (upstream's, default) or adam")
    p.add_argument("--lr", type=_nonneg_float, default=None,
                   help="initial learning rate (default 1.0 for sgd, 0.05 for adam)")
    p.add_argument("--out", metavar="FILE", default=None,
                   help=f"write the decision boundary picture here: {TEXT_SUFFIX} as text, "
                        "any other suffix (.png, .svg, .pdf, ...) with matplotlib")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """main(argv=None) -> int: the command line; see `python -m micrograd.demo --help`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["digits"]:
        from micrograd.demo_digits import main as digits_main
        return digits_main(argv[1:])
    if argv[:1] == ["moons"]:
        argv = argv[1:]
    parser = _parser()
    args = parser.parse_args(argv)
    if args.out is not None:
        _check_out(parser, args.out)
    print(f"micrograd demo: MLP(2, {[*args.hidden, 1]}), {args.samples} moons points, "
          f"{args.steps} steps of {args.optimizer}, {IMPLEMENTATION} engine", file=sys.stderr)
    result = train(steps=args.steps, samples=args.samples, noise=args.noise, seed=args.seed,
                   hidden=args.hidden, activation=args.activation, optimizer=args.optimizer,
                   lr=args.lr, progress=ProgressBar(sys.stderr))
    print(f"trained in {result.seconds:.2f}s", file=sys.stderr)
    bad = next((k for k, v in enumerate(result.losses, 1) if not math.isfinite(v)), None)
    if bad is not None:
        print(f"the loss diverged (not finite from step {bad}): try a smaller --lr",
              file=sys.stderr)
    if args.out is not None:
        if args.out.lower().endswith(TEXT_SUFFIX):
            save_text(result.model, result.X, result.y, args.out)
        else:
            save_plot(result.model, result.X, result.y, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    print(f"accuracy: {accuracy(result.model, result.X, result.y):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
