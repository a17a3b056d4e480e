"""What a run prints: the table (text or markdown), the targets, the notes, and the bar chart."""
import math

HEADERS = ["benchmark", "implementation", "median", "min – max", "vs upstream", "vs pure"]
TORCH_HEADER = "vs torch"  # shown when PyTorch has a figure in the run


def headers(rows):
    """The table's columns: HEADERS, and "vs torch" when PyTorch has a figure in these rows."""
    torch = any(r["impl"] == "torch" and r["stats"] for r in rows)
    return HEADERS + [TORCH_HEADER] if torch else list(HEADERS)


def fmt_value(x, unit):
    if x is None:
        return "—"
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
            if abs(x) >= scale or name == "ns":
                v = x / scale
                return f"{v:.3g} {name}" if v < 100 else f"{v:.0f} {name}"
    if unit in ("ns/node", "ns/element"):
        return f"{x:.3g} ns" if x < 100 else f"{x:.0f} ns"
    if unit == "B/node":
        return f"{x:.0f} B" if abs(x) >= 100 else f"{x:.1f} B"
    if unit == "B":
        a = abs(x)
        for scale, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if a >= scale:
                return f"{x / scale:.3g} {name}"
        return f"{x:.0f} B"
    if unit == "accuracy":
        return f"{x:.3f}"
    return f"{x:.4g} {unit}"


def fmt_ratio(r):
    if r is None:
        return "—"
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    if r < 0.01:  # many times slower (e.g. upstream against PyTorch): two figures, not 0.00×
        return f"{r:.2g}×"
    return f"{r:.2f}×"


def row_cells(row, torch=False):
    """The row's cells under headers(); torch: with the "vs torch" column."""
    unit, st = row["unit"], row["stats"]
    what = f"{row['workload']} {row['metric']}"
    if unit in ("ns/node", "B/node"):
        what += " (/node)"
    elif unit == "ns/element":
        what += " (/element)"
    if st is None:
        return [what, row["impl"], row["status"] or "—", "", "", ""] + ([""] if torch else [])
    rng = f"{fmt_value(st['min'], unit)} – {fmt_value(st['max'], unit)}" if st["n"] > 1 else "(1 run)"
    median = fmt_value(st["median"], unit) + (" (scaled)" if row.get("scaled") else "")
    return ([what, row["impl"], median, rng, fmt_ratio(row["vs_upstream"]),
             fmt_ratio(row["vs_pure"])] + ([fmt_ratio(row.get("vs_torch"))] if torch else []))


def text_table(rows):
    heads = headers(rows)
    cells = [row_cells(r, len(heads) > len(HEADERS)) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(heads)]
    out = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)),
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
    heads = headers(rows)
    out = ["| " + " | ".join(heads) + " |",
           "|" + "|".join(["---", "---"] + ["---:"] * (len(heads) - 2)) + "|"]
    for c in (row_cells(r, len(heads) > len(HEADERS)) for r in rows):
        out.append("| " + " | ".join(x.replace("|", "\\|") for x in c) + " |")
    return "\n".join(out)


def targets_text(targets, markdown):
    if markdown:
        lines = ["| target | status | measured |", "|---|---|---:|"]
        lines += [f"| {t['target']} | {t['status']} | {t['measured']} |" for t in targets]
        return "\n".join(lines)
    w = max(len(t["target"]) for t in targets)
    return "\n".join(f"  {t['target'].ljust(w)}  {t['status']:<8} {t['measured']}" for t in targets)


def machine_line(m):
    mem = f", {m['memory_bytes'] / 2**30:.0f} GiB" if m["memory_bytes"] else ""
    v = m["versions"]
    extra = ", ".join(f"{k} {v[k]}" for k in ("Cython", "torch") if v.get(k))
    return (f"{m['cpu']} ({m['cpus']} CPUs{mem}), {m['platform']}, {m['python']}"
            + (f", {extra}" if extra else ""))


def method_line(gc_state):
    """How the garbage collector was treated, as the report and the JSON say it."""
    return ("cyclic GC: left enabled as users have it" +
            (f" (thresholds {tuple(gc_state['threshold'])})" if gc_state else "") +
            "; gc.collect() runs between timed repetitions, never inside one, except in the "
            "MLP(64) sample's training loop, whose steps run back to back with the GC as it "
            "comes (its 'after gc.collect()' row is the same step with a collection before each)")


def render(doc, markdown):
    """The whole printed report of a run, from the document --json writes."""
    machine, mode, clock = doc["machine"], doc["mode"], doc["clock"]
    upstream = machine["versions"]["upstream micrograd"]
    out = []
    if markdown:
        vs_torch = len(headers(doc["rows"])) > len(HEADERS)
        out.append(f"`{doc['command']}` on {machine_line(machine)}, {doc['date'][:10]}; commit "
                   f"{machine['git_commit']}. Medians of {clock} time; ratios are times faster "
                   f"(or bytes smaller) than upstream micrograd {upstream} / our pure-Python "
                   "engine" + (" / PyTorch (below 1×: slower)" if vs_torch else "")
                   + " in the same run.\n")
        out.append(markdown_table(doc["rows"]))
        out.append("")
        out.append(targets_text(doc["targets"], True))
    else:
        out.append(f"machine: {machine_line(machine)}")
        out.append(f"mode: {mode}; clock: {clock} time; {doc['method']}")
        vs_torch = len(headers(doc["rows"])) > len(HEADERS)
        out.append("ratios: how many times faster (or smaller per node) than upstream micrograd "
                   f"{upstream} / the pure engine" + (" / PyTorch (below 1×: slower)" if vs_torch
                                                      else "") + ", same run")
        out.append("")
        out.append(text_table(doc["rows"]))
        out.append("")
        out.append("targets:" + (" (smoke sizes: not meaningful)" if mode == "smoke" else ""))
        out.append(targets_text(doc["targets"], False))
    notes = [doc["method"]] if markdown else []
    notes += [f"{impl}: {why}" for impl, why in doc["missing"].items()]
    if machine.get("baseline"):
        b = machine["baseline"]
        notes.append(f"baseline: this repository's engine built from {b['rev']} ({b['commit'][:12]}) "
                     "in .baseline/, running the same workload code as compiled")
    load = [x for x in machine.get("loadavg_before_after", []) if x is not None]
    if load and max(load) > 0.5 * (machine["cpus"] or 1):
        notes.append(f"the machine was busy (1-min load average {load[0]} before, {load[-1]} after):"
                     " other work competed for the CPUs, so wall times are noisy"
                     + ("; `--clock cpu` shows CPU time" if clock == "wall" else ""))
    if clock == "cpu":
        notes.append("CPU time is the whole process's: PyTorch's worker threads count too; "
                     "import times stay wall time")
    costs = [r["clock_cost"] for r in doc["results"] if r.get("clock_cost")]
    if costs:
        mid = len(costs) // 2
        wall = sorted(c["wall"] for c in costs)[mid]
        cpu = sorted(c["cpu"] for c in costs)[mid]
        notes.append(f"each timed span is less the clocks' own cost, the median of "
                     f"{costs[0].get('spans', 'many')} empty spans measured in its job (over the "
                     f"jobs: {wall:.0f} ns wall, {cpu:.0f} ns CPU)")
    notes += [f"{r['impl']} {r['workload']} {r['metric']} is scaled: {r['scaled']}"
              for r in doc["rows"] if r.get("scaled") and r["stats"]]
    results = doc["results"]
    notes += [f"{r['impl']} {r['workload']}: {r['status']}: {r.get('reason')}"
              for r in results if r.get("status") != "ok"]
    rounds = {}
    for r in results:
        if r.get("rounds"):
            rounds.setdefault((r["workload"], r["rounds"]), []).append(r["impl"])
    said = []
    for (wl, n), who in sorted(rounds.items()):
        if any(m.get("paired") for r in results if r["workload"] == wl for m in r["metrics"]):
            said.append(f"{wl}: its implementations ran in {n} interleaved rounds (the pure engine "
                        "in one), step k's time the median of the rounds' step k")
        else:
            said.append(f"{wl}: {', '.join(who)} ran in {n} interleaved rounds (the others in one), "
                        "every round's samples pooled")
    if said:
        notes.append("; ".join(said))
    notes += doc["mismatches"]
    if not doc["mismatches"] and any(r.get("check") for r in results):
        baseline = any(r["impl"] == "baseline" and r.get("check") for r in results)
        also = " == baseline" if baseline else ""
        notes.append(f"results agree: compiled == pure{also} bit for bit, upstream within 1e-9 "
                     "(where run)")
    out.append("")
    out.append("Notes:" if markdown else "notes:")
    out += [f"- {n}" if markdown else f"  - {n}" for n in notes or ["none"]]
    return "\n".join(out)


def plot(rows, path):
    """A log-scale bar chart per measurement, written to path: None, or why nothing was written."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter
    except ImportError:
        return ("--plot needs matplotlib, which is not installed: "
                "pip install matplotlib (or pip install -e '.[bench]'); no chart written")
    groups = []
    for r in rows:
        key = (r["workload"], r["metric"])
        if r["unit"] in ("B", "accuracy") or (r["stats"] is None and not r["status"]):
            continue
        if r["stats"] is not None and r["stats"]["median"] <= 0:
            continue  # nothing to draw on a log scale
        if not groups or groups[-1][0] != key:
            groups.append((key, []))
        groups[-1][1].append(r)
    if not groups:
        return "nothing to plot"
    colors = {"compiled": "#1f77b4", "baseline": "#9467bd", "pure": "#ff7f0e", "upstream": "#7f7f7f",
              "torch": "#d62728", "inline": "#8c564b", "floor": "#2ca02c", "functional": "#17becf",
              "functional-adam": "#bcbd22"}
    ncol = min(3, len(groups))  # one workload: one panel, not a two-thirds blank figure
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
        lo = min(v for v in vals if v > 0)
        hi = max(vals)
        # whole decades, at least two: an autoscaled window inside one decade draws 6.8e3 vs
        # 8.2e3 like a 10x gap and may show no tick label at all; each decade is labelled
        d0, d1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi * 1.6))
        ax.set_xlim(10.0 ** d0, 10.0 ** max(d1, d0 + 2))
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.xaxis.set_major_formatter(LogFormatterSciNotation(base=10))
        ax.xaxis.set_minor_formatter(NullFormatter())
        for y, r in enumerate(rs):
            if not r["stats"]:  # e.g. upstream's RecursionError
                ax.text(lo, y, f" {r['status']}", va="center", fontsize=7, color="#a00")
        ax.invert_yaxis()
        ax.set_title(f"{wl}: {metric}", fontsize=9)
        ax.set_xlabel(f"{label} (log scale, lower is better)", fontsize=8)
        ax.tick_params(labelsize=8)
        for y, v in enumerate(vals):
            if v > 0:  # the value, and how many times the fastest bar's it is
                ax.text(v, y, f" {v:.3g}" + (f" ({v / lo:.3g}×)" if v != lo else ""),
                        va="center", fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle("micrograd, compiled: benchmarks (medians)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
