"""Runs one workload on one implementation in this fresh process and prints its timings as JSON.

Started by benchmarks/runner.py as `python benchmarks/_worker.py IMPL WORKLOAD MODE`, with
PYTHONPATH and the working directory chosen so that `import micrograd` finds the right one:
this repo (compiled or pure, picked by MICROGRAD_NO_EXTENSIONS), this repo's source at an
earlier commit built in .baseline/<sha>/ ("baseline"), or upstream's private folder.
Its stdin holds a JSON object (the data the runner made for the workload, `{}` for most),
added to the mode's sizes.
"""
import gc
import json
import os
import subprocess
import sys
import traceback
import types
import warnings

from _workloads import (CLOCK_COST, CLOCK_SPANS, SCRIPT_WORKLOADS, SIZES, TAKES_VALUE, WORKLOADS,
                        Unavailable, metric, run_mlp_floor)


def load_micrograd(impl):
    """Import micrograd and prove it is the implementation the runner asked for."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import micrograd
        import micrograd.engine
    where = os.path.realpath(micrograd.__file__)
    if impl == "upstream":
        expect = os.path.realpath(os.environ["MB_UPSTREAM_DIR"])
        if not where.startswith(expect + os.sep):
            raise RuntimeError(f"upstream run imported micrograd from {where}, not {expect}")
        engine = "upstream"
    elif impl == "baseline":
        # the old build or nothing: the current tree, or its pure engine, would be no baseline
        expect = os.path.realpath(os.environ["MB_BASELINE_DIR"])
        if not where.startswith(expect + os.sep):
            raise RuntimeError(f"baseline run imported micrograd from {where}, not {expect}")
        engine = micrograd.engine.IMPLEMENTATION
        if engine != "compiled":
            why = "; ".join(str(w.message) for w in caught)
            raise RuntimeError(f"the baseline's micrograd.engine.IMPLEMENTATION is {engine!r}, "
                               "not 'compiled'" + (f" ({why})" if why else ""))
    else:
        engine = micrograd.engine.IMPLEMENTATION
        want = "compiled" if impl == "compiled" else "python"
        if engine != want:
            why = "; ".join(str(w.message) for w in caught)
            raise Unavailable(f"micrograd.engine.IMPLEMENTATION is {engine!r}, not {want!r}"
                              + (f" ({why})" if why else ""))
    impl_mod = getattr(micrograd.engine, "_impl", None)
    return types.SimpleNamespace(module=micrograd, Value=micrograd.engine.Value, nn=None,
                                 optim=None, upstream=impl == "upstream", engine=engine,
                                 file=where, live_nodes=getattr(impl_mod, "_live_nodes", None),
                                 arena_stats=getattr(impl_mod, "_arena_stats", None))


def need(mg, *names):
    """Import micrograd.nn / micrograd.optim on demand: they may not exist yet in this repo."""
    import importlib
    for name in names:
        try:
            setattr(mg, name, importlib.import_module(f"micrograd.{name}"))
        except ImportError as exc:
            raise Unavailable(f"micrograd.{name} is not available ({exc})") from None


def run_import(impl, P):
    """`import micrograd` (with its engine, as users import it) in fresh interpreters."""
    if impl == "torch":
        stmts = [("time", "import torch")]
    else:
        stmts = [("time", "import micrograd, micrograd.engine"),
                 ("time with nn", "import micrograd, micrograd.engine, micrograd.nn")]
    # Bytecode cached, as after `pip install` (which compiles it): a PYTHONDONTWRITEBYTECODE
    # environment would otherwise time the compiler. A private cache folder keeps the tree clean.
    import shutil
    import tempfile
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = cache = tempfile.mkdtemp(prefix="mg-bench-pycache-")
    metrics = []
    for name, stmt in stmts:
        code = ("import time; t0 = time.perf_counter(); " + stmt + "; "
                "t1 = time.perf_counter(); print(t1 - t0)")
        samples, error = [], None
        for i in range(P["import_reps"] + 1):  # the first one compiles .pyc files: warm-up
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env=env, cwd=os.getcwd())
            if r.returncode != 0:
                error = (r.stderr.strip().splitlines() or ["failed"])[-1]
                break
            if i:
                samples.append(float(r.stdout.strip().splitlines()[-1]))
        metrics.append(metric(name, "s", [] if error else samples, error=error,
                              note=f"`{stmt}`, a fresh interpreter each time, bytecode cached"))
    shutil.rmtree(cache, ignore_errors=True)
    return {"metrics": metrics, "check": None, "info": {}}


def main(argv):
    impl, workload, mode = argv
    P = dict(SIZES[mode], **json.loads(sys.stdin.read() or "{}"))
    out = {"impl": impl, "workload": workload, "mode": mode, "status": "ok",
           "gc": {"enabled": gc.isenabled(), "threshold": list(gc.get_threshold())},
           "clock_cost": {"wall": CLOCK_COST.wall, "cpu": CLOCK_COST.cpu, "spans": CLOCK_SPANS}}
    try:
        if workload == "import":
            if impl != "torch":
                out["engine"] = load_micrograd(impl).engine
            res = run_import(impl, P)
        elif impl == "floor" and workload == "mlp64_sample":
            import _floor_build
            try:
                floor = _floor_build.load()
            except _floor_build.FloorUnavailable as exc:
                raise Unavailable(str(exc)) from None
            out["engine"] = "C arithmetic, dense arrays"
            res = run_mlp_floor(floor, P)
        elif impl in ("inline", "floor"):
            # no micrograd at all: the script's own Value class, or the compiled float-only one
            if workload not in SCRIPT_WORKLOADS:
                raise Unavailable(f"{impl} runs only the scalar-script workloads")
            import microgpt
            if impl == "inline":
                out["engine"] = "the script's own Value"
                res = WORKLOADS[workload](microgpt.Value, P)
            else:
                import _floor_build
                try:
                    floor = _floor_build.load()
                except _floor_build.FloorUnavailable as exc:
                    raise Unavailable(str(exc)) from None
                out["engine"] = "float-only compiled class"
                res = WORKLOADS[workload](floor.Value, P)
        elif impl in ("functional", "functional-adam"):
            # the compiled engine, with the README's recipe applied to the script
            if workload not in SCRIPT_WORKLOADS:
                raise Unavailable(f"{impl} runs only the scalar-script workloads")
            mg = load_micrograd("compiled")
            out["engine"] = mg.engine
            res = WORKLOADS[workload](mg.Value, P, variant="b" if impl == "functional" else "c")
        elif impl == "torch":
            import torch
            import _torch_workloads
            out["engine"] = "torch " + torch.__version__
            out["torch_threads"] = torch.get_num_threads()
            if workload not in _torch_workloads.WORKLOADS:
                raise Unavailable("not measured for PyTorch")
            res = _torch_workloads.WORKLOADS[workload](P)
        else:
            mg = load_micrograd(impl)
            out["engine"] = mg.engine
            if mg.upstream and workload in SCRIPT_WORKLOADS:
                raise Unavailable("upstream micrograd 0.1.0's Value has no exp or log")
            out["micrograd_file"] = mg.file
            if workload in TAKES_VALUE:
                res = WORKLOADS[workload](mg.Value, P)
            else:
                if workload in ("moons_step", "mlp64_sample", "digits_epoch"):
                    need(mg, "nn")
                if workload == "mlp64_sample" and not mg.upstream:
                    need(mg, "optim")
                if workload == "digits_epoch" and not mg.upstream:
                    need(mg, "losses", "optim")
                if workload == "functional_ops":
                    if mg.upstream:
                        raise Unavailable("upstream micrograd 0.1.0 has no micrograd.functional")
                    need(mg, "functional")
                res = WORKLOADS[workload](mg, P)
        out.update(res)
    except Unavailable as exc:
        out.update(status="unavailable", reason=str(exc), metrics=[])
    except Exception as exc:  # reported in the table; the run goes on
        out.update(status="error", reason=f"{type(exc).__name__}: {exc}", metrics=[],
                   traceback=traceback.format_exc())
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
