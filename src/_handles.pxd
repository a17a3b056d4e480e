# What the Value type needs from C, defined in _handles.h: recycled handles and patched slots.
from cpython.object cimport PyObject, PyTypeObject


cdef extern from "_handles.h":
    PyObject* mg_value_alloc(PyTypeObject* t)   # a recycled handle (refcount 1), or NULL
    PyTypeObject* MG_TYPE(PyObject* o)          # Py_TYPE
    ctypedef int (*visitproc)(PyObject*, void*) noexcept
    void mg_install_traverse(PyTypeObject* t, int (*extra)(PyObject*, visitproc, void*) noexcept)
    void mg_install_dealloc(PyTypeObject* t, void (*release)(PyObject*) noexcept,
                            int (*light)(PyObject*) noexcept)
