"""Runs every workload on every implementation, each in its own process: `python -m benchmarks`."""
import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import random
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import report
from benchmarks._workloads import FLOOR_WORKLOADS, SCRIPT_WORKLOADS, SIZES
from benchmarks.stats import build_rows, compare_checks, merge_rounds
from benchmarks.targets import ISSUE15_BASELINE, evaluate_targets

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "benchmarks" / "_worker.py"
UPSTREAM_VERSION = "0.1.0"
UPSTREAM_DIR = ROOT / ".upstream" / f"micrograd-{UPSTREAM_VERSION}"
# baseline: this repository's engine as built from an earlier git revision, timed beside the
# current build in the same run (a speed-up is a ratio of one run's figures); one folder per commit
BASELINE_ROOT = ROOT / ".baseline"
GIT = "git"

# inline and floor are the scalar-script workloads' own baselines: the script run with the Value
# class it carries, and with a compiled class that records nothing (no engine can be faster);
# floor is also the MLP(64) step's limit: its arithmetic alone, C loops over dense arrays
# functional and functional-adam are the same script with the README's recipe applied, on the
# compiled engine: (b) micrograd.functional for its list ops, (c) and micrograd.optim.Adam too
IMPLS = ["compiled", "baseline", "pure", "upstream", "torch", "inline", "floor", "functional",
         "functional-adam"]
SCRIPT_IMPLS = ("inline", "floor", "functional", "functional-adam")
# the baseline runs the per-step training workloads, the ones a speed-up target is about
BASELINE_WORKLOADS = {"moons_step", "mlp64_sample"}
# which of their implementations run in interleaved rounds (the baseline's targets, the floor's distance)
ROUND_IMPLS = {"compiled", "baseline", "floor"}
WORKLOADS = ["more_ops", "graph200k", "deep_chain", "moons_step", "mlp64_sample", "digits_epoch",
             "memory", "import", "microgpt16", "microgpt32", "functional_ops"]
# ours alone: upstream and PyTorch have no micrograd.functional
OURS_ONLY = {"functional_ops"}
DESCRIPTIONS = {
    "more_ops": "upstream's test_more_ops graph, built + backpropagated",
    "graph200k": "2000 chains x 100 binary ops + a sum tree (~202k op nodes, longest path 111)",
    "deep_chain": "a chain of 10^6 binary ops: forward, backward, free",
    "moons_step": "upstream's demo step: MLP(2,[16,16,1]) on 100 moons points, hinge + L2, SGD",
    "mlp64_sample": "MLP(64,[64,64,10]) on one sample: forward + backward + SGD step",
    "digits_epoch": "`python -m micrograd.demo digits`'s default training: MLP(64,[64,64,10]) on "
                    "1438 8x8 digits, cross-entropy averaged over batches of 32, Adam; per epoch",
    "memory": "a graph kept alive only by its root: bytes per node, and what is left after del",
    "import": "`import micrograd` in a fresh interpreter",
    "microgpt16": "benchmarks/microgpt.py, a scalar-Value char GPT (n_embd 16, 1 layer, 4 heads): one training step",
    "microgpt32": "benchmarks/microgpt.py at n_embd 32, 2 layers, 4 heads: one training step",
    "functional_ops": "benchmarks/functional_ops.py: each micrograd.functional op per element "
                      "(forward + backward), nn.Layer per weight",
}
# Workloads PyTorch does not run, per mode: memory is not measured; one scalar tensor per node
# makes its 10^6-deep chain take about a minute, too long for --quick.
TORCH_SKIPS = {"smoke": {"memory"}, "quick": {"memory", "deep_chain"}, "full": {"memory"}}
# Per-job time limit, seconds: a hung worker must not hang the suite.
JOB_TIMEOUT = 1200
# micrograd/datasets.py by its path: importing the package would load an engine into this
# process, which only starts the jobs (and would warn here when no engine is built)
_datasets = runpy.run_path(str(ROOT / "micrograd" / "datasets.py"))
make_moons = _datasets["make_moons"]
_digits_cache = {}


# ---------------------------------------------------------------- implementations and jobs

def compiled_built():
    return any((ROOT / "micrograd").glob("_engine*.so")) or any((ROOT / "micrograd").glob("_engine*.pyd"))


def _shown(path):
    try:
        return path.relative_to(ROOT)
    except ValueError:
        return path


def strict_json(x):
    """x with every non-finite float as None: JSON has no Infinity or NaN (a "headroom" target's
    value is infinite when the floors alone exceed what its ratio allows)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: strict_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [strict_json(v) for v in x]
    return x


def plan_rounds(jobs, workloads, script_rounds, ratio_rounds):
    """The order the jobs run in: [((workload, impl), round, rounds), ...].

    The jobs a ratio target compares run in rounds, one job of each implementation per round,
    so that a slow spell of the machine falls on every implementation alike
    (stats.merge_rounds): a script workload's (script_rounds), and the per-step training
    workloads' compiled, baseline and floor jobs (ratio_rounds). The others (the pure engine, in
    no such target and 100-200x slower, upstream and PyTorch) run once, in the first round.
    """
    runs = []
    for wl in workloads:
        mine = [job for job in jobs if job[0] == wl]
        if wl in SCRIPT_WORKLOADS:
            again, n = {job for job in mine if job[1] != "pure"}, script_rounds
        elif wl in BASELINE_WORKLOADS:
            again, n = {job for job in mine if job[1] in ROUND_IMPLS}, ratio_rounds
        else:
            again, n = set(), 1
        if len(again) < 2 or n < 2:
            runs += [(job, 0, 1) for job in mine]
            continue
        runs += [(job, r, n if job in again else 1) for r in range(n)
                 for job in mine if r == 0 or job in again]
    return runs


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
        # offline, pip repeats one retry warning per attempt: each line once
        said = list(dict.fromkeys((r.stderr or r.stdout).strip().splitlines()))
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


def _git(*args, **kw):
    """`git -C ROOT args...`: the CompletedProcess; OSError when there is no git."""
    return subprocess.run([GIT, "-C", str(ROOT), *args], capture_output=True, timeout=120, **kw)


def _archive(sha, dest):
    """The source tree of commit `sha` into the folder dest: `git archive sha | tar -x -C dest`.
    None, or why not."""
    a = _git("archive", "--format=tar", sha)
    if a.returncode != 0:
        return "git archive failed: " + (a.stderr.decode(errors="replace").strip() or "no output")
    t = subprocess.run(["tar", "-x", "-C", str(dest)], input=a.stdout, capture_output=True,
                       timeout=120)
    if t.returncode != 0:
        return "tar -x failed: " + (t.stderr.decode(errors="replace").strip() or "no output")
    return None


def _build(src):
    """`python setup.py build_ext --inplace -q` in src, with this interpreter. None, or why not."""
    env = dict(os.environ)
    for var in ("MICROGRAD_NO_EXTENSIONS", "MICROGRAD_SANITIZE", "PYTHONPATH"):
        env.pop(var, None)  # a pure or sanitized "baseline" would not be the baseline
    r = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=src,
                       env=env, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        said = [ln for ln in (r.stderr or r.stdout).strip().splitlines() if ln.strip()]
        return f"the build failed (exit code {r.returncode}): " + (" | ".join(said[-2:]) or "no output")
    return None


def _built(folder):
    return any((folder / "micrograd").glob("_engine*.so")) or any((folder / "micrograd").glob("_engine*.pyd"))


def ensure_baseline(rev, log):
    """This repo's engine at git revision rev, built in .baseline/<sha>/: (folder or None, message).

    Built once per commit, then cached; never raises: without git, without the revision (a
    shallow clone, a tarball) or when the build fails, the message says why it is skipped.
    """
    skip = f"baseline {rev} is skipped, so it has no rows and no ratio: "
    try:
        r = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", text=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, skip + f"git is not available ({exc})"
    sha = r.stdout.strip()
    if r.returncode != 0 or not sha:
        said = r.stderr.strip().splitlines()  # e.g. not a git repository at all
        return None, skip + (f"{rev!r} is not a commit of this repository's git history (a "
                             "shallow clone or a tarball? `git fetch --unshallow` brings it)"
                             + (f"; git said: {said[-1]}" if said else ""))
    folder = BASELINE_ROOT / sha
    what = f"baseline: micrograd at {rev} ({sha[:12]})"
    if _built(folder):
        return folder, f"{what} from {_shown(folder)}/"
    log(f"building the baseline, micrograd at {rev} ({sha[:12]}), into {_shown(folder)}/ "
        "(first use; cached afterwards) ...")
    tmp = folder.with_name(sha + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        why = _archive(sha, tmp) or _build(tmp)
        if why is None and not _built(tmp):
            why = "the build made no micrograd/_engine extension"
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = f"{type(exc).__name__}: {exc}"
    if why is not None:
        shutil.rmtree(tmp, ignore_errors=True)
        return None, skip + why
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # only a complete build is ever cached
    return folder, f"{what} built into {_shown(folder)}/"


def job_env(impl, baseline_dir=None):
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
    if impl == "baseline":
        # the old tree's micrograd, and the current benchmarks/ (the worker's own folder)
        env["PYTHONPATH"] = env["MB_BASELINE_DIR"] = str(baseline_dir)
        return env, str(baseline_dir)
    env["PYTHONPATH"] = str(ROOT)  # the in-place build, whatever else is installed
    if impl == "pure":
        env["MICROGRAD_NO_EXTENSIONS"] = "1"
    return env, str(ROOT)


def job_input(workload, mode):
    """What a job's worker reads on its stdin: the data its workload needs, made here.

    Made once, in this process, so that every implementation trains on the very same points;
    upstream's job could not import our micrograd.datasets anyway.
    """
    if workload == "moons_step":
        return {"moons": make_moons(SIZES[mode]["moons_n"], noise=0.1, seed=1337)}
    if workload == "digits_epoch":
        return digits_input(SIZES[mode]["digits_n"])
    return {}


def digits_input(limit):
    """{"digits": [X, y]} (micrograd.datasets.load_digits; `limit` of them, the demo's --limit
    sample), or {"digits_missing": why} without scikit-learn. Loaded once per run."""
    if limit not in _digits_cache:
        try:
            X, y = _datasets["load_digits"]()
        except ImportError as exc:
            _digits_cache[limit] = {"digits_missing": str(exc)}
        else:
            if limit is not None and limit < len(X):
                keep = random.Random(1337).sample(range(len(X)), limit)  # the demo's --limit
                X, y = [X[i] for i in keep], [y[i] for i in keep]
            _digits_cache[limit] = {"digits": [X, y]}
    return _digits_cache[limit]


def run_job(impl, workload, mode, baseline_dir=None):
    env, cwd = job_env(impl, baseline_dir)
    cmd = [sys.executable, str(WORKER), impl, workload, mode]
    try:
        r = subprocess.run(cmd, env=env, cwd=cwd, input=json.dumps(job_input(workload, mode)),
                           capture_output=True, text=True, timeout=JOB_TIMEOUT)
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


# ---------------------------------------------------------------- command line

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
    p.add_argument("--baseline", metavar="REV", default=ISSUE15_BASELINE,
                   help="the git revision the baseline implementation is built from (default "
                        f"{ISSUE15_BASELINE}: the commit at which issue 15 was filed, the 'today' "
                        "of its 3x target); built once into .baseline/<sha>/, needs the git history")
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


def default_impls(mode):
    """The implementations a run without --impl tries: every one, but compiled + pure in smoke."""
    return ["compiled", "pure"] if mode == "smoke" else list(IMPLS)


def plan_jobs(workloads, impls, mode):
    """The (workload, impl) jobs a run makes of them: what each implementation can run."""
    return [(wl, impl) for wl in workloads for impl in impls
            if not (impl == "torch" and (wl in TORCH_SKIPS[mode] or wl in SCRIPT_WORKLOADS))
            and not (impl in SCRIPT_IMPLS and wl not in SCRIPT_WORKLOADS
                     and not (impl == "floor" and wl in FLOOR_WORKLOADS))
            and not (impl == "upstream" and wl in SCRIPT_WORKLOADS)
            and not (impl in ("upstream", "torch") and wl in OURS_ONLY)
            and not (impl == "baseline" and wl not in BASELINE_WORKLOADS)]


def run_suite(args, log):
    """Runs the jobs: (results, implementations, missing implementations with why, machine, seconds)."""
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        log("note: --plot needs matplotlib (pip install matplotlib); the chart will be skipped")
    wanted = args.impl or default_impls(args.mode)
    workloads = [w for w in WORKLOADS if not args.only or w in args.only]
    impls, missing, baseline_dir = [], {}, None
    for impl in wanted:
        if impl in ("compiled", "functional", "functional-adam") and not compiled_built():
            missing[impl] = "compiled engine not built (run `pip install -e .` in the repo root)"
        elif impl == "baseline" and not BASELINE_WORKLOADS & set(workloads):
            continue  # nothing for it to run: no build
        elif impl == "baseline":
            baseline_dir, msg = ensure_baseline(args.baseline, log)
            if baseline_dir is not None:
                impls.append(impl)
            else:
                missing[impl] = msg
            log(msg)
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
    jobs = plan_jobs(workloads, impls, args.mode)
    machine = machine_info()
    if baseline_dir is not None:
        machine["baseline"] = {"rev": args.baseline, "commit": baseline_dir.name}
    runs = plan_rounds(jobs, workloads, SIZES[args.mode]["gpt_rounds"],
                       SIZES[args.mode]["ratio_rounds"])
    log(f"benchmarks ({args.mode}): {len(jobs)} jobs, implementations: {', '.join(impls) or 'none'}"
        + ("; the ratio targets' jobs in interleaved rounds" if len(runs) > len(jobs) else ""))
    for impl, why in missing.items():
        log(f"  {impl}: {why}")

    done = {}
    load_before = _loadavg()
    t_start = time.perf_counter()
    for i, ((wl, impl), r, rounds) in enumerate(runs, 1):
        which = f" {r + 1}/{rounds}" if rounds > 1 else ""
        print(f"[{i:2d}/{len(runs)}] {wl:<13} {impl + which:<19}", end="", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        res = run_job(impl, wl, args.mode, baseline_dir)
        dt = time.perf_counter() - t0
        tail = "" if res.get("status") == "ok" else f"  ({res.get('status')}: {res.get('reason')})"
        print(f" {dt:6.1f} s{tail}", file=sys.stderr, flush=True)
        res["wall_seconds"] = dt
        done.setdefault((wl, impl), []).append(res)
    results = []
    for job in jobs:
        res = merge_rounds(done[job])
        res["wall_seconds"] = sum(x["wall_seconds"] for x in done[job])
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

    rows = build_rows(results, WORKLOADS, impls, args.clock)
    arena = next((r.get("info", {}).get("arena") for r in results
                  if r["impl"] == "compiled" and r["workload"] == "memory"), None)
    gc_state = next((r["gc"] for r in results if "gc" in r), None)
    cmd = ("python -m benchmarks" + ("" if args.mode == "full" else f" --{args.mode}")
           + ("" if args.clock == "wall" else f" --clock {args.clock}"))
    doc = {"command": cmd, "mode": args.mode, "date": date, "clock": args.clock,
           "machine": machine, "engines": sorted({r.get("engine") for r in results if r.get("engine")}),
           "gc": gc_state, "method": report.method_line(gc_state),
           "implementations": impls, "missing": missing, "wall_seconds": total,
           "descriptions": DESCRIPTIONS, "results": results, "rows": rows,
           "targets": evaluate_targets(rows, arena.get("node_bytes") if arena else None,
                                       {r["workload"] for r in results},
                                       machine.get("baseline", {}).get("commit")),
           "mismatches": compare_checks(results)}
    print(report.render(doc, args.markdown))

    if args.json:
        Path(args.json).write_text(json.dumps(strict_json(doc), indent=1) + "\n")
        log(f"wrote {args.json}")
    if args.plot:
        err = report.plot(rows, args.plot)
        log(err if err else f"wrote {args.plot}")
    return 0
