# ---------------------------------------------------------------------------------------------
# Numbers with Python float semantics (errors included).

cdef int _real(object x, double* out) except -1:
    """1 and *out set if x is a real number, 0 if it is not one; raises only on conversion.

    float, int and bool are read as they are; any other number, float and int subclasses
    included, is float(x), so a subclass's own __float__ is honoured (as the pure engine does)."""
    if PyFloat_CheckExact(x):
        out[0] = PyFloat_AS_DOUBLE(x)
        return 1
    if PyLong_CheckExact(x) or PyBool_Check(x):
        out[0] = PyLong_AsDouble(x)  # OverflowError for huge ints, as float(x)
        return 1
    if PyFloat_Check(x) or PyLong_Check(x):  # subclasses (numpy's float64...): numbers for sure
        out[0] = float(x)
        return 1
    if isinstance(x, (str, bytes)) or not isinstance(x, _numbers.Real):
        return 0
    out[0] = float(x)
    return 1


cdef double _num_other(object x, str what) except? -1.0:
    cdef double d
    if _real(x, &d):
        return d
    raise TypeError(f"{what} must be a real number, not {type(x).__name__!r}")


cdef inline double _num(object x, str what) except? -1.0:
    if PyFloat_CheckExact(x):  # the common case, without a call
        return PyFloat_AS_DOUBLE(x)
    return _num_other(x, what)


cdef inline bint _odd_integer(double y) noexcept:
    return isfinite(y) and fmod(fabs(y), 2.0) == 1.0


cdef double _fpow(double iv, double iw) except? -1.0:
    """iv ** iw exactly as Python's float does it; a complex result is a ValueError."""
    cdef bint negate = False
    cdef double ix
    if iw == 0.0:
        return 1.0
    if isnan(iv):
        return iv
    if isnan(iw):
        return 1.0 if iv == 1.0 else iw
    if isinf(iw):
        iv = fabs(iv)
        if iv == 1.0:
            return 1.0
        if (iw > 0.0) == (iv > 1.0):
            return fabs(iw)
        return 0.0
    if isinf(iv):
        if iw > 0.0:
            return iv if _odd_integer(iw) else fabs(iv)
        return copysign(0.0, iv) if _odd_integer(iw) else 0.0
    if iv == 0.0:
        if iw < 0.0:
            raise ZeroDivisionError("0.0 cannot be raised to a negative power")
        return iv if _odd_integer(iw) else 0.0
    if iv < 0.0:
        if iw != floor(iw):
            raise ValueError("negative number cannot be raised to a fractional power")
        iv = -iv
        negate = _odd_integer(iw)
    if iv == 1.0:
        return -1.0 if negate else 1.0
    ix = mg_pow(iv, iw)
    if negate:
        ix = -ix
    if isinf(ix):
        raise OverflowError("(34, 'Numerical result out of range')")
    return ix


cdef inline double _forward1(uint8_t op, double x) except? -1.0:
    """A one-child op's value at x (the op table's FWD), raising as Python's math does."""
    cdef double r
    cdef int err = mg_forward1(op, x, &r)
    if err == 0:
        return r
    return _math_error(err, op, x)


cdef double _math_error(int err, uint8_t op, double x) except? -1.0:
    # worded alike on both engines; Python's own words stay at the end for code that greps them
    name = MG_OP_TEXT[op].decode()
    if err == MG_RANGE:
        raise OverflowError(f"{name}({x!r}) is too large for a float (math range error)")
    raise ValueError(f"{name}({x!r}) is outside the domain of {name} (math domain error)")


cdef double _recip(double x) except? -1.0:
    """1 / x for a division: ZeroDivisionError as float division words it."""
    if x == 0.0:
        raise ZeroDivisionError("float division by zero")
    return _fpow(x, -1.0)
