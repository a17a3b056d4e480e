"""The project's targets, as a table, and how a run's rows meet them: met, NOT met, or n/a."""
from benchmarks.report import fmt_ratio, fmt_value
from benchmarks.stats import find_row, median, paired_ratio

# Issue 15 asks the MLP(64) step to become 3x faster than "today": the commit at which it was
# filed. The suite builds that commit's engine (runner.py's "baseline", --baseline REV) and times
# it in the same run, so the speed-up is a ratio of one run's figures.
ISSUE15_BASELINE = "ab12935"

# Every target is about the compiled engine's median in (workload, metric) (or that of "impl", when
# a target names one: the script with the README recipe applied). The kinds:
#   "at most":    that median is at most `limit`, in the metric's unit
#   "at least":   that median is at least `limit` (e.g. a test accuracy)
#   "faster":     `versus`'s median is at least `limit` times the compiled one ("{baseline}" in
#                 its text: which build the baseline was, see baseline_label)
#   "time ratio": the compiled median is at most `limit` times `versus`'s
#   "runs":       the compiled engine has a figure at all (no error); left out when not run
#   "distance":   no limit: how many times `versus`'s time the compiled one is, quoted (the floor)
#   "per":        the compiled median of `metric` is at most `limit` times its median of
#                 `per_metric` (same workload, same implementation)
#   "per quoted": no limit: how many times its `per_metric` median the `metric` one is (a floor)
#   "headroom":   no limit met or not: the time a "faster" target of `limit` against `versus`
#                 allows, less the sum of the floor's medians in `floors` (what any engine pays),
#                 quoted next to what the compiled engine takes above those floors
TARGETS = [
    {"target": "forward ≤ 80 ns per op node (graph200k, compiled)", "kind": "at most", "limit": 80,
     "workload": "graph200k", "metric": "forward"},
    {"target": "backward ≤ 10 ns per node (graph200k, compiled)", "kind": "at most", "limit": 10,
     "workload": "graph200k", "metric": "backward"},
    {"target": "test_more_ops graph ≥ 25× upstream", "kind": "faster", "limit": 25, "versus": "upstream",
     "workload": "more_ops", "metric": "build+backward"},
    {"target": "200k-node forward ≥ 50× upstream", "kind": "faster", "limit": 50, "versus": "upstream",
     "workload": "graph200k", "metric": "forward"},
    {"target": "200k-node backward ≥ 50× upstream", "kind": "faster", "limit": 50, "versus": "upstream",
     "workload": "graph200k", "metric": "backward"},
    {"target": "demo step ≥ 300× upstream", "kind": "faster", "limit": 300, "versus": "upstream",
     "workload": "moons_step", "metric": "step"},
    {"target": "MLP(64,[64,64,10]) sample ≥ 500× upstream", "kind": "faster", "limit": 500,
     "versus": "upstream", "workload": "mlp64_sample", "metric": "sample"},
    {"target": "MLP(64,[64,64,10]) sample ≥ 3× {baseline}", "kind": "faster", "limit": 3,
     "versus": "baseline", "workload": "mlp64_sample", "metric": "sample"},
    {"target": "MLP(64,[64,64,10]) sample after gc.collect() ≥ 3× {baseline}", "kind": "faster",
     "limit": 3, "versus": "baseline", "workload": "mlp64_sample",
     "metric": "sample after gc.collect()"},
    {"target": "demo step no slower than 2× PyTorch batched", "kind": "time ratio", "limit": 2,
     "versus": "torch", "workload": "moons_step", "metric": "step"},
    {"target": "digits epoch no slower than 5× PyTorch batched", "kind": "time ratio", "limit": 5,
     "versus": "torch", "workload": "digits_epoch", "metric": "epoch"},
    {"target": "digits default run: test accuracy ≥ 0.95 (compiled)", "kind": "at least",
     "limit": 0.95, "workload": "digits_epoch", "metric": "test accuracy"},
    {"target": "≤ 64 bytes per retained node (RSS, compiled)", "kind": "at most", "limit": 64,
     "workload": "memory", "metric": "retained (RSS)"},
    {"target": "10^6-deep chain backpropagates (compiled)", "kind": "runs",
     "workload": "deep_chain", "metric": "backward"},
    {"target": "microgpt16 step ≥ 17× the script's own Value", "kind": "faster", "limit": 17,
     "versus": "inline", "workload": "microgpt16", "metric": "step"},
    {"target": "microgpt32 step ≥ 30× the script's own Value", "kind": "faster", "limit": 30,
     "versus": "inline", "workload": "microgpt32", "metric": "step"},
    {"target": "microgpt16 step with micrograd.functional + optim.Adam ≥ 300× the script's own Value",
     "kind": "faster", "limit": 300, "versus": "inline", "impl": "functional-adam",
     "workload": "microgpt16", "metric": "step"},
    {"target": "microgpt32 step with micrograd.functional + optim.Adam ≥ 600× the script's own Value",
     "kind": "faster", "limit": 600, "versus": "inline", "impl": "functional-adam",
     "workload": "microgpt32", "metric": "step"},
    {"target": "MLP(64,[64,64,10]) sample: distance to the C arithmetic (floor)", "kind": "distance",
     "versus": "floor", "workload": "mlp64_sample", "metric": "sample"},
    {"target": "MLP(64,[64,64,10]) sample after gc.collect(): distance to the C arithmetic (floor)",
     "kind": "distance", "versus": "floor", "workload": "mlp64_sample",
     "metric": "sample after gc.collect()"},
    {"target": "MLP(64,[64,64,10]) sample: what 3× {baseline} leaves the engine above the floors "
               "(C arithmetic + the step's own Python)", "kind": "headroom", "limit": 3,
     "versus": "baseline", "workload": "mlp64_sample", "metric": "sample",
     "floors": ("sample", "the step's own Python")},
    {"target": "MLP(64,[64,64,10]) sample after gc.collect(): what 3× {baseline} leaves the "
               "engine above the floors", "kind": "headroom", "limit": 3, "versus": "baseline",
     "workload": "mlp64_sample", "metric": "sample after gc.collect()",
     "floors": ("sample after gc.collect()", "the step's own Python after gc.collect()")},
    {"target": "microgpt16 step: distance to the float-only floor", "kind": "distance",
     "versus": "floor", "workload": "microgpt16", "metric": "step"},
    {"target": "microgpt32 step: distance to the float-only floor", "kind": "distance",
     "versus": "floor", "workload": "microgpt32", "metric": "step"},
    {"target": "microgpt16 step, functional + Adam: distance to the float-only floor",
     "kind": "distance", "versus": "floor", "impl": "functional-adam", "workload": "microgpt16",
     "metric": "step"},
    {"target": "microgpt32 step, functional + Adam: distance to the float-only floor",
     "kind": "distance", "versus": "floor", "impl": "functional-adam", "workload": "microgpt32",
     "metric": "step"},
]

# micrograd.functional per element, at most twice nn.Layer's cost per weight: linear against the
# layer of its shape, the list ops (less the harness that sums their results) against 16x16's
TARGETS += [
    {"target": f"F.{op} per element{' (less the harness)' if own else ''} ≤ 2× nn.Layer {shape} "
               "per weight", "kind": "per", "limit": 2, "workload": "functional_ops",
     "metric": op + (" own" if own else ""), "per_metric": f"layer {shape} per weight"}
    for op, shape, own in (("linear 16x16", "16x16", False), ("linear 64x16", "64x16", False),
                           ("softmax 27", "16x16", True), ("log_softmax 27", "16x16", True),
                           ("rmsnorm 16", "16x16", True), ("relu 64", "16x16", True))]

# and how far the list ops are from their floor: one Python object per element made and freed
# (functional_ops.py), which no list-returning op can go below
TARGETS += [
    {"target": f"F.{op} per element (less the harness): distance to {what}", "kind": "per quoted",
     "workload": "functional_ops", "metric": op + " own", "per_metric": floor}
    for op in ("softmax 27", "rmsnorm 16", "relu 64")
    for what, floor in (("a float made and freed per element", "floor float 64"),
                        ("a Value made and freed per element", "floor Value 64"))]

# how the "n/a" lines name an implementation without a figure
NAMES = {"compiled": "compiled", "baseline": "baseline", "upstream": "upstream", "torch": "PyTorch",
         "inline": "inline Value", "floor": "floor", "functional": "functional",
         "functional-adam": "functional + Adam"}


def baseline_label(commit=None):
    """How a target names the baseline build: issue 15's, unless --baseline chose another commit."""
    if commit is None or commit.startswith(ISSUE15_BASELINE):
        return f"the issue-15 baseline build ({ISSUE15_BASELINE})"
    return f"the baseline build {commit[:7]} (--baseline; issue 15's is {ISSUE15_BASELINE})"


def evaluate(target, rows, baseline_commit=None):
    """One target's {"target", "status", "measured"[, "value"]}, or None for a "runs" target not run."""
    name, kind, limit = target["target"], target["kind"], target.get("limit")
    if target.get("versus") == "baseline":
        name = name.format(baseline=baseline_label(baseline_commit))
    where = (rows, target["workload"], target["metric"])
    impl = target.get("impl", "compiled")  # whose figure the target is about
    ours = median(*where, impl)
    if kind == "runs":
        row = find_row(*where, "compiled")
        if row is None:
            return None
        ok = row["stats"] is not None
        return {"target": name, "status": "met" if ok else "NOT met",
                "measured": fmt_value(row["stats"]["median"], "s") if ok else (row["error"] or "failed")}
    if kind in ("per", "per quoted"):
        theirs = median(rows, target["workload"], target["per_metric"], impl)
        if ours is None or theirs is None:
            return {"target": name, "status": "n/a", "measured": "not measured"}
        r = ours / theirs
        status = "quoted" if kind == "per quoted" else "met" if r <= limit else "NOT met"
        return {"target": name, "status": status,
                "measured": f"{r:.2f}× ({fmt_value(ours, 'ns/element')} against "
                            f"{fmt_value(theirs, 'ns/element')})", "value": r}
    if kind in ("at most", "at least"):
        if ours is None:
            return {"target": name, "status": "n/a", "measured": "not measured"}
        unit = find_row(*where, "compiled")["unit"]
        ok = ours <= limit if kind == "at most" else ours >= limit
        return {"target": name, "status": "met" if ok else "NOT met",
                "measured": fmt_value(ours, unit), "value": ours}
    if kind == "headroom":
        return _headroom(target, name, rows, ours)
    versus = target["versus"]
    theirs = median(*where, versus)
    if theirs is None or ours is None:
        return {"target": name, "status": "n/a",
                "measured": f"no {NAMES[versus if theirs is None else impl]} figure"}
    # a script's steps differ in size (each trains on another name): where the samples are the
    # same steps in both, compare step k with step k and take the median of those ratios
    paired = paired_ratio(*where, versus, impl)
    how = " (median of per-step ratios)" if paired is not None else ""
    if kind == "faster":
        r = paired if paired is not None else theirs / ours
        return {"target": name, "status": "met" if r >= limit else "NOT met",
                "measured": fmt_ratio(r) + how, "value": r}
    if kind == "distance":
        d = 1 / paired if paired is not None else ours / theirs
        return {"target": name, "status": "quoted",
                "measured": f"{d:.2f}× the {NAMES[versus]}'s time{how}", "value": d}
    if kind == "time ratio":
        r = ours / theirs
        return {"target": name, "status": "met" if r <= limit else "NOT met",
                "measured": f"{r:.2f}× {NAMES[versus]}'s time", "value": r}
    raise ValueError(f"unknown kind of target {kind!r}")


def _headroom(target, name, rows, ours):
    """A "headroom" target: what the ratio target leaves the engine above the floors, and its use."""
    wl = target["workload"]
    theirs = median(rows, wl, target["metric"], target["versus"])
    floors = [median(rows, wl, m, "floor") for m in target["floors"]]
    if ours is None or theirs is None or None in floors:
        return {"target": name, "status": "n/a", "measured": "not measured"}
    allowed, floor = theirs / target["limit"], sum(floors)
    left, used = allowed - floor, ours - floor
    text = (f"{target['limit']:g}× allows {fmt_value(allowed, 's')}; the floors take "
            f"{fmt_value(floor, 's')}, ")
    if left <= 0:
        return {"target": name, "status": "quoted", "value": float("inf"),
                "measured": text + f"so no engine can; ours adds {fmt_value(used, 's')} to them"}
    return {"target": name, "status": "quoted", "value": used / left,
            "measured": text + f"leaving {fmt_value(left, 's')} for the engine's own work; ours "
                               f"takes {fmt_value(used, 's')} ({used / left:.2f}× that)"}


def evaluate_targets(rows, arena_node_bytes=None, workloads=None, baseline_commit=None):
    """Every target of TARGETS in turn, with the figure; the RSS one names the node struct's size.

    With `workloads` (those a run ran, e.g. under --only), targets of other workloads are left out;
    baseline_commit: the commit the baseline was built from, when it ran (named by its targets).
    """
    out = []
    for target in TARGETS:
        if workloads is not None and target["workload"] not in workloads:
            continue
        t = evaluate(target, rows, baseline_commit)
        if t is None:
            continue
        if target["workload"] == "memory" and arena_node_bytes and t.get("value") is not None:
            t["measured"] += f" (the node struct: {arena_node_bytes} B)"
        out.append(t)
    return out
