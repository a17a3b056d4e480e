"""Ad-hoc attributes on a Value (v.note = ...), as upstream's Value allows: kept, pickled, collected."""
from __future__ import annotations

import copy
import gc
import pickle
import sys
import weakref

import pytest


def test_attribute_round_trip(engine):
    v = engine.Value(1.5)
    v.note = "x"
    v.count = 3
    assert (v.note, v.count) == ("x", 3)
    del v.count
    with pytest.raises(AttributeError):
        v.count
    with pytest.raises(AttributeError):
        engine.Value(2.0).missing


def test_attributes_outlive_the_users_handle_while_the_graph_holds_the_node(engine):
    v = engine.Value(2.0)
    v.note = "kept"
    y = v * 3.0 + 1.0
    del v
    gc.collect()
    (mul,) = y._prev - {c for c in y._prev if c._op == ""}
    leaf = next(c for c in mul._prev if c.data == 2.0)
    assert leaf.note == "kept"


def test_pickling_and_copying_keep_attributes(engine):
    v = engine.Value(0.25, label="w")
    v.grad = 2.0
    v.note = {"layer": 1}
    for w in (pickle.loads(pickle.dumps(v)), copy.deepcopy(v), copy.copy(v)):
        assert (w.data, w.grad, w.label, w.note) == (0.25, 2.0, "w", {"layer": 1})
    with pytest.raises(TypeError, match="dict of attributes"):
        engine.Value(1.0).__setstate__(5)


def test_cycles_through_attributes_labels_and_subclasses_are_collected(engine):
    V = engine.Value

    class Sub(V):
        pass

    refs = []
    a = V(3.0)
    a.me = a
    b = V(2.0)

    class Tag(str):  # a label is a str; a subclass can still hold the Value it names
        pass

    b.label = Tag("b")
    b.label.owner = b
    s = Sub(1.0)
    s.others = [s, a]
    y = a * b + s  # the nodes are also held by a parent while the cycles exist
    refs = [weakref.ref(o) for o in (a, b, s)]
    del a, b, s, y
    gc.collect()
    assert [r() for r in refs] == [None, None, None]


def test_plain_handles_make_no_dict_and_stay_out_of_the_gc(engine):
    # the dict is made when an attribute is set, never before: a plain handle is one allocation
    # (the compiled engine's nodes live in slabs) and, holding no Python state, is not GC-tracked
    if engine.IMPLEMENTATION != "compiled":
        pytest.skip("the pure engine's Value is a plain Python object")
    V = engine.Value
    keep = [V(1.0) for _ in range(100)]  # warm: slabs, freelists
    gc.collect()
    before = sys.getallocatedblocks()
    keep = [V(float(i)) for i in range(10_000)]
    keep += [v * 2.0 for v in keep[:5_000]]
    per_handle = (sys.getallocatedblocks() - before) / 15_000
    assert per_handle < 1.2, per_handle  # 2.0 when every handle carried an empty dict
    assert not any(gc.is_tracked(v) for v in keep)
    keep[0].note = "x"
    assert gc.is_tracked(keep[0]) and vars(keep[0]) == {"note": "x"}
