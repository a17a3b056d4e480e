"""`python -m micrograd.demo digits`: MLP(64, [64, 64, 10]) learns scikit-learn's 8x8 digits."""
from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple, cast

from micrograd import losses, optim
from micrograd.datasets import load_digits
from micrograd.demo import _check_out, _hidden, _nonneg_float, _positive
from micrograd.engine import IMPLEMENTATION, Value, no_grad
from micrograd.nn import MLP

__all__ = ["DigitsResult", "split", "predict", "train_digits", "confusion_matrix",
           "render_confusion", "save_digits_plot", "main"]

#: the share of the images held out for testing
TEST_FRACTION = 0.2


def split(n: int, seed: int, test_fraction: float = TEST_FRACTION) -> Tuple[List[int], List[int]]:
    """split(n, seed, test_fraction=0.2) -> (train, test): a seeded shuffle of range(n), cut in two.

    test gets round(n * test_fraction) indices (at least one), train the rest.
    """
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = _test_size(n, test_fraction)
    return order[k:], order[:k]


def _test_size(n: int, test_fraction: float = TEST_FRACTION) -> int:
    return max(1, round(n * test_fraction))


def predict(model: MLP, X: Sequence[Sequence[float]]) -> List[int]:
    """predict(model, X) -> list[int]: the index of the largest logit for each row."""
    out = []
    with no_grad():
        for row in X:
            scores = [v.data for v in cast(List[Value], model(row))]
            out.append(scores.index(max(scores)))
    return out


def _accuracy(predicted: Sequence[int], y: Sequence[int]) -> float:
    return sum(p == t for p, t in zip(predicted, y)) / len(y)


class DigitsResult:
    """What train_digits() returns: the model, the test set, and one figure of each per epoch."""

    def __init__(self, model: MLP, X_test: List[List[float]], y_test: List[int]) -> None:
        self.model = model
        self.X_test = X_test
        self.y_test = y_test
        self.losses: List[float] = []  # mean training loss over each epoch's batches
        self.train_accuracies: List[float] = []
        self.test_accuracies: List[float] = []
        self.predicted: List[int] = []  # the test set's predictions after the last epoch
        self.seconds = 0.0

    @property
    def test_accuracy(self) -> float:
        """The test accuracy after the last epoch."""
        return self.test_accuracies[-1]


def train_digits(X: Sequence[Sequence[float]], y: Sequence[int], epochs: int = 20,
                 batch: int = 32, lr: float = 0.01, seed: int = 1337,
                 hidden: Sequence[int] = (64, 64),
                 progress: Optional[Callable[[int, int, DigitsResult], None]] = None,
                 ) -> DigitsResult:
    """train_digits(X, y, epochs=20, batch=32, lr=0.01, seed=1337, hidden=(64, 64), progress=None).

    split(len(X), seed) holds out 20% of the rows for testing. random.seed(seed), then
    MLP(len(X[0]), [*hidden, 10]) (relu, linear logits), its weights scaled by 1/sqrt(nin).
    Each epoch visits the training rows in a seeded random order, in minibatches of `batch`:
    a step follows the batch's mean cross-entropy (so gradients are averaged over the batch),
    with Adam at a rate going linearly from lr to lr / 10 over the run.
    progress(epoch, epochs, result) is called after each epoch.
    """
    train_idx, test_idx = split(len(X), seed)
    X_train, y_train = [X[i] for i in train_idx], [y[i] for i in train_idx]
    X_test, y_test = [list(X[i]) for i in test_idx], [y[i] for i in test_idx]
    random.seed(seed)
    model = MLP(len(X[0]), [*hidden, 10])
    # upstream's uniform(-1, 1) weights suit 2 inputs; summed over 64 they saturate the first
    # layer (the defaults over 5 seeds: test accuracy 0.94-0.97 unscaled, 0.97-0.98 scaled).
    # uniform(-1, 1) / sqrt(nin) is the range of PyTorch's nn.Linear.
    for layer in model.layers:
        for neuron in layer.neurons:
            scale = len(neuron.w) ** -0.5
            for w in neuron.w:
                w.data *= scale
    opt = optim.Adam(model.parameters(), lr=lr)
    order = random.Random(seed + 1)  # the batches' order, apart from the split and the weights
    steps = epochs * -(-len(X_train) // batch)
    result = DigitsResult(model, X_test, y_test)
    start = time.perf_counter()
    k = 0
    rows = list(range(len(X_train)))
    for epoch in range(1, epochs + 1):
        order.shuffle(rows)
        total = 0.0
        for b in range(0, len(rows), batch):
            chunk = rows[b:b + batch]
            terms = [losses.cross_entropy(cast(List[Value], model(X_train[i])), y_train[i])
                     for i in chunk]
            loss = sum(terms, Value(0.0)) * (1.0 / len(chunk))
            opt.zero_grad()
            loss.backward()
            opt.lr = lr * (1.0 - 0.9 * k / steps)
            opt.step()
            k += 1
            total += loss.data * len(chunk)
        result.losses.append(total / len(rows))
        result.train_accuracies.append(_accuracy(predict(model, X_train), y_train))
        result.predicted = predict(model, X_test)
        result.test_accuracies.append(_accuracy(result.predicted, y_test))
        result.seconds = time.perf_counter() - start
        if progress is not None:
            progress(epoch, epochs, result)
    return result


def confusion_matrix(y: Sequence[int], predicted: Sequence[int], n: int = 10) -> List[List[int]]:
    """confusion_matrix(y, predicted, n=10) -> n x n counts, rows true class, columns predicted."""
    m = [[0] * n for _ in range(n)]
    for t, p in zip(y, predicted):
        m[t][p] += 1
    return m


def render_confusion(m: Sequence[Sequence[int]]) -> str:
    """render_confusion(m) -> str: the matrix as a table, true digits down, predicted across."""
    w = max(3, len(str(max(max(row) for row in m))) + 1)
    lines = ["confusion matrix (rows: true digit, columns: predicted digit)",
             "true" + "".join(f"{j:>{w}}" for j in range(len(m)))]
    lines += [f"{i:>4}" + "".join(f"{c:>{w}}" for c in row) for i, row in enumerate(m)]
    return "\n".join(lines)


def _digits_figure(result: DigitsResult, limit: int = 24) -> Any:
    # save_digits_plot's figure, unsaved, so the tests can look at it
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    wrong = [i for i, (p, t) in enumerate(zip(result.predicted, result.y_test)) if p != t]
    shown = wrong[:limit]
    cols = 8
    rows = max(1, -(-len(shown) // cols))
    fig = plt.figure(figsize=(10, 4 + 1.3 * rows), constrained_layout=True)
    subfigs: Any = fig.subfigures(2, 1, height_ratios=[3, 1.3 * rows])
    top, bottom = subfigs
    ax_loss, ax_acc = top.subplots(1, 2)
    epochs = list(range(1, len(result.losses) + 1))
    ax_loss.plot(epochs, result.losses, marker="o")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (cross-entropy)")
    ax_loss.set_title("loss")
    ax_acc.plot(epochs, result.train_accuracies, marker="o", label="train")
    ax_acc.plot(epochs, result.test_accuracies, marker="o", label="test")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title(f"accuracy (test {result.test_accuracy:.3f})")
    ax_acc.legend(loc="lower right")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    top.suptitle(f"MLP on 8x8 digits, {len(result.y_test)} test images")
    axes = bottom.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, shown):
        row = result.X_test[i]
        side = int(len(row) ** 0.5)
        ax.imshow([row[r * side:(r + 1) * side] for r in range(side)], cmap="gray_r",
                  vmin=0.0, vmax=1.0)
        ax.set_title(f"{result.predicted[i]} (true {result.y_test[i]})", fontsize=9)
    more = f", the first {len(shown)} shown" if len(wrong) > len(shown) else ""
    bottom.suptitle(f"misclassified test digits: predicted label (true label); "
                    f"{len(wrong)} in all{more}" if wrong else "no test digit misclassified")
    return fig


def save_digits_plot(result: DigitsResult, path: str) -> None:
    """save_digits_plot(result, path) -> None: loss and accuracy curves, misclassified test digits.

    Raises ImportError when matplotlib is missing (pip install 'micrograd-compiled[plot]').
    """
    import matplotlib.pyplot as plt

    fig = _digits_figure(result)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _progress(epoch: int, epochs: int, result: DigitsResult, width: int = 20) -> None:
    # one line per epoch: a bar of the epochs done, then that epoch's figures
    filled = width * epoch // epochs
    bar = "#" * filled + "." * (width - filled)
    print(f"epoch {epoch:>{len(str(epochs))}}/{epochs} [{bar}] loss {result.losses[-1]:.4f} "
          f"train {result.train_accuracies[-1]:.3f} test {result.test_accuracies[-1]:.3f} "
          f"{result.seconds:.2f}s", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m micrograd.demo digits",
        description="Train MLP(64, [64, 64, 10]) on scikit-learn's 8x8 digits (1,797 images, "
                    "shipped inside scikit-learn: pip install 'micrograd-compiled[datasets]'): "
                    "a seeded 80/20 train/test split, pixels scaled to [0, 1], cross-entropy "
                    "on linear logits, Adam over shuffled minibatches.")
    p.add_argument("--epochs", type=_positive, default=20,
                   help="passes over the training set (default 20)")
    p.add_argument("--batch", type=_positive, default=32,
                   help="minibatch size; each step follows the batch's mean loss, so gradients "
                        "are averaged over the batch, not summed (default 32)")
    p.add_argument("--lr", type=_nonneg_float, default=0.01,
                   help="Adam's initial learning rate, decayed linearly to a tenth (default 0.01)")
    p.add_argument("--seed", type=int, default=1337,
                   help="seed of the split, the weights and the batches (default 1337)")
    p.add_argument("--hidden", type=_hidden, default=[64, 64],
                   help="hidden layer sizes, comma separated (default 64,64)")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="write loss and accuracy curves and the misclassified test digits here "
                        "(.png, .svg, .pdf, ...; needs matplotlib)")
    # for the tests: train on a seeded subset of N images
    p.add_argument("--limit", type=_positive, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """main(argv=None) -> int: the command line; see `python -m micrograd.demo digits --help`."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.out is not None:
        _check_out(parser, args.out, text=False)
    try:
        X, y = load_digits()
    except ImportError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    if args.limit is not None and args.limit < len(X):
        keep = random.Random(args.seed).sample(range(len(X)), args.limit)
        X, y = [X[i] for i in keep], [y[i] for i in keep]
    epochs = f"{args.epochs} epoch" + ("s" if args.epochs != 1 else "")
    print(f"micrograd digits: MLP({len(X[0])}, {[*args.hidden, 10]}), {len(X)} images "
          f"({len(X) - _test_size(len(X))} train), {epochs} of Adam in batches of {args.batch}, "
          f"{IMPLEMENTATION} engine", file=sys.stderr)
    result = train_digits(X, y, epochs=args.epochs, batch=args.batch, lr=args.lr,
                          seed=args.seed, hidden=args.hidden, progress=_progress)
    print(f"trained in {result.seconds:.2f}s", file=sys.stderr)
    if args.out is not None:
        save_digits_plot(result, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    print(render_confusion(confusion_matrix(result.y_test, result.predicted)))
    right = sum(p == t for p, t in zip(result.predicted, result.y_test))
    print(f"test accuracy: {result.test_accuracy:.3f} ({right}/{len(result.y_test)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
