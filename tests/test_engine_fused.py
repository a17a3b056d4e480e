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
