# cython: language_level=3
"""C-level declarations of the pricing kernels, for other Cython modules (``cimport core_ext._bsm``)."""

cdef enum StatusCode:
    STATUS_OK = 0
    STATUS_INVALID_INPUT = 1
    STATUS_BELOW_INTRINSIC = 2
    STATUS_ABOVE_MAXIMUM = 3
    STATUS_NO_CONVERGENCE = 4

cdef enum StyleCode:
    STYLE_EUROPEAN = 0
    STYLE_AMERICAN = 1

# Price and the seven Greeks in the public units (see Greeks).
cdef struct GreeksC:
    double price
    double delta
    double gamma
    double vega
    double theta
    double rho
    double vanna
    double charm

# Validated inputs only: spot, strike, vol > 0, t > 0, all finite; sign is +1 for a call, -1 for a put.
cdef GreeksC european_greeks(double sign, double spot, double strike, double t, double vol,
                             double r, double q) noexcept nogil

# Bjerksund-Stensland (2002) price and Greeks (same units); needs r >= 0. Returns 0, or -1 when the
# result is not finite in double precision (extreme inputs).
cdef int american_greeks(double sign, double spot, double strike, double t, double vol, double r,
                         double q, GreeksC* out) noexcept nogil


cdef class Greeks:
    cdef readonly double price
    cdef readonly double delta
    cdef readonly double gamma
    cdef readonly double vega
    cdef readonly double theta
    cdef readonly double rho
    cdef readonly double vanna
    cdef readonly double charm


cdef class GreeksArray:
    cdef readonly object price
    cdef readonly object delta
    cdef readonly object gamma
    cdef readonly object vega
    cdef readonly object theta
    cdef readonly object rho
    cdef readonly object vanna
    cdef readonly object charm
    cdef readonly object status
