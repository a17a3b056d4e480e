"""Fused layer kernels: the shortcuts the compiled engine takes must not change what backward does."""
import gc

import pytest


def test_weight_made_a_user_op_after_the_layer_is_still_run(engine):
    # backward skips a fused node's weights while they are plain leaves; a leaf that becomes a
    # user-defined op later must be visited again
    V = engine.Value
    w, b, x = [V(0.5), V(-1.0)], V(0.1), [V(2.0), V(3.0)]
    out = engine._layer((w,), (b,), x, "linear")[0]
    called = []
    w[0]._backward = lambda: called.append(w[0].grad)
    out.backward()
    assert called == [2.0]
    assert (w[0].grad, w[1].grad, b.grad, x[0].grad, x[1].grad) == (2.0, 3.0, 1.0, 0.5, -1.0)


def test_error_in_a_later_neuron_gives_back_every_link(engine):
    V = engine.Value
    live = getattr(engine, "_live_nodes", lambda: -1)
    x = [V(1.0), V(2.0)]
    good, bad = [V(0.5), V(0.25)], [V(1.0), "w"]
    gc.collect()  # earlier tests' user-defined ops are cycles: settle them first
    base = live()
    with pytest.raises(TypeError):
        engine._layer((good, good, bad), (V(0.0), V(0.0), V(0.0)), x, "relu")
    gc.collect()
    assert live() == base
    # the inputs' counts are intact: a later layer over them builds, backprops and frees
    out = engine._layer((good,), (V(0.0),), x, "tanh")[0]
    out.backward()
    assert x[1].grad == pytest.approx(0.25 * (1 - out.data ** 2))
    del out
    assert live() == base


def test_labelled_inputs_survive_a_layer(engine):
    # an input with a label is pinned while a layer's nodes hold it, and let go after
    V = engine.Value
    x = [V(1.0, label="x0"), V(2.0, label="x1")]
    outs = engine._layer(([V(1.0), V(1.0)], [V(2.0), V(0.0)]), (V(0.0), V(0.0)), x, "linear")
    kids = {k.label for o in outs for k in o._prev}
    assert {"x0", "x1"} <= kids
    del outs
    gc.collect()
    assert [v.label for v in x] == ["x0", "x1"]


def test_layer_rows_see_weight_lists_edited_in_place(engine):
    # nn's cached plan packs the weights once; n.w[i] = ..., swaps and re-initialised Values
    # must all show in the next call, as they would reading the lists each time
    V = engine.Value
    w = [[V(0.5), V(-1.0)], [V(2.0), V(0.25)]]
    b = [V(0.1), V(-0.2)]
    rows = engine._rows(w, b)
    x = [1.0, 3.0]

    def fwd():
        return [o.data for o in engine._layer_rows(rows, x, "linear")]

    assert fwd() == [0.1 + 0.5 * 1.0 + -1.0 * 3.0, -0.2 + 2.0 * 1.0 + 0.25 * 3.0]
    w[0][1] = V(4.0)
    assert fwd()[0] == 0.1 + 0.5 * 1.0 + 4.0 * 3.0
    w[1][0], w[1][1] = w[1][1], w[1][0]
    assert fwd()[1] == -0.2 + 0.25 * 1.0 + 2.0 * 3.0
    w[0][0].__init__(-3.0)
    assert fwd()[0] == 0.1 + -3.0 * 1.0 + 4.0 * 3.0
    w[1].append(V(1.0))  # rows of unequal length: the count says which row expected what
    with pytest.raises(ValueError, match="expected 3 inputs, got 2"):
        fwd()


def test_layer_rows_backward_and_children(engine):
    V = engine.Value
    w = [[V(0.5), V(-1.0)], [V(2.0), V(0.25)]]
    b = [V(0.1), V(-0.2)]
    x = [V(1.0, label="x0"), V(3.0, label="x1")]
    outs = engine._layer_rows(engine._rows(w, b), x, "relu")
    dots = [next(iter(o._prev)) for o in outs]
    # b, the weights and the inputs, the same handles
    assert {id(k) for k in dots[1]._prev} == {id(b[1]), id(w[1][0]), id(w[1][1]), id(x[0]), id(x[1])}
    loss = outs[0] + outs[1]
    loss.backward()
    # relu(0.1 + 0.5 - 3) = 0: only the second neuron passes a gradient
    assert [v.grad for v in w[0] + w[1]] == [0.0, 0.0, 1.0, 3.0]
    assert [v.grad for v in x] == [2.0, 0.25]
    assert [v.grad for v in b] == [0.0, 1.0]


def test_a_dot_node_made_a_user_op_keeps_its_children(engine):
    V = engine.Value
    w, b, x = [V(0.5), V(-1.0)], V(0.1), [V(2.0), V(3.0)]
    out = engine._layer((w,), (b,), x, "linear")[0]
    before = sorted(k.data for k in out._prev)
    seen = []
    out._backward = lambda: seen.append(out.grad)
    del w, b, x  # only out holds its children now
    gc.collect()
    assert sorted(k.data for k in out._prev) == before
    (out * 2.0).backward()
    assert seen == [2.0]


def test_layer_blocks_are_given_back(engine):
    from micrograd.nn import MLP

    live = getattr(engine, "_live_nodes", None)
    if live is None:
        pytest.skip("the pure engine has no arena")
    gc.collect()
    base = live()
    model = MLP(3, [4, 4, 1])
    for _ in range(3):
        model([1.0, 2.0, 3.0]).backward()
    del model
    gc.collect()
    assert live() == base
