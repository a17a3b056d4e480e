"""From the workers' samples to rows: medians, ranges and ratios, and whether the implementations agreed."""
import math
import statistics


def stats(samples):
    if not samples:
        return None
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "n": len(samples)}


def ratio(base, this, unit):
    """How many times better `this` is than `base` (time or bytes per node: lower is better)."""
    if unit in ("B", "accuracy") or base is None or this is None or this <= 0 or base <= 0:
        return None
    return base / this


def _samples(m, clock):
    if m is None:
        return []
    if clock == "cpu" and m.get("cpu_samples") is not None:
        return m["cpu_samples"]
    return m["samples"]


def build_rows(results, workloads, impls, clock="wall"):
    """One row per (workload, metric, impl), in the order given, with ratios from the same run.

    vs_upstream, vs_pure, vs_torch: how many times faster (or smaller) than that implementation
    (below 1: slower); scaled: how a row's figure was scaled up from part of the work, or None.
    """
    by = {(r["workload"], r["impl"]): r for r in results}
    rows = []
    for wl in workloads:
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
                    for k in ("upstream", "pure", "torch")}
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
                    "vs_torch": ratio(base["torch"]["median"] if base["torch"] else None, med, unit)
                    if impl != "torch" else None,
                    "scaled": m.get("scaled") if m else None,
                    # the samples themselves, where a target pairs them step by step
                    "paired": list(_samples(m, clock)) if m and m.get("paired") else None,
                })
    return rows


def find_row(rows, workload, metric, impl):
    """The row of (workload, metric, impl), or None when that was not run."""
    return next((r for r in rows if (r["workload"], r["metric"], r["impl"]) == (workload, metric, impl)),
                None)


def median(rows, workload, metric, impl):
    """The median of (workload, metric, impl), or None when it has no figure."""
    for r in rows:
        if (r["workload"], r["metric"], r["impl"]) == (workload, metric, impl) and r["stats"]:
            return r["stats"]["median"]
    return None


def paired_ratio(rows, workload, metric, base, this):
    """The median over k of base's sample k / this's sample k, or None unless both rows hold
    paired samples of the same length (the same steps, so each ratio compares equal work)."""
    a, b = find_row(rows, workload, metric, base), find_row(rows, workload, metric, this)
    if a is None or b is None or not a.get("paired") or not b.get("paired"):
        return None
    xs, ys = a["paired"], b["paired"]
    if len(xs) != len(ys) or not xs or min(ys) <= 0:
        return None
    return statistics.median(x / y for x, y in zip(xs, ys))


def merge_rounds(rounds):
    """One result from several runs of the same script job (rounds interleaved with the other
    implementations' runs, so a slow spell of the machine falls on all of them alike).

    A paired metric's sample k becomes the median over the rounds of their sample k (its wall
    and its CPU time alike); other metrics keep every round's samples. The steps are seeded, so
    every round must give the same check (a list of losses: as far as both rounds ran): a round
    that does not is named in "round_mismatch".
    A round that failed makes the merged result that failure.
    """
    for r in rounds:
        if r.get("status", "ok") != "ok":
            return r
    first = rounds[0]
    if len(rounds) == 1:
        return first
    merged = dict(first, metrics=[], rounds=len(rounds))
    for k, m in enumerate(first["metrics"]):
        ms = [r["metrics"][k] for r in rounds]
        if m.get("paired"):
            def per_step(key):
                cols = [x[key] for x in ms]
                if any(c is None for c in cols) or len({len(c) for c in cols}) != 1:
                    return cols[0]
                return [statistics.median(step) for step in zip(*cols)]
            merged["metrics"].append(dict(m, samples=per_step("samples"),
                                          cpu_samples=per_step("cpu_samples")))
        else:
            cpu = [x["cpu_samples"] for x in ms]
            merged["metrics"].append(dict(m, samples=[v for x in ms for v in x["samples"]],
                                          cpu_samples=None if any(c is None for c in cpu)
                                          else [v for c in cpu for v in c]))
    def same(a, b):  # adaptive repetitions: a list of losses is compared as far as both ran
        if isinstance(a, list) and isinstance(b, list):
            n = min(len(a), len(b))
            return a[:n] == b[:n]
        return a == b
    bad = [i for i, r in enumerate(rounds) if not same(r.get("check"), first.get("check"))]
    if bad:
        merged["round_mismatch"] = bad
    return merged


def compare_checks(results):
    """Same code, same seeds: compiled and pure must agree bit for bit, upstream within 1e-9.

    PyTorch's check, where it has one (digits_epoch: the first batch's loss, from the same
    weights), must agree with ours within 1e-9; the MLP step's C floor's losses are ours.

    The baseline (this engine built from an earlier commit) runs the very same code: its losses
    must be compiled's bit for bit.

    The scalar scripts' own Value ("inline") must agree within 1e-12: its backward adds a node's
    gradient contributions in another order, so the last bits may differ. So must the script
    with micrograd.functional ("functional"); with optim.Adam as well ("functional-adam"), whose
    update rounds differently from the script's loop, within 1e-9 of the unchanged script.
    """
    notes = [f"{r['workload']} {r['impl']}: rounds {r['round_mismatch']} gave other results than "
             f"round 0 (the steps are seeded: they should not)" for r in results
             if r.get("round_mismatch")]
    by = {}
    first = {(r["workload"], r["impl"]): r["check"][0] for r in results if r.get("check")}
    for (wl, impl), loss in first.items():
        # PyTorch starts the digits job from the demo's weights: its first loss is ours
        ours = first.get((wl, "compiled"), first.get((wl, "pure")))
        if impl == "torch" and ours is not None and not math.isclose(loss, ours, rel_tol=1e-9):
            notes.append(f"{wl}: PyTorch's first loss {loss!r} is not ours ({ours!r}) within 1e-9")
    every = {(r["workload"], r["impl"]): r["check"] for r in results if r.get("check")}
    floor = every.get(("mlp64_sample", "floor"))
    ours = every.get(("mlp64_sample", "compiled"), every.get(("mlp64_sample", "pure")))
    if floor is not None and ours is not None:  # the C floor sums in the engine's order
        n = min(len(floor), len(ours))
        if floor[:n] != ours[:n]:
            notes.append(f"mlp64_sample: the C floor's losses are not ours: {floor[:3]} vs {ours[:3]}")
    for r in results:
        if r.get("check") is not None and r["impl"] in ("compiled", "baseline", "pure", "upstream",
                                                          "inline", "functional", "functional-adam"):
            by.setdefault(r["workload"], {})[r["impl"]] = r["check"]
    for wl, checks in by.items():
        c, p, u, i = (checks.get(k) for k in ("compiled", "pure", "upstream", "inline"))
        for name, other in (("pure", p), ("baseline", checks.get("baseline"))):
            if c is not None and other is not None:
                n = min(len(c), len(other))  # adaptive repetitions: compare the common prefix
                k = next((k for k in range(n) if c[k] != other[k]), None)
                if k is not None:
                    notes.append(f"{wl}: compiled and {name} results differ (first at step {k}): "
                                 f"{c[k:k + 3]} vs {other[k:k + 3]}")
        for name, ours in (("compiled", c), ("pure", p)):
            if ours is not None and u is not None:
                n = min(len(ours), len(u))
                if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
                           for a, b in zip(ours[:n], u[:n])):
                    notes.append(f"{wl}: {name} and upstream results differ beyond 1e-9: "
                                 f"{ours[:3]} vs {u[:3]}")
            if ours is not None and i is not None:
                bad = [k for k, (a, b) in enumerate(zip(ours, i)) if not math.isclose(a, b, rel_tol=1e-12)]
                if len(ours) != len(i) or bad:
                    notes.append(f"{wl}: {name} and the script's own Value differ beyond 1e-12 "
                                 f"(steps {bad[:5]}, of {len(i)}): {ours[:3]} vs {i[:3]}")
        base = c if c is not None else i
        for name, tol in (("functional", 1e-12), ("functional-adam", 1e-9)):
            ours = checks.get(name)
            if ours is not None and base is not None:
                bad = [k for k, (a, b) in enumerate(zip(ours, base)) if not math.isclose(a, b, rel_tol=tol)]
                if len(ours) != len(base) or bad:
                    notes.append(f"{wl}: {name} and the unchanged script differ beyond {tol:g} "
                                 f"(steps {bad[:5]}, of {len(base)}): {ours[:3]} vs {base[:3]}")
    return notes
