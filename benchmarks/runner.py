"""Runs every workload on every implementation, each in its own process, and prints the tables."""
import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "benchmarks" / "_worker.py"
UPSTREAM_VERSION = "0.1.0"
UPSTREAM_DIR = ROOT / ".upstream" / f"micrograd-{UPSTREAM_VERSION}"

IMPLS = ["compiled", "pure", "upstream", "torch"]
WORKLOADS = ["more_ops", "graph200k", "deep_chain", "moons_step", "mlp64_sample", "memory", "import"]
DESCRIPTIONS = {
    "more_ops": "upstream's test_more_ops graph, built + backpropagated",
    "graph200k": "2000 chains x 100 binary ops + a sum tree (~202k op nodes, longest path 111)",
    "deep_chain": "a chain of 10^6 binary ops: forward, backward, free",
    "moons_step": "upstream's demo step: MLP(2,[16,16,1]) on 100 moons points, hinge + L2, SGD",
    "mlp64_sample": "MLP(64,[64,64,10]) on one sample: forward + backward + SGD step",
    "memory": "a graph kept alive only by its root: bytes per node, and what is left after del",
    "import": "`import micrograd` in a fresh interpreter",
}
# Workloads PyTorch does not run, per mode: memory is not measured; one scalar tensor per node
# makes its 10^6-deep chain take about a minute, too long for --quick.
TORCH_SKIPS = {"smoke": {"memory"}, "quick": {"memory", "deep_chain"}, "full": {"memory"}}
# Per-job time limit, seconds: a hung worker must not hang the suite.
JOB_TIMEOUT = 1200


# ---------------------------------------------------------------- implementations

def compiled_built():
    return any((ROOT / "micrograd").glob("_engine*.so")) or any((ROOT / "micrograd").glob("_engine*.pyd"))


def _shown(path):
    try:
        return path.relative_to(ROOT)
    except ValueError:
        return path


def ensure_upstream(allow_install, log):
    """Upstream micrograd 0.1.0 in a private folder: (ok, message). Installs once, then cached."""
    if (UPSTREAM_DIR / "micrograd" / "engine.py").is_file():
        return True, f"upstream micrograd {UPSTREAM_VERSION} from {_shown(UPSTREAM_DIR)}/"
    if not allow_install:
        return False, ("upstream micrograd is not installed and this run does not install it "
                       f"(a normal run installs it into {_shown(UPSTREAM_DIR)}/)")
    log(f"installing upstream micrograd=={UPSTREAM_VERSION} into {_shown(UPSTREAM_DIR)}/ "
        "(first use; cached afterwards) ...")
    tmp = UPSTREAM_DIR.with_name(UPSTREAM_DIR.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
           "--disable-pip-version-check", "--target", str(tmp), f"micrograd=={UPSTREAM_VERSION}"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        ok = r.returncode == 0 and (tmp / "micrograd" / "engine.py").is_file()
        said = (r.stderr or r.stdout).strip().splitlines()
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, said = False, [str(exc)]
    if not ok:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = " | ".join(said[-3:]) if said else "no output"
        return False, (f"upstream micrograd {UPSTREAM_VERSION} could NOT be installed (offline? no "
                       f"pip?), so it has no column and no ratio. pip said: {tail}")
    shutil.rmtree(UPSTREAM_DIR, ignore_errors=True)
    tmp.rename(UPSTREAM_DIR)  # only a complete install is ever cached
    return True, f"upstream micrograd {UPSTREAM_VERSION} installed into {_shown(UPSTREAM_DIR)}/"


def job_env(impl):
    """(env, cwd) that make `import micrograd` find exactly this implementation."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("MICROGRAD_NO_EXTENSIONS", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["MB_UPSTREAM_DIR"] = str(UPSTREAM_DIR)
    if impl == "upstream":
        # the repo is not on sys.path: the worker's own folder, then upstream's
        env["PYTHONPATH"] = str(UPSTREAM_DIR)
        return env, str(UPSTREAM_DIR)
    env["PYTHONPATH"] = str(ROOT)  # the in-place build, whatever else is installed
    if impl == "pure":
        env["MICROGRAD_NO_EXTENSIONS"] = "1"
    return env, str(ROOT)


def run_job(impl, workload, mode):
    env, cwd = job_env(impl)
    cmd = [sys.executable, str(WORKER), impl, workload, mode]
    try:
        r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                           timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"impl": impl, "workload": workload, "status": "error", "metrics": [],
                "reason": f"timed out after {JOB_TIMEOUT} s"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
        if r.returncode < 0:
            tail = f"killed by signal {-r.returncode}; {tail}"
        return {"impl": impl, "workload": workload, "status": "error", "metrics": [],
                "reason": tail, "stderr": r.stderr[-4000:]}
    return json.loads(lines[-1])


# ---------------------------------------------------------------- statistics and formatting

def stats(samples):
    if not samples:
        return None
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "n": len(samples)}


def fmt_value(x, unit):
    if x is None:
        return "—"
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
            if abs(x) >= scale or name == "ns":
                v = x / scale
                return f"{v:.3g} {name}" if v < 100 else f"{v:.0f} {name}"
    if unit == "ns/node":
        return f"{x:.3g} ns" if x < 100 else f"{x:.0f} ns"
    if unit == "B/node":
        return f"{x:.0f} B" if abs(x) >= 100 else f"{x:.1f} B"
    if unit == "B":
        a = abs(x)
        for scale, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if a >= scale:
                return f"{x / scale:.3g} {name}"
        return f"{x:.0f} B"
    return f"{x:.4g} {unit}"


def fmt_ratio(r):
    if r is None:
        return "—"
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×"


def ratio(base, this, unit):
    """How many times better `this` is than `base` (time or bytes per node: lower is better)."""
    if unit == "B" or base is None or this is None or this <= 0 or base <= 0:
        return None
    return base / this


def _samples(m, clock):
    if m is None:
        return []
    if clock == "cpu" and m.get("cpu_samples") is not None:
        return m["cpu_samples"]
    return m["samples"]


def build_rows(results, impls, clock="wall"):
    """One row per (workload, metric, impl), in suite order, with ratios from the same run."""
    by = {(r["workload"], r["impl"]): r for r in results}
    rows = []
    for wl in WORKLOADS:
        metric_order = []
        for impl in impls:
            for m in by.get((wl, impl), {}).get("metrics", []):
                if m["metric"] not in metric_order:
                    metric_order.append(m["metric"])
        for mname in metric_order:
            cells = {}
            for impl in impls:
                res = by.get((wl, impl))
                if res is None:
                    continue
                m = next((m for m in res.get("metrics", []) if m["metric"] == mname), None)
                cells[impl] = (res, m)
            base = {k: stats(_samples(cells[k][1], clock)) if k in cells and cells[k][1] else None
                    for k in ("upstream", "pure")}
            for impl in impls:
                if impl not in cells:
                    continue
                res, m = cells[impl]
                if m is None and res.get("status") == "ok":
                    continue  # this implementation has no such metric (e.g. torch's import)
                unit = m["unit"] if m else None
                ratios = m is not None and m.get("ratios", True)
                st = stats(_samples(m, clock)) if m else None
                if m is None:
                    status = res.get("reason") or "not measured"
                elif m.get("error"):
                    status = m["error"].split(":")[0]
                else:
                    status = None
                med = st["median"] if st and ratios else None
                rows.append({
                    "workload": wl, "metric": mname, "impl": impl, "unit": unit,
                    "stats": st, "status": status, "note": m.get("note", "") if m else "",
                    "error": m.get("error") if m else res.get("reason"),
                    "vs_upstream": ratio(base["upstream"]["median"] if base["upstream"] else None,
                                         med, unit) if impl != "upstream" else None,
                    "vs_pure": ratio(base["pure"]["median"] if base["pure"] else None, med, unit)
                    if impl != "pure" else None,
                })
    return rows


def row_cells(row):
    unit, st = row["unit"], row["stats"]
    what = f"{row['workload']} {row['metric']}"
    if unit in ("ns/node", "B/node"):
        what += " (/node)"
    if st is None:
        return [what, row["impl"], row["status"] or "—", "", "", ""]
    rng = f"{fmt_value(st['min'], unit)} – {fmt_value(st['max'], unit)}" if st["n"] > 1 else "(1 run)"
    return [what, row["impl"], fmt_value(st["median"], unit), rng,
            fmt_ratio(row["vs_upstream"]), fmt_ratio(row["vs_pure"])]


HEADERS = ["benchmark", "implementation", "median", "min – max", "vs upstream", "vs pure"]


def text_table(rows):
    cells = [row_cells(r) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(HEADERS)]
    out = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)),
           "  ".join("-" * w for w in widths)]
    prev = None
    for r, c in zip(rows, cells):
        if prev is not None and (r["workload"], r["metric"]) != prev:
            out.append("")
        prev = (r["workload"], r["metric"])
        out.append("  ".join(x.ljust(w) if i < 2 else x.rjust(w)
                             for i, (x, w) in enumerate(zip(c, widths))))
    return "\n".join(out)


def markdown_table(rows):
    out = ["| " + " | ".join(HEADERS) + " |",
           "|" + "|".join(["---", "---", "---:", "---:", "---:", "---:"]) + "|"]
    for c in (row_cells(r) for r in rows):
        out.append("| " + " | ".join(x.replace("|", "\\|") for x in c) + " |")
    return "\n".join(out)


# ---------------------------------------------------------------- targets

def _median(rows, wl, metric, impl):
    for r in rows:
        if (r["workload"], r["metric"], r["impl"]) == (wl, metric, impl) and r["stats"]:
            return r["stats"]["median"]
    return None


def evaluate_targets(rows, arena_node_bytes=None):
    """The project's targets (issues 2 and 3), each met / NOT met / n/a, with the figure."""
    med = lambda wl, m, impl: _median(rows, wl, m, impl)  # noqa: E731
    out = []

    def absolute(name, value, limit, unit):
        if value is None:
            out.append({"target": name, "status": "n/a", "measured": "not measured"})
        else:
            out.append({"target": name, "status": "met" if value <= limit else "NOT met",
                        "measured": f"{fmt_value(value, unit)}", "value": value})

    def speedup(name, wl, m, need, versus="upstream"):
        base, ours = med(wl, m, versus), med(wl, m, "compiled")
        if base is None or ours is None:
            miss = versus if base is None else "compiled"
            out.append({"target": name, "status": "n/a", "measured": f"no {miss} figure"})
            return
        r = base / ours
        out.append({"target": name, "status": "met" if r >= need else "NOT met",
                    "measured": fmt_ratio(r), "value": r})

    absolute("forward ≤ 80 ns per op node (graph200k, compiled)",
             med("graph200k", "forward", "compiled"), 80, "ns/node")
    absolute("backward ≤ 10 ns per node (graph200k, compiled)",
             med("graph200k", "backward", "compiled"), 10, "ns/node")
    speedup("test_more_ops graph ≥ 25× upstream", "more_ops", "build+backward", 25)
    speedup("200k-node forward ≥ 50× upstream", "graph200k", "forward", 50)
    speedup("200k-node backward ≥ 50× upstream", "graph200k", "backward", 50)
    speedup("demo step ≥ 300× upstream", "moons_step", "step", 300)
    speedup("MLP(64,[64,64,10]) sample ≥ 500× upstream", "mlp64_sample", "sample", 500)
    t_ours, t_torch = med("moons_step", "step", "compiled"), med("moons_step", "step", "torch")
    if t_ours is None or t_torch is None:
        out.append({"target": "demo step no slower than 2× PyTorch batched", "status": "n/a",
                    "measured": "no PyTorch figure" if t_torch is None else "no compiled figure"})
    else:
        out.append({"target": "demo step no slower than 2× PyTorch batched",
                    "status": "met" if t_ours <= 2 * t_torch else "NOT met",
                    "measured": f"{t_ours / t_torch:.2f}× PyTorch's time", "value": t_ours / t_torch})
    absolute("≤ 64 bytes per retained node (RSS, compiled)",
             med("memory", "retained (RSS)", "compiled"), 64, "B/node")
    if arena_node_bytes and out[-1].get("value") is not None:
        out[-1]["measured"] += f" (the node struct: {arena_node_bytes} B)"
    deep = [r for r in rows if r["workload"] == "deep_chain" and r["metric"] == "backward"
            and r["impl"] == "compiled"]
    if deep:
        ok = deep[0]["stats"] is not None
        out.append({"target": "10^6-deep chain backpropagates (compiled)",
                    "status": "met" if ok else "NOT met",
                    "measured": fmt_value(deep[0]["stats"]["median"], "s") if ok
                    else (deep[0]["error"] or "failed")})
    return out


def targets_text(targets, markdown):
    if markdown:
        lines = ["| target | status | measured |", "|---|---|---:|"]
        lines += [f"| {t['target']} | {t['status']} | {t['measured']} |" for t in targets]
        return "\n".join(lines)
    w = max(len(t["target"]) for t in targets)
    return "\n".join(f"  {t['target'].ljust(w)}  {t['status']:<8} {t['measured']}" for t in targets)


# ---------------------------------------------------------------- agreement of results

def compare_checks(results):
    """Same code, same seeds: compiled and pure must agree bit for bit, upstream within 1e-9."""
    notes = []
    by = {}
    for r in results:
        if r.get("check") is not None and r["impl"] in ("compiled", "pure", "upstream"):
            by.setdefault(r["workload"], {})[r["impl"]] = r["check"]
    for wl, checks in by.items():
        c, p, u = checks.get("compiled"), checks.get("pure"), checks.get("upstream")
        if c is not None and p is not None:
            n = min(len(c), len(p))  # adaptive repetitions: compare the common prefix
            if c[:n] != p[:n]:
                notes.append(f"{wl}: compiled and pure results differ: {c[:3]} vs {p[:3]}")
        for name, ours in (("compiled", c), ("pure", p)):
            if ours is not None and u is not None:
                n = min(len(ours), len(u))
                if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
                           for a, b in zip(ours[:n], u[:n])):
                    notes.append(f"{wl}: {name} and upstream results differ beyond 1e-9: "
                                 f"{ours[:3]} vs {u[:3]}")
    return notes


# ---------------------------------------------------------------- machine and versions

def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _loadavg():
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def machine_info():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                capture_output=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "cpu": cpu, "cpus": ncpu, "memory_bytes": mem, "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {"micrograd-compiled": _version("micrograd-compiled"), "Cython": _version("Cython"),
                     "numpy": _version("numpy"), "torch": _version("torch"),
                     "matplotlib": _version("matplotlib"), "upstream micrograd": UPSTREAM_VERSION},
        "git_commit": commit,
    }


def machine_line(m):
    mem = f", {m['memory_bytes'] / 2**30:.0f} GiB" if m["memory_bytes"] else ""
    v = m["versions"]
    extra = ", ".join(f"{k} {v[k]}" for k in ("Cython", "torch") if v.get(k))
    return (f"{m['cpu']} ({m['cpus']} CPUs{mem}), {m['platform']}, {m['python']}"
            + (f", {extra}" if extra else ""))


# ---------------------------------------------------------------- plot

def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:
        return ("--plot needs matplotlib, which is not installed: "
                "pip install matplotlib (or pip install -e '.[bench]'); no chart written")
    groups = []
    for r in rows:
        key = (r["workload"], r["metric"])
        if r["unit"] == "B" or (r["stats"] is None and not r["status"]):
            continue
        if r["stats"] is not None and r["stats"]["median"] <= 0:
            continue  # nothing to draw on a log scale
        if not groups or groups[-1][0] != key:
            groups.append((key, []))
        groups[-1][1].append(r)
    if not groups:
        return "nothing to plot"
    colors = {"compiled": "#1f77b4", "pure": "#ff7f0e", "upstream": "#7f7f7f", "torch": "#d62728"}
    ncol = 3
    nrow = math.ceil(len(groups) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 2.4 * nrow), squeeze=False)
    for ax, ((wl, metric), rs) in zip(axes.flat, groups):
        drawn = [r for r in rs if r["stats"]]
        if not drawn:
            ax.axis("off")
            continue
        unit = drawn[0]["unit"]
        scale, label = (1e3, "ms") if unit == "s" else (1.0, unit)
        if unit == "s" and max(r["stats"]["median"] for r in drawn) < 1e-3:
            scale, label = 1e6, "µs"
        names = [r["impl"] for r in rs]
        vals = [r["stats"]["median"] * scale if r["stats"] else 0.0 for r in rs]
        ax.barh(names, vals, color=[colors.get(n, "#555") for n in names])
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        lo = min(v for v in vals if v > 0)
        for y, r in enumerate(rs):
            if not r["stats"]:  # e.g. upstream's RecursionError
                ax.text(lo, y, f" {r['status']}", va="center", fontsize=7, color="#a00")
        ax.invert_yaxis()
        ax.set_title(f"{wl}: {metric}", fontsize=9)
        ax.set_xlabel(f"{label} (log scale, lower is better)", fontsize=8)
        ax.tick_params(labelsize=8)
        for y, v in enumerate(vals):
            if v > 0:
                ax.text(v, y, f" {v:.3g}", va="center", fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle("micrograd, compiled: benchmarks (medians)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Times micrograd (compiled and pure engines) against upstream micrograd "
                    f"{UPSTREAM_VERSION} and PyTorch. Run it from the repository root.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer repetitions (< 3 min on 2 cores)")
    mode.add_argument("--smoke", action="store_true",
                      help="tiny sizes, compiled + pure only: proves the suite runs (the tests use it)")
    p.add_argument("--json", metavar="FILE", help="write every measurement, the machine and versions")
    p.add_argument("--plot", metavar="FILE.png", help="write a log-scale bar chart (matplotlib)")
    p.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    p.add_argument("--only", metavar="NAME", action="append",
                   help=f"run only these workloads (repeat or comma-separate): {', '.join(WORKLOADS)}")
    p.add_argument("--impl", metavar="NAME", action="append",
                   help=f"run only these implementations (repeat or comma-separate): {', '.join(IMPLS)}")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="which time the table shows: wall (default) or this process's CPU time, "
                        "steadier when other work shares the machine (the JSON has both)")
    p.add_argument("--from-json", metavar="FILE",
                   help="run nothing: print the tables (and --plot) from an earlier --json file")
    p.add_argument("--no-install", action="store_true",
                   help="do not pip-install upstream micrograd if it is missing")
    args = p.parse_args(argv)

    def split(values, allowed, what):
        if not values:
            return None
        names = [n.strip() for v in values for n in v.split(",") if n.strip()]
        bad = [n for n in names if n not in allowed]
        if bad:
            p.error(f"unknown {what} {', '.join(bad)}; choose from {', '.join(allowed)}")
        return names

    args.only = split(args.only, WORKLOADS, "workload")
    args.impl = split(args.impl, IMPLS, "implementation")
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    return args


def run_suite(args, log):
    """Runs the jobs: (results, implementations, missing implementations with why, machine, seconds)."""
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        log("note: --plot needs matplotlib (pip install matplotlib); the chart will be skipped")
    wanted = args.impl or (["compiled", "pure"] if args.mode == "smoke" else IMPLS)
    impls, missing = [], {}
    for impl in wanted:
        if impl == "compiled" and not compiled_built():
            missing[impl] = "compiled engine not built (run `pip install -e .` in the repo root)"
        elif impl == "upstream":
            ok, msg = ensure_upstream(allow_install=not args.no_install and args.mode != "smoke",
                                      log=log)
            if ok:
                impls.append(impl)
            else:
                missing[impl] = msg
            log(msg)
        elif impl == "torch" and importlib.util.find_spec("torch") is None:
            missing[impl] = "PyTorch is not installed (pip install torch): no PyTorch column"
        else:
            impls.append(impl)
    impls = [i for i in IMPLS if i in impls]
    workloads = [w for w in WORKLOADS if not args.only or w in args.only]
    jobs = [(wl, impl) for wl in workloads for impl in impls
            if not (impl == "torch" and wl in TORCH_SKIPS[args.mode])]
    machine = machine_info()
    log(f"benchmarks ({args.mode}): {len(jobs)} jobs, implementations: {', '.join(impls) or 'none'}")
    for impl, why in missing.items():
        log(f"  {impl}: {why}")

    results = []
    load_before = _loadavg()
    t_start = time.perf_counter()
    for i, (wl, impl) in enumerate(jobs, 1):
        print(f"[{i:2d}/{len(jobs)}] {wl:<13} {impl:<9}", end="", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        res = run_job(impl, wl, args.mode)
        dt = time.perf_counter() - t0
        tail = "" if res.get("status") == "ok" else f"  ({res.get('status')}: {res.get('reason')})"
        print(f" {dt:6.1f} s{tail}", file=sys.stderr, flush=True)
        res["wall_seconds"] = dt
        results.append(res)
    total = time.perf_counter() - t_start
    machine["loadavg_before_after"] = [load_before, _loadavg()]
    log(f"done in {total:.0f} s")
    return results, impls, missing, machine, total


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if args.from_json:
        doc = json.loads(Path(args.from_json).read_text())
        results, impls, missing, machine = (doc["results"], doc["implementations"],
                                            doc["missing"], doc["machine"])
        total, args.mode, date = doc["wall_seconds"], doc["mode"], doc["date"]
    else:
        results, impls, missing, machine, total = run_suite(args, log)
        date = datetime.datetime.now().isoformat(timespec="seconds")

    rows = build_rows(results, impls, args.clock)
    arena = next((r.get("info", {}).get("arena") for r in results
                  if r["impl"] == "compiled" and r["workload"] == "memory"), None)
    targets = evaluate_targets(rows, arena.get("node_bytes") if arena else None)
    mismatches = compare_checks(results)
    engines = sorted({r.get("engine") for r in results if r.get("engine")})
    gc_state = next((r["gc"] for r in results if "gc" in r), None)
    gc_line = ("cyclic GC: left enabled as users have it" +
               (f" (thresholds {tuple(gc_state['threshold'])})" if gc_state else "") +
               "; gc.collect() runs between timed repetitions, never inside one, except in the "
               "MLP(64) sample's training loop, whose steps run back to back with the GC as it "
               "comes (its 'after gc.collect()' row is the same step with a collection before each)")
    md = args.markdown
    cmd = ("python -m benchmarks" + ("" if args.mode == "full" else f" --{args.mode}")
           + ("" if args.clock == "wall" else f" --clock {args.clock}"))

    out = []
    if md:
        out.append(f"`{cmd}` on {machine_line(machine)}, {date[:10]}; commit "
                   f"{machine['git_commit']}. Medians of {args.clock} time; ratios are times faster "
                   f"(or bytes smaller) than upstream micrograd {UPSTREAM_VERSION} / our pure-Python "
                   "engine in the same run.\n")
        out.append(markdown_table(rows))
        out.append("")
        out.append(targets_text(targets, True))
    else:
        out.append(f"machine: {machine_line(machine)}")
        out.append(f"mode: {args.mode}; clock: {args.clock} time; {gc_line}")
        out.append("ratios: how many times faster (or smaller per node) than upstream micrograd "
                   f"{UPSTREAM_VERSION} / the pure engine, same run")
        out.append("")
        out.append(text_table(rows))
        out.append("")
        out.append("targets:" + (" (smoke sizes: not meaningful)" if args.mode == "smoke" else ""))
        out.append(targets_text(targets, False))
    notes = [gc_line] if md else []
    notes += [f"{impl}: {why}" for impl, why in missing.items()]
    load = [x for x in machine.get("loadavg_before_after", []) if x is not None]
    if load and max(load) > 0.5 * (machine["cpus"] or 1):
        notes.append(f"the machine was busy (1-min load average {load[0]} before, {load[-1]} after):"
                     " other work competed for the CPUs, so wall times are noisy"
                     + ("; `--clock cpu` shows CPU time" if args.clock == "wall" else ""))
    if args.clock == "cpu":
        notes.append("CPU time is the whole process's: PyTorch's worker threads count too; "
                     "import times stay wall time")
    notes += [f"{r['impl']} {r['workload']}: {r['status']}: {r.get('reason')}"
              for r in results if r.get("status") != "ok"]
    notes += mismatches
    if not mismatches and any(r.get("check") for r in results):
        notes.append("results agree: compiled == pure bit for bit, upstream within 1e-9 (where run)")
    out.append("")
    out.append("Notes:" if md else "notes:")
    out += [f"- {n}" if md else f"  - {n}" for n in notes or ["none"]]
    print("\n".join(out))

    if args.json:
        doc = {"command": cmd, "mode": args.mode, "date": date, "clock": args.clock,
               "machine": machine, "engines": engines, "gc": gc_state, "method": gc_line,
               "implementations": impls, "missing": missing, "wall_seconds": total,
               "descriptions": DESCRIPTIONS, "results": results,
               "rows": rows, "targets": targets, "mismatches": mismatches}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        log(f"wrote {args.json}")
    if args.plot:
        err = plot(rows, args.plot)
        log(err if err else f"wrote {args.plot}")
    return 0
