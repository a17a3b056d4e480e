/* What the Value type needs from C: recycled handles, and its tp_dealloc / tp_traverse slots
 * patched after Cython made the type (handles.pxi installs them at module init). */
#ifndef MICROGRAD_HANDLES_H
#define MICROGRAD_HANDLES_H

#include <Python.h>

/* Recycled Value handles: a plain handle that dies is kept here (untracked, its object fields
 * still None) and handed out again by _wrap, skipping allocation and GC bookkeeping. */
#define MG_VFREE_CAP 1024
static PyObject *mg_vfree[MG_VFREE_CAP];
static int mg_nvfree = 0;

static PyObject *mg_value_alloc(PyTypeObject *t) {
    PyObject *o;
    if (mg_nvfree == 0) return NULL;
    o = mg_vfree[--mg_nvfree];
    return PyObject_Init(o, t);  /* refcount 1, not tracked by the GC */
}

#define MG_TYPE(o) (Py_TYPE((PyObject *)(o)))

/* tp_traverse: Cython's own, then the handle's extra references (the pins of its children) */
static traverseproc mg_orig_traverse = NULL;
static int (*mg_extra_traverse)(PyObject *, visitproc, void *) = NULL;

/* The instance dict: a raw field (value.pxi's _attrs) that Cython leaves NULL, made only when an
 * attribute is set. (A `cdef dict __dict__` is made by Cython's tp_new for every handle: a dict
 * allocated and freed per node, and no handle recyclable or untracked.) */
static Py_ssize_t mg_dict_offset = 0;
#define MG_DICT(o) ((PyObject **)((char *)(o) + mg_dict_offset))

static int mg_traverse(PyObject *o, visitproc visit, void *arg) {
    int r = mg_orig_traverse(o, visit, arg);
    if (r == 0 && *MG_DICT(o) != NULL) r = visit(*MG_DICT(o), arg);
    return r ? r : mg_extra_traverse(o, visit, arg);
}

static inquiry mg_orig_clear = NULL;

static int mg_clear(PyObject *o) {
    Py_CLEAR(*MG_DICT(o));
    return mg_orig_clear(o);
}

static PyGetSetDef mg_dict_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL}, {NULL}};

/* after PyType_Ready: the dict's offset, its __dict__ descriptor, and tp_clear for it */
static int mg_install_dict(PyTypeObject *t, Py_ssize_t offset) {
    PyObject *descr;
    if (mg_dict_offset != 0) return 0;
    descr = PyDescr_NewGetSet(t, mg_dict_getset);
    if (descr == NULL) return -1;
    if (PyDict_SetItemString(t->tp_dict, "__dict__", descr) < 0) { Py_DECREF(descr); return -1; }
    Py_DECREF(descr);
    mg_dict_offset = offset;
    t->tp_dictoffset = offset;
    mg_orig_clear = t->tp_clear;
    t->tp_clear = mg_clear;
    PyType_Modified(t);
    return 0;
}

/* (o is a Value or a subclass instance: every one has the dict field at mg_dict_offset) */
static int mg_has_attrs(PyObject *o) {
    PyObject *d = *MG_DICT(o);
    return d != NULL && PyDict_GET_SIZE(d) != 0;
}

static int mg_no_dict(PyObject *o) { return *MG_DICT(o) == NULL; }

/* a copy of the instance dict (call only when mg_has_attrs) */
static PyObject *mg_attrs_copy(PyObject *o) { return PyDict_Copy(*MG_DICT(o)); }

static void mg_install_traverse(PyTypeObject *t, int (*extra)(PyObject *, visitproc, void *)) {
    if (t->tp_traverse == mg_traverse) return;
    mg_orig_traverse = t->tp_traverse;
    mg_extra_traverse = extra;
    t->tp_traverse = mg_traverse;
}

/* Value's tp_dealloc: give the node back first, then Cython's own dealloc. (A __dealloc__
 * would make Cython save and restore the error state on every handle's death.) */
static destructor mg_orig_dealloc = NULL;
static void (*mg_release)(PyObject *) = NULL;
static PyTypeObject *mg_value_type = NULL;
static int (*mg_light)(PyObject *) = NULL;

static void mg_dealloc(PyObject *o) {
    PyObject_GC_UnTrack(o);  /* releasing may run Python code: no GC visit of a dying object */
    mg_release(o);
    if (Py_TYPE(o) == mg_value_type && mg_nvfree < MG_VFREE_CAP && mg_light(o)
            && *(PyObject **)((char *)o + mg_value_type->tp_weaklistoffset) == NULL) {
        mg_vfree[mg_nvfree++] = o;  /* recycled by _wrap */
        return;
    }
    Py_CLEAR(*MG_DICT(o));  /* Cython's dealloc does not know the field holds a reference */
    mg_orig_dealloc(o);
}

static void mg_install_dealloc(PyTypeObject *t, void (*release)(PyObject *),
                               int (*light)(PyObject *)) {
    if (t->tp_dealloc == mg_dealloc) return;
    mg_orig_dealloc = t->tp_dealloc;
    mg_release = release;
    mg_light = light;
    mg_value_type = t;
    t->tp_dealloc = mg_dealloc;
}

/* tp_setattro: the generic one, then, once the instance dict holds an attribute, the handle
 * carries Python state (handles.pxi's _attrs_set: it must outlive its users, and the GC must
 * see the dict, which can refer back to the Value) */
static setattrofunc mg_orig_setattro = NULL;
static void (*mg_attrs_set)(PyObject *) = NULL;



static int mg_setattro(PyObject *o, PyObject *name, PyObject *value) {
    int r = mg_orig_setattro(o, name, value);
    if (r == 0 && value != NULL && mg_has_attrs(o))
        mg_attrs_set(o);
    return r;
}

static void mg_install_setattro(PyTypeObject *t, void (*attrs_set)(PyObject *)) {
    if (t->tp_setattro == mg_setattro) return;
    mg_orig_setattro = t->tp_setattro;
    mg_attrs_set = attrs_set;
    t->tp_setattro = mg_setattro;
}

/* Value(x) for one float or int and nothing more, the form input rows are made in: the leaf
 * and its handle made directly, as an op makes its result's, with no argument parsing. Any
 * other call (a subclass, more arguments, keywords, another type of data) is Cython's. */
static vectorcallfunc mg_orig_vectorcall = NULL;
static PyObject *(*mg_leaf)(double) = NULL;

static PyObject *mg_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames) {
    if (type == (PyObject *)mg_value_type && PyVectorcall_NARGS(nargsf) == 1 && kwnames == NULL) {
        PyObject *x = args[0];
        if (PyFloat_CheckExact(x)) return mg_leaf(PyFloat_AS_DOUBLE(x));
        if (PyLong_CheckExact(x)) {
            double d = PyLong_AsDouble(x);
            if (!(d == -1.0 && PyErr_Occurred())) return mg_leaf(d);
            PyErr_Clear();  /* too large: Cython's path raises the error Value() gives */
        }
    }
    return mg_orig_vectorcall(type, args, nargsf, kwnames);
}

/* (after mg_install_dealloc, which names the type) */
static void mg_install_vectorcall(PyTypeObject *t, PyObject *(*leaf)(double)) {
    if (t->tp_vectorcall == NULL || t->tp_vectorcall == mg_vectorcall || t != mg_value_type)
        return;  /* no vectorcall of Cython's to fall back on: calls keep the generic path */
    mg_orig_vectorcall = t->tp_vectorcall;
    mg_leaf = leaf;
    t->tp_vectorcall = mg_vectorcall;
}

/* Cython keeps a class's C method table in its dict as __pyx_vtable__, read only while cdef
   classes are made at import (and by other modules that cimport them: none cimports Value).
   Once the module is set up it is noise in help() and dir(), so it goes. */
static int mg_hide_vtable(PyTypeObject *t) {
    if (PyDict_DelItemString(t->tp_dict, "__pyx_vtable__") < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) return -1;
        PyErr_Clear();
    }
    PyType_Modified(t);
    return 0;
}

#endif
