# cython: freethreading_compatible = False
"""The compiled engine: Value handles over a node arena, iterative backward, fused nn kernels."""

# One extension module, one translation unit: the rooms below are included, not cimported, so
# the hot helpers stay inline across them (separate modules cost 6-9% on forward). Read them in
# this order; the C they stand on is in the headers each .pxd names.
#   arena.pxi      slabs, free bits, node new / link / release, giving pages back
#   tape.pxi       the op nodes in the order they were made: growth and compaction
#   numbers.pxi    Python float semantics in C: coercion, powers, math errors
#   handles.pxi    making op nodes and their Value handles, pins, the patched type slots
#   backward.pxi   backward(): the pass down the tape, user-defined ops, Ctrl-C
#   value.pxi      Value and no_grad: start here
#   kernels.pxi    layer rows and calls (micrograd.nn)
#   optim.pxi      parameter packs and the optimizer steps (micrograd.optim)
#   functional.pxi micrograd.functional: fused softmax / log_softmax / rmsnorm groups (_fused.h),
#                  the activations over a list, linear's kept packings
#   testhooks.pxi  introspection and test hooks

cimport cython
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact, PyFloat_Check
from cpython.long cimport PyLong_Check, PyLong_CheckExact, PyLong_AsDouble
from cpython.bool cimport PyBool_Check
from cpython.sequence cimport PySequence_Fast_ITEMS
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.number cimport PyNumber_Power
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawFree, PyMem_RawRealloc, PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.string cimport memcmp
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.math cimport pow, exp, log, tanh, fabs, floor, fmod, isnan, isinf, isfinite, sqrt, copysign
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t

from _ops cimport (
    MG_NARY, OP_LEAF, OP_ADD, OP_MUL, OP_ADDC, OP_MULC, OP_POWC, OP_POW, OP_RELU, OP_TANH,
    OP_EXP, OP_LOG, OP_SIGMOID, OP_SQRT, OP_DOT, OP_SOFTMAX, OP_LOGSOFTMAX, OP_RMSNORM, OP_FUSED,
    OP_LOCAL, OP_CUSTOM, OP_COUNT, MG_ARITY, MG_OP_TEXT, MG_OP_NAME,
    MG_OP_PUBLIC, MG_RANGE, MG_DOMAIN, mg_sigmoid, mg_pow, mg_forward1,
)
from _arena cimport (
    F_HEAVY, F_PINNED, F_INTEXP, F_WLEAVES, F_LATE, MG_SLAB_SHIFT, MG_SLAB_NODES,
    NodeC, MgRows, MgCall, MgGroup, ArenaC, ARENA, MG_CTZ64, mg_release_pages, mg_kids_new, mg_nkids,
    MG_HAS_ARRAY, mg_local_grads,
    mg_kid, MG_ROW, MG_CALL, MG_NODE, MG_GROUP, MG_IS_FOUT, MG_ROWS_CONTIG, mg_rows_size,
    mg_rows_contig, MG_GSTEP, MG_SLAB_BYTES, MG_NODE_BYTES, mg_dp, mg_gp, mg_slab_alloc,
    mg_call_size, mg_inputs_apart, mg_inputs_dense,
)
from _backward cimport MgScan, mg_local, mg_local_as, mg_scan, mg_fused_apply
from _kernels cimport mg_rows_dot, mg_rows_dot_contig, mg_rows_dot8_dense, MgRun, mg_runs_zero_grad, mg_runs_sgd, mg_runs_adam
from _handles cimport (mg_value_alloc, MG_TYPE, visitproc, mg_install_traverse, mg_install_dealloc,
    mg_install_setattro, mg_install_vectorcall, mg_install_dict, mg_has_attrs, mg_no_dict, mg_attrs_copy,
    mg_hide_vtable)

import gc as _gc
import numbers as _numbers
from time import monotonic as _monotonic

IMPLEMENTATION = "compiled"

cdef extern from "Python.h":
    void PyObject_GC_Track(object)
    void PyObject_GC_UnTrack(object)
    bint PyObject_GC_IsTracked(object)

include "arena.pxi"
include "tape.pxi"
include "numbers.pxi"
include "handles.pxi"
include "backward.pxi"
include "value.pxi"
include "kernels.pxi"
include "optim.pxi"
include "functional.pxi"
include "testhooks.pxi"

# ---------------------------------------------------------------------------------------------
# Module init

ARENA.limit = PY_SSIZE_T_MAX  # no limit (the test hook sets one)
ARENA.grad_enabled = 1
# the dict's offset first: the patched traverse and dealloc read it
_probe = Value.__new__(Value)
mg_install_dict(<PyTypeObject*>Value, <Py_ssize_t>(<char*>&(<Value>_probe)._attrs - <char*><PyObject*>_probe))
del _probe
mg_install_traverse(<PyTypeObject*>Value, _traverse_pins)
mg_install_dealloc(<PyTypeObject*>Value, _release_handle, _is_light)
mg_install_setattro(<PyTypeObject*>Value, _attrs_set)
mg_install_vectorcall(<PyTypeObject*>Value, _leaf)
mg_hide_vtable(<PyTypeObject*>Value)
_gc.callbacks.append(_after_gc)

#: The built-in ops a graph can show, from the op table: (name, _op text, children), children
#: -1 for n-ary ones. The pure engine lists the same (a test holds the two to it).
_OPS = tuple(
    (MG_OP_NAME[i].decode().lower(), MG_OP_TEXT[i].decode(),
     -1 if MG_ARITY[i] == MG_NARY else MG_ARITY[i])
    for i in range(OP_COUNT) if MG_OP_PUBLIC[i]
)
