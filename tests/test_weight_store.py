"""A layer's weights as the kernels see them: rows of consecutive nodes and runs of parameters.

The compiled engine sums, steps and clears a weight by stepping through consecutive nodes when
a row's weights (or an optimizer's parameters) were made one after another, as a Neuron's are,
and through pointers otherwise. Every way a weight can be read or written must give the pure
engine's bits on both paths: data and grad read and set, optimizer steps, zero_grad,
re-initialisation, rows edited in place, a weight shared by two layers or used outside any
layer, a weight whose handle the user dropped, state_dict, load_state_dict and pickling.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

finite = st.floats(min_value=-2.0, max_value=2.0, allow_nan=False, allow_infinity=False)
ACTS = ["relu", "tanh", "sigmoid", "linear"]


@st.composite
def programs(draw):
    nin = draw(st.integers(0, 7))
    sizes = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3))  # 9: a partial 4-row block
    act = draw(st.sampled_from(ACTS))
    # per row: made in a row (consecutive nodes) or with spare Values between its weights
    layout = [draw(st.lists(st.booleans(), min_size=n, max_size=n)) for n in sizes]
    seed = draw(st.integers(0, 2**32 - 1))
    ops = draw(st.lists(st.one_of(
        st.tuples(st.just("step"), st.sampled_from(["sgd", "momentum", "adam", "none"]),
                  st.booleans(), st.booleans()),
        st.tuples(st.just("data"), st.integers(0, 10**6), finite),
        st.tuples(st.just("grad"), st.integers(0, 10**6), finite),
        st.tuples(st.just("reinit"), st.integers(0, 10**6), finite),
        st.tuples(st.just("replace"), st.integers(0, 10**6), st.integers(0, 10**6), finite,
                  st.booleans()),
        st.tuples(st.just("again"),),
        st.tuples(st.just("zero"), st.booleans()),
    ), min_size=1, max_size=10))
    return nin, sizes, act, layout, seed, ops


def _run(E, nin, sizes, act, layout, seed, ops):
    rng = random.Random(seed)
    spare = []  # kept alive, so the weights made between them are not consecutive nodes
    layers = []
    for i, (n, rows_layout) in enumerate(zip(sizes, layout)):
        k = [nin] + sizes
        ws, bs = [], []
        for consecutive in rows_layout:
            row = []
            for _ in range(k[i]):
                row.append(E.Value(rng.uniform(-1, 1)))
                if not consecutive:
                    spare.append(E.Value(0.5))
            ws.append(row)
            bs.append(E.Value(0.0))
        layers.append((ws, bs, E._rows(ws, bs)))
    outside = E.Value(rng.uniform(-1, 1))  # a parameter used by no layer

    def params():
        out = []
        for ws, bs, _ in layers:
            for row, b in zip(ws, bs):
                out += row + [b]
        return out + [outside]

    pk = E._pack(params())  # as an optimizer keeps it: the parameters when it was made
    n0 = len(pk)
    buf = array("d", bytes(8 * n0))
    m, v = array("d", bytes(8 * n0)), array("d", bytes(8 * n0))
    state = {"started": False, "t": 0, "loss": None}
    x = [rng.uniform(-1, 1) for _ in range(nin)]
    trace = []

    def pick(i):
        ps = params()
        return ps[i % len(ps)]

    for op in ops:
        kind = op[0]
        if kind == "step":
            _, opt, use_weight, as_values = op
            h = [E.Value(a) for a in x] if as_values else list(x)
            for j, (ws, bs, rows) in enumerate(layers):
                h = E._layer_rows(rows, h, act if j < len(layers) - 1 else "linear")
            loss = E._dot(E.Value(0.0), h, h) + outside * 0.25
            if use_weight and nin:  # a layer's weight also used outside the layer
                loss = loss + layers[0][0][0][0] * layers[0][0][-1][-1]
            E._zero_grad(pk)
            loss.backward()
            if opt == "sgd":
                E._sgd_step(pk, 0.05, 0.0, 0.0, buf, False)
            elif opt == "momentum":
                E._sgd_step(pk, 0.05, 0.9, 0.01, buf, state["started"])
                state["started"] = True
            elif opt == "adam":
                state["t"] += 1
                E._adam_step(pk, 0.01, 0.9, 0.999, 1e-8, 0.01, m, v, state["t"])
            state["loss"] = loss
            trace.append(loss.data)
        elif kind == "data":
            pick(op[1]).data = op[2]
        elif kind == "grad":
            pick(op[1]).grad = op[2]
        elif kind == "reinit":
            pick(op[1]).__init__(op[2])
        elif kind == "replace":
            # row[i] = another Value: a fresh one (the old handle is dropped unless the
            # optimizer's pack or an earlier graph holds it) or a weight of another row (shared)
            _, r, c, val, shared = op
            rows = [row for ws, _, _ in layers for row in ws if row]
            if rows:
                row = rows[r % len(rows)]
                row[c % len(row)] = pick(c) if shared else E.Value(val)
        elif kind == "again":
            # backward again over the last graph: it reaches the weights it was made with,
            # including those replaced since
            if state["loss"] is not None:
                state["loss"].backward()
        elif kind == "zero":
            E._zero_grad(params() if op[1] else pk)
        trace += [p.data for p in params()] + [p.grad for p in params()]
        trace += [p.data for p in pk] + [p.grad for p in pk]
    del spare
    return [float(t).hex() for t in trace]


@settings(max_examples=200, deadline=None)
@given(prog=programs())
def test_weights_read_and_written_alike(engines, prog):
    compiled, python = engines
    assert _run(compiled, *prog) == _run(python, *prog)


def _in_a_row(E, vals):
    # made one after another into consecutive slots of one slab: consecutive nodes for sure
    # (the arena may be fragmented by earlier tests: then fewer are)
    idx = [E._arena_index(v) for v in vals]
    return all(b == a + 1 and b >> 13 == a >> 13 for a, b in zip(idx, idx[1:]))


def test_layout_seen_by_the_kernels(engines):
    # the fast paths are taken where the nodes allow, and never where they do not
    E = engines[0]
    ws = [[E.Value(0.1 * i + j) for i in range(5)] for j in range(6)]
    spare = []
    odd = []
    for i in range(5):
        odd.append(E.Value(0.3 * i))
        spare.append(E.Value(0.0))  # between two weights: odd is never consecutive
    ws[4] = odd
    bs = [E.Value(0.0) for _ in ws]
    rows = E._rows(ws, bs)
    assert E._layout(rows) == (-1, -1)  # packed by the first call
    E._layer_rows(rows, [1.0] * 5, "relu")
    sure = sum(_in_a_row(E, row) for row in ws)
    assert sure <= E._layout(rows)[1] <= 5 and E._layout(rows)[0] == 6
    ws[0][2] = E.Value(9.0)  # row 0 no longer consecutive: packed again, seen
    out = E._layer_rows(rows, [1.0] * 5, "linear")
    assert E._layout(rows)[1] <= 4
    assert out[0].data == sum([0.0] + [w.data * 1.0 for w in ws[0]])
    assert E._layout(E._pack(odd)) == (5, 5)
    assert E._layout(E._pack([])) == (0, 0)
    assert E._layout(E._pack([ws[1][0], ws[1][0]])) == (2, 2)  # the same node twice: two runs
    if _in_a_row(E, ws[1]):
        assert E._layout(E._pack(ws[1])) == (5, 1)


def test_rows_kernel_matches_pointer_path(engines):
    # the same layer with its weights made in a row and scattered: the same bits
    E = engines[0]
    rng = random.Random(7)
    vals = [[rng.uniform(-1, 1) for _ in range(13)] for _ in range(7)]
    x = [rng.uniform(-1, 1) for _ in range(13)]
    results = []
    for scattered in (False, True):
        spare = []
        ws = []
        for row in vals:
            ws.append([])
            for a in row:
                ws[-1].append(E.Value(a))
                if scattered:
                    spare.append(E.Value(0.0))
        bs = [E.Value(0.25) for _ in ws]
        rows = E._rows(ws, bs)
        xs = [E.Value(a) for a in x]
        out = E._layer_rows(rows, xs, "tanh")
        if scattered:
            assert E._layout(rows)[1] == 0
        else:
            assert E._layout(rows)[1] >= sum(_in_a_row(E, row) for row in ws)
        loss = E._dot(E.Value(0.0), out, out)
        loss.backward()
        params = [w for row in ws for w in row] + bs
        E._sgd_step(params, 0.1, 0.0, 0.0, array("d"), False)
        results.append([loss.data] + [w.data for w in params] + [w.grad for w in params]
                       + [a.grad for a in xs])
    assert results[0] == results[1]


def test_a_layer_fed_its_own_weights(engines):
    # a weight that is also an input of its own row: its grad gets both terms, in the pure
    # engine's order, on the consecutive-nodes path as on the pointer path
    results = []
    for E in engines:
        rng = random.Random(11)
        ws = [[E.Value(rng.uniform(-1, 1)) for _ in range(6)] for _ in range(5)]
        bs = [E.Value(rng.uniform(-1, 1)) for _ in ws]
        xs = [ws[0][0], ws[1][3], E.Value(0.5), ws[0][5], ws[4][2], E.Value(-0.75)]
        out = E._layer_rows(E._rows(ws, bs), xs, "tanh")
        E._dot(E.Value(0.0), out, out).backward()
        results.append([w.grad for row in ws for w in row] + [b.grad for b in bs]
                       + [x.grad for x in xs] + [o.data for o in out])
    assert results[0] == results[1]


@st.composite
def wide_layers(draw):
    """Layers wide enough for backward's four-rows-at-once path, with the cases it must leave
    to the one-row path: an input twice, a weight or bias as an input, a row used twice,
    rows that overlap (shifted slices of one list), a bias shared by every row; and rows whose
    weights are not consecutive nodes (scattered, or two runs a row) and inputs that are not
    (spaced), which take the pointer loops instead of the array loops."""
    nin = draw(st.integers(0, 6) | st.integers(7, 40))
    nout = draw(st.integers(1, 13) | st.integers(14, 24))
    rows = draw(st.sampled_from(["own", "twice", "shifted", "scattered", "split"]))
    inputs = draw(st.lists(st.sampled_from(["fresh", "again", "weight", "bias"]),
                           min_size=nin, max_size=nin))
    spaced = draw(st.booleans())
    bias = draw(st.sampled_from(["own", "none", "shared"]))
    act = draw(st.sampled_from(ACTS))
    seed = draw(st.integers(0, 2**32 - 1))
    return nin, nout, rows, inputs, spaced, bias, act, seed


def _wide(E, nin, nout, rows, inputs, spaced, bias, act, seed):
    rng = random.Random(seed)
    spare = []
    if rows == "scattered":  # a spare node after each weight: no row is consecutive nodes
        flat = []
        for _ in range(nin * nout + nout + 3):
            flat.append(E.Value(rng.uniform(-1, 1)))
            spare.append(E.Value(0.0))
    else:
        flat = [E.Value(rng.uniform(-1, 1)) for _ in range(nin * nout + nout + 3)]
    if rows in ("own", "scattered"):
        ws = [flat[j * nin:(j + 1) * nin] for j in range(nout)]
    elif rows == "split":  # row j: the first half of its own run, then the second half of the
        h = nin // 2       # next row's (every weight still in one row only)
        ws = [flat[j * nin:j * nin + h] + flat[((j + 1) % nout) * nin + h:((j + 1) % nout + 1) * nin]
              for j in range(nout)]
    elif rows == "twice":  # every row listed twice: each weight in two rows
        half = [flat[j * nin:(j + 1) * nin] for j in range((nout + 1) // 2)]
        ws = [half[j // 2] for j in range(nout)]
    else:  # row j starts one weight after row j-1: the rows overlap
        ws = [flat[j:j + nin] for j in range(nout)]
    bs = ([E.Value(rng.uniform(-1, 1)) for _ in range(nout)] if bias == "own"
          else [E.Value(0.25)] * nout if bias == "shared" else None)
    xs = []
    for kind in inputs:
        if kind == "again" and xs:
            xs.append(xs[rng.randrange(len(xs))])
        elif kind == "weight" and nin:
            xs.append(ws[rng.randrange(nout)][rng.randrange(nin)])
        elif kind == "bias" and bs is not None:
            xs.append(bs[rng.randrange(nout)])
        else:
            xs.append(E.Value(rng.uniform(-1, 1)))
            if spaced:
                spare.append(E.Value(0.0))
    out = E._layer(ws, bs, xs, act)
    loss = E._dot(E.Value(0.0), out, [E.Value(rng.uniform(-1, 1)) for _ in out])
    loss.backward()
    params = flat + (list(bs) if bs is not None else [])
    return ([loss.data] + [p.grad for p in params] + [x.grad for x in xs]
            + [o.data for o in out])


@settings(max_examples=250, deadline=None)
@given(wide_layers())
def test_wide_layers_agree_bit_for_bit(engines, case):
    # the compiled engine runs four rows of an apart call at once; every case, apart or not,
    # gives the pure engine's bits
    results = [_wide(E, *case) for E in engines]
    assert results[0] == results[1]


def test_an_mlp_after_its_weights_change(engines):
    # w.data = ... and a re-initialised weight (Value.__init__ again): the four-row path reads
    # the new data, and a weight whose node became an op is no longer a plain leaf
    results = []
    for E in engines:
        rng = random.Random(5)
        ws = [[E.Value(rng.uniform(-1, 1)) for _ in range(5)] for _ in range(9)]
        bs = [E.Value(0.0) for _ in ws]
        rows = E._rows(ws, bs)
        xs = [E.Value(rng.uniform(-1, 1)) for _ in range(5)]
        got = []
        for k in range(3):
            if k == 1:
                ws[3][2].data = 0.75
            if k == 2:
                ws[6][1].__init__(-0.5)
            out = E._layer_rows(rows, xs, "tanh")
            for row in ws:
                for w in row:
                    w.grad = 0.0
            E._dot(E.Value(0.0), out, out).backward()
            got += [w.grad for row in ws for w in row] + [x.grad for x in xs]
        results.append(got)
    assert results[0] == results[1]


SCRIPT = textwrap.dedent("""
    import json, pickle, random, sys
    from micrograd import IMPLEMENTATION, MLP, Value, losses, optim
    out = {"engine": IMPLEMENTATION, "runs": []}
    def once(ps):  # a weight shared by two layers is one parameter of an optimizer
        seen = set()
        return [p for p in ps if not (id(p) in seen or seen.add(id(p)))]
    for seed in json.loads(sys.argv[1]):
        rng = random.Random(seed)
        random.seed(seed)
        model = MLP(5, [rng.randint(1, 9), rng.randint(1, 9), 3])
        extra = Value(0.5)  # a parameter outside any layer
        opt = (optim.SGD(model.parameters() + [extra], lr=0.05, momentum=rng.choice([0.0, 0.9]))
               if rng.random() < 0.5 else optim.Adam(model.parameters() + [extra], lr=0.01))
        X = [[rng.uniform(-1, 1) for _ in range(5)] for _ in range(4)]
        trace = []
        for step in range(6):
            what = rng.randrange(7)
            ps = model.parameters()
            w = ps[rng.randrange(len(ps))]
            if what == 0:
                w.data = rng.uniform(-1, 1)
            elif what == 1:
                w.__init__(rng.uniform(-1, 1))
            elif what == 2:  # a weight shared by the first and the last layer
                model.layers[-1].neurons[0].w[0] = model.layers[0].neurons[0].w[rng.randrange(5)]
            elif what == 3:  # the old weight's handle dropped (the optimizer still holds it)
                n = model.layers[1].neurons[rng.randrange(len(model.layers[1].neurons))]
                n.w[rng.randrange(len(n.w))] = Value(rng.uniform(-1, 1))
            elif what == 4:
                sd = model.state_dict()
                sd["layers.0.weight"][0][0] = rng.uniform(-1, 1)
                model.load_state_dict(sd)
            elif what == 5:
                model = pickle.loads(pickle.dumps(model))
                opt = optim.SGD(once(model.parameters()) + [extra], lr=0.05)
            else:
                w.grad = rng.uniform(-1, 1)
            scores = [model(row) for row in X]
            loss = losses.mse([s[0] for s in scores], [0.5, -0.5, 1.0, 0.0]) + extra * extra
            loss = loss + model.layers[0].neurons[0].w[1] * 0.5  # a weight outside its layer
            opt.zero_grad()
            loss.backward()
            trace += [loss.data.hex()] + [p.grad.hex() for p in model.parameters()]
            opt.step()
            trace += [p.data.hex() for p in model.parameters()]
            if step % 2:
                model.zero_grad()
            trace += [p.grad.hex() for p in model.parameters()]
            trace.append(json.dumps(model.state_dict()))
        out["runs"].append(trace)
    print(json.dumps(out))
""")


def _script(no_ext: bool, seeds) -> dict:
    env = dict(os.environ)
    env.pop("MICROGRAD_NO_EXTENSIONS", None)
    if no_ext:
        env["MICROGRAD_NO_EXTENSIONS"] = "1"
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(seeds)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@settings(max_examples=4, deadline=None)
@given(seeds=st.lists(st.integers(0, 2**32 - 1), min_size=4, max_size=4))
def test_nn_weights_alike_across_engines(engines, seeds):
    # nn, optim, state_dict, load_state_dict and pickling through each engine's own process
    compiled, python = _script(False, seeds), _script(True, seeds)
    assert (compiled["engine"], python["engine"]) == ("compiled", "python")
    assert compiled["runs"] == python["runs"]


def _crossing_row(E, nin):
    """nin Values made one after another whose nodes run from one slab into the next (the
    arena hands out the next slab when one is full), and the Values made on the way there."""
    made = [E.Value(0.0)]
    for _ in range(200_000):
        made.append(E.Value(0.0))
        if E._arena_index(made[-1]) >> 13 != E._arena_index(made[-2]) >> 13:
            break
    else:
        pytest.fail("no slab boundary met in 200000 nodes")
    row = made[-2:]
    while len(row) < nin:
        row.append(E.Value(0.0))
    return row, made


def test_the_array_loops_are_taken_and_agree(engines):
    # the kernels' array loops (rows of consecutive weights over inputs whose data are one
    # array) and their pointer loops (a row that crosses into the next slab, scattered rows,
    # spaced inputs) give the same bits as the pure engine, and each is taken where it should be
    E, P = engines
    rng = random.Random(5)
    nin, nout = 9, 11
    vals = [[rng.uniform(-1, 1) for _ in range(nin)] for _ in range(nout)]
    bvals = [rng.uniform(-1, 1) for _ in range(nout)]
    xvals = [rng.uniform(-1, 1) for _ in range(nin)]

    def run(V, layer, ws, xs_spaced):
        for row, data in zip(ws, vals):
            for w, d in zip(row, data):
                w.data = d
        bs = [V.Value(b) for b in bvals]
        keep = []
        xs = []
        for a in xvals:
            xs.append(V.Value(a))
            if xs_spaced:
                keep.append(V.Value(0.0))
        out = layer(ws, bs, xs, "tanh")
        loss = V._dot(V.Value(0.0), out, out)
        loss.backward()
        return out, [loss.data] + [w.grad for row in ws for w in row] + [b.grad for b in bs] \
            + [x.grad for x in xs]

    for case in ("plain", "crossing", "scattered", "spaced", "columns"):
        keep = []
        if case == "crossing":
            row, keep = _crossing_row(E, nin)
            ws = [[E.Value(0.0) for _ in range(nin)] for _ in range(nout)]
            ws[6] = row  # rows 4..7 run four at once in backward: one of them crosses
        elif case == "scattered":
            ws = []
            for _ in range(nout):
                ws.append([])
                for _ in range(nin):
                    ws[-1].append(E.Value(0.0))
                    keep.append(E.Value(0.0))
        elif case == "columns":  # a matrix's columns as rows: short runs out of order
            made = [[E.Value(0.0) for _ in range(nout)] for _ in range(nin)]
            ws = [[made[i][j] for i in range(nin)] for j in range(nout)]
        else:
            ws = [[E.Value(0.0) for _ in range(nin)] for _ in range(nout)]
        out, got = run(E, E._layer, ws, case == "spaced")
        apart, dense, contig = E._call_layout(out[0])
        assert apart == (case != "columns"), case  # (columns: one row at a time)
        if case == "plain":
            assert contig == nout or not all(_in_a_row(E, r) for r in ws)
        if case == "crossing":
            assert contig <= nout - 1
        if case == "scattered":
            assert contig == 0
        if case == "spaced":
            assert not dense
        pws = [[P.Value(0.0) for _ in range(nin)] for _ in range(nout)]
        _, want = run(P, P._layer, pws, False)
        assert got == want, case
