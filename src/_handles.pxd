# What the Value type needs from C, defined in _handles.h: recycled handles and patched slots.
from cpython.object cimport PyObject, PyTypeObject


cdef extern from "_handles.h":
    PyObject* mg_value_alloc(PyTypeObject* t)   # a recycled handle (refcount 1), or NULL
    PyTypeObject* MG_TYPE(PyObject* o)          # Py_TYPE
    ctypedef int (*visitproc)(PyObject*, void*) noexcept
    void mg_install_traverse(PyTypeObject* t, int (*extra)(PyObject*, visitproc, void*) noexcept)
    void mg_install_dealloc(PyTypeObject* t, void (*release)(PyObject*) noexcept,
                            int (*light)(PyObject*) noexcept)
    int mg_install_dict(PyTypeObject* t, Py_ssize_t offset) except -1
    void mg_install_setattro(PyTypeObject* t, void (*attrs_set)(PyObject*) noexcept)
    void mg_install_vectorcall(PyTypeObject* t, object (*leaf)(double))
    int mg_hide_vtable(PyTypeObject* t) except -1
    int mg_has_attrs(PyObject* o)               # the instance dict holds an attribute
    int mg_no_dict(PyObject* o)                 # no instance dict was made
    object mg_attrs_copy(PyObject* o)           # a copy of the instance dict
