# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: autotestdict=False
"""Black-Scholes-Merton and Bjerksund-Stensland (2002) pricing, Greeks and implied volatility kernels.

Theory of operation
-------------------
European options are priced in closed form (generalized BSM, cost of carry b = r - q). The array kernel runs
in blocks of BLOCK options: a validation pass writes a per-option flag, a branch-free pass computes all eight
outputs for every option of the block (gcc vectorizes it and calls glibc's SIMD maths, libmvec, because exp,
log, erfc and expm1 are declared below with ``simd("notinbranch")`` and the build passes -fno-math-errno and
-fno-trapping-math; no fast-math, so NaN and Inf keep their IEEE meaning), and a fix-up pass rewrites the
flagged options (invalid input, expiry now, non-finite result). Large outputs leave the block through
non-temporal stores into one recycled block of memory (see _OutputBlock).

Implied volatility (European) is solved in Jaeckel's normalised variables x = ln(F/K), beta = price/sqrt(FK),
mapped to an out-of-the-money call (x <= 0). A lane starts from an asymptotic guess (the lower asymptote
beta ~ (2 pi/sqrt 27)|x| N(-|x|/(sqrt(3) s))**3, the tangent at the inflection point s_c = sqrt(2|x|), or the
upper asymptote bmax - beta ~ (e^{x/2} + e^{-x/2}) N(-s/2)) and takes third-order Householder steps on one
of three objectives chosen once per lane (1/ln b below s_c, b in the middle, ln(bmax - b) near bmax, as in
"Let's Be Rational"), inside a bracket that every evaluation tightens. All lanes of a block step together
(vectorized) until every lane has converged. A price within a few ulps of a bound counts as at the bound.

American options use the Bjerksund-Stensland (2002) approximation, floored (as in QuantLib's engine) by the
European value and the exercise value. It is evaluated on second-order jets (value, first derivatives in
spot, vol, time and rate, and the second derivatives in spot-spot, spot-vol and spot-time), so the Greeks are
the exact derivatives of the 2002 price up to rounding, with no finite differences; each term is kept in
logs (a huge power times a tiny probability), which keeps the formula finite at low vol. The bivariate
normal uses Genz's (2004) Gauss-Legendre form of Drezner-Wesolowsky, exact to double precision for the fixed
correlation +/- sqrt(t1/T) = +/- 0.786 the formula needs. American implied vols come from Newton steps on
the log of the time value, bracketed, starting from the European implied vol (an upper bound).
"""

import enum

import numpy as np

cimport cython
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport asin, sin
from libc.stdint cimport int8_t, uint8_t
from libc.stdlib cimport free

cnp.import_array()

cdef extern from * nogil:
    """
    #include <math.h>
    #include <stdint.h>
    /* glibc ships SIMD variants of these in libmvec. Declaring them lets gcc vectorize loops that call
       them without -ffast-math; -fno-math-errno (setup.py) is the only relaxation needed. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    __attribute__((simd("notinbranch"))) extern double exp(double);
    __attribute__((simd("notinbranch"))) extern double log(double);
    __attribute__((simd("notinbranch"))) extern double erfc(double);
    __attribute__((simd("notinbranch"))) extern double expm1(double);
    #endif
    typedef double *__restrict__ tp_dout;
    typedef const double *__restrict__ tp_din;
    typedef const uint8_t *__restrict__ tp_bin;
    typedef uint8_t *__restrict__ tp_bout;
    #if defined(__SSE2__)
    #include <emmintrin.h>
    /* Copy a block out with streaming stores: a 1M-option call writes 64 MB that the caller reads
       later, and skipping the read-for-ownership of every line saves about 1.5 ns per option. */
    static inline void tp_stream_copy(double *__restrict__ dst, const double *__restrict__ src, Py_ssize_t n) {
        Py_ssize_t i = 0;
        if (n > 0 && ((uintptr_t)dst & 15) != 0) { dst[0] = src[0]; i = 1; }
        for (; i + 2 <= n; i += 2) _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
        for (; i < n; i++) dst[i] = src[i];
    }
    static inline void tp_stream_fence(void) { _mm_sfence(); }
    #else
    static inline void tp_stream_copy(double *__restrict__ dst, const double *__restrict__ src, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) dst[i] = src[i];
    }
    static inline void tp_stream_fence(void) {}
    #endif

    #include <stdlib.h>
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    /* 64-byte aligned (2 MB aligned and advised for transparent huge pages when large: one fault per 2 MB). */
    static void *tp_block_alloc(size_t nbytes) {
        void *p = NULL;
        size_t align = nbytes >= ((size_t)4 << 20) ? ((size_t)2 << 20) : 64;
        size_t rounded = (nbytes + align - 1) / align * align;
        if (posix_memalign(&p, align, rounded) != 0) return NULL;
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (align > 64) madvise(p, rounded, MADV_HUGEPAGE);
    #endif
        return p;
    }

    /* Bjerksund-Stensland's bivariate normals, batched: the 20 M(a, b; +/-rho) of one 2002 price are taken
       together so that their transcendentals (ln N of 80 arguments, the 400 quadrature exponentials, the
       logs and the ratios of the derivatives) run through libmvec's vector functions instead of scalar libm.
       Every select is a two-way ternary so gcc if-converts and vectorizes the lane loops. */
    #define TP_BVN_MAX 20
    /* ln N(x) below -30, where N itself underflows: the asymptotic series (rare, scalar) */
    static double tp_ln_ncdf_tail(double x) {
        double w = 1.0 / (x * x);
        return -0.5 * x * x - 0.91893853320467274178 - log(-x)
            + log(1.0 - w * (1.0 - 3.0 * w * (1.0 - 5.0 * w * (1.0 - 7.0 * w * (1.0 - 9.0 * w * (1.0 - 11.0 * w * (
                1.0 - 13.0 * w)))))));
    }
    /* exp of an argument clamped to [-700, 700]: libmvec's vector exp leaves for a scalar slow path on every
       lane that under- or overflows, and the values clamped here are negligible terms of a sum (or ratios of
       a term that is dropped) */
    static inline double tp_exp_clamped(double x, double lo, double hi) {
        x = x > lo ? x : lo;
        x = x < hi ? x : hi;
        return exp(x);
    }
    /* A clamp bound gcc cannot see as a constant: with a literal, it rewrites exp(c ? x : -700) as
       c ? exp(x) : e^-700 and calls the vector exp on the unclamped x after all (slow path included). */
    static inline double tp_opaque(double v) {
        __asm__("" : "+x"(v));
        return v;
    }
    /* ln N(x) and the inverse Mills ratio n(x)/N(x) for n <= TP_BVN_MAX lanes, vectorized */
    static void tp_ln_ncdf_batch(int n, const double *__restrict__ x, double *__restrict__ f0,
                                 double *__restrict__ mills) {
        const double lo = tp_opaque(-700.0), hi = tp_opaque(700.0), tail = tp_opaque(-30.0);
        for (int i = 0; i < n; i++) {
            double xc = x[i] > tail ? x[i] : tail;
            f0[i] = log(0.5 * erfc(-xc * 0.70710678118654752440));
        }
        for (int i = 0; i < n; i++)
            if (!(x[i] > -30.0)) f0[i] = tp_ln_ncdf_tail(x[i]);
        for (int i = 0; i < n; i++)
            mills[i] = tp_exp_clamped(-0.5 * x[i] * x[i] - 0.91893853320467274178 - f0[i], lo, hi);
    }
    /* log of n lanes, vectorized */
    static void tp_log_batch(int n, const double *__restrict__ x, double *__restrict__ out) {
        for (int i = 0; i < n; i++) out[i] = log(x[i]);
    }
    /* exp of n lanes, vectorized: the values of the 2002 price's terms. A term below e^-708 (1e-307, far
       below any price's resolution) is 0: libmvec would leave for its scalar slow path to form a subnormal.
       NaN stays NaN. */
    static void tp_exp_batch(int n, const double *__restrict__ x, double *__restrict__ out) {
        const double lo = tp_opaque(-708.0);
        for (int i = 0; i < n; i++) {
            double xc = x[i] < lo ? lo : x[i];
            double e = exp(xc);
            out[i] = x[i] < lo ? 0.0 : e;
        }
    }
    /* For n <= TP_BVN_MAX pairs (a, b) with correlation +rho (neg[i] = 0) or -rho (neg[i] = 1): lm = ln M,
       ra = M_a / M, rb = M_b / M, rab = M_ab / M. lm is -inf where M is below resolution. */
    static void tp_ln_bvn_batch(int n, const double *__restrict__ a, const double *__restrict__ b,
                                const double *__restrict__ neg, double rho, double rho_c,
                                const double *__restrict__ lna, const double *__restrict__ sn0,
                                const double *__restrict__ inv0, const double *__restrict__ sn1,
                                const double *__restrict__ inv1, double *__restrict__ lm,
                                double *__restrict__ ra, double *__restrict__ rb, double *__restrict__ rab) {
        double x[4 * TP_BVN_MAX], l[4 * TP_BVN_MAX], m[TP_BVN_MAX], acc[TP_BVN_MAX];
        const double lo = tp_opaque(-700.0), hi = tp_opaque(700.0), tail = tp_opaque(-30.0), one = tp_opaque(1.0);
        for (int i = 0; i < n; i++) {
            double r = neg[i] != 0.0 ? -rho : rho;
            x[i] = a[i];
            x[TP_BVN_MAX + i] = b[i];
            x[2 * TP_BVN_MAX + i] = (b[i] - r * a[i]) / rho_c;
            x[3 * TP_BVN_MAX + i] = (a[i] - r * b[i]) / rho_c;
        }
        for (int g = 0; g < 4; g++)
            for (int i = 0; i < n; i++) {
                /* clamped so that erfc never underflows into log(0), a slow path of libmvec's log */
                double xc = x[g * TP_BVN_MAX + i];
                xc = xc > tail ? xc : tail;
                l[g * TP_BVN_MAX + i] = log(0.5 * erfc(-xc * 0.70710678118654752440));
            }
        for (int g = 0; g < 4; g++)
            for (int i = 0; i < n; i++)
                if (!(x[g * TP_BVN_MAX + i] > -30.0)) l[g * TP_BVN_MAX + i] = tp_ln_ncdf_tail(x[g * TP_BVN_MAX + i]);
        /* node-major: every loop is elementwise over the n pairs, so the max and the sum vectorize across
           pairs (each pair still sums its nodes in order) */
        double ab[TP_BVN_MAX], hs[TP_BVN_MAX], e[20][TP_BVN_MAX];
        for (int i = 0; i < n; i++) {
            ab[i] = a[i] * b[i];
            hs[i] = 0.5 * (a[i] * a[i] + b[i] * b[i]);
            m[i] = l[i] + l[TP_BVN_MAX + i];
            acc[i] = 0.0;
        }
        for (int j = 0; j < 20; j++) {
            double s0 = sn0[j], s1 = sn1[j], v0 = inv0[j], v1 = inv1[j], lj = lna[j];
            for (int i = 0; i < n; i++) {
                double sn = neg[i] != 0.0 ? s1 : s0, inv = neg[i] != 0.0 ? v1 : v0;
                double ej = lj + (sn * ab[i] - hs[i]) * inv;
                e[j][i] = ej;
                m[i] = ej > m[i] ? ej : m[i];
            }
        }
        for (int j = 0; j < 20; j++)
            for (int i = 0; i < n; i++) acc[i] += tp_exp_clamped(e[j][i] - m[i], lo, hi);
        for (int i = 0; i < n; i++) {
            /* clamping is exact here: below -700, t is nil beside acc >= 1 (the largest node term is 1) */
            double t = tp_exp_clamped(l[i] + l[TP_BVN_MAX + i] - m[i], lo, hi);
            double s = neg[i] != 0.0 ? t - acc[i] : t + acc[i];
            /* the negative-correlation correction can cancel N(a) N(b) below resolution: M is negligible */
            /* (log of a stand-in 1 there: a negative argument would take libmvec's scalar slow path) */
            double sl = log(s > 0.0 ? s : one);
            lm[i] = s > 0.0 ? m[i] + sl : -INFINITY;
        }
        for (int i = 0; i < n; i++) {
            double lpa = -0.5 * a[i] * a[i] - 0.91893853320467274178;
            double lpb = -0.5 * b[i] * b[i] - 0.91893853320467274178;
            double ua = x[2 * TP_BVN_MAX + i];
            double lpua = -0.5 * ua * ua - 0.91893853320467274178;
            ra[i] = tp_exp_clamped(lpa + l[2 * TP_BVN_MAX + i] - lm[i], lo, hi);
            rb[i] = tp_exp_clamped(lpb + l[3 * TP_BVN_MAX + i] - lm[i], lo, hi);
            rab[i] = tp_exp_clamped(lpa + lpua - lm[i], lo, hi) / rho_c;
        }
    }

    /* Implied volatility, European: the per-block lane state and the set-up pass. The set-up is written in C
       because gcc only vectorizes it when every select is a plain two-way ternary; Cython's if/else output
       for the same code gets threaded into many-way merges that defeat if-conversion. */
    #define TP_IV_BLOCK 64
    typedef struct {
        double x[TP_IV_BLOCK];        /* ln(F/K) of the equivalent out-of-the-money call, <= 0 */
        double beta[TP_IV_BLOCK];     /* its normalised price, 0 < beta < bmax */
        double bmax[TP_IV_BLOCK];     /* e^{x/2}, the normalised price as vol -> infinity */
        double ln_beta[TP_IV_BLOCK];
        double ln_gap[TP_IV_BLOCK];   /* ln(bmax - beta) */
        double mode[TP_IV_BLOCK];     /* 0: objective 1/ln b, 1: b, 2: ln(bmax - b) */
        double s[TP_IV_BLOCK];        /* total standard deviation sigma sqrt(T), the unknown */
        double lo[TP_IV_BLOCK];       /* bracket */
        double hi[TP_IV_BLOCK];
        double active[TP_IV_BLOCK];   /* 1 while the lane iterates */
        double iters[TP_IV_BLOCK];
    } tp_iv_lanes;

    /* Acklam's rational approximation of N^{-1}(p), p <= 1 - 0.02425 (relative error < 1.2e-9): a starting
       point. p - 1/2 and ln p come from the caller, who has them without cancellation. */
    static inline double tp_inv_ncdf(double p, double pmh, double lnp) {
        double r = pmh * pmh;
        double central = (((((-3.969683028665376e+01 * r + 2.209460984245205e+02) * r - 2.759285104469687e+02) * r
                            + 1.383577518672690e+02) * r - 3.066479806614716e+01) * r + 2.506628277459239e+00) * pmh
            / (((((-5.447609879822406e+01 * r + 1.615858368580409e+02) * r - 1.556989798598866e+02) * r
                 + 6.680131188771972e+01) * r - 1.328068155288572e+01) * r + 1.0);
        double tq = sqrt(-2.0 * lnp);
        double tail = (((((-7.784894002430293e-03 * tq - 3.223964580411365e-01) * tq - 2.400758277161838e+00) * tq
                         - 2.549732539343734e+00) * tq + 4.374664141464968e+00) * tq + 2.938163982698783e+00)
            / ((((7.784695709041462e-03 * tq + 3.224671290700398e-01) * tq + 2.445134137142996e+00) * tq
                + 3.754408661907416e+00) * tq + 1.0);
        return p < 0.02425 ? tail : central;
    }

    /* Map every lane to an out-of-the-money call, classify its price (status 0 OK, 1 invalid input, 2 below
       intrinsic, 3 above maximum) and choose a starting point, a bracket and an objective. */
    static void tp_iv_prepare(Py_ssize_t m, const uint8_t *__restrict__ ic, const double *__restrict__ P,
                              const double *__restrict__ S, const double *__restrict__ K,
                              const double *__restrict__ T, const double *__restrict__ r,
                              const double *__restrict__ q, tp_iv_lanes *__restrict__ L,
                              int8_t *__restrict__ status) {
        const double INV_SQRT2 = 0.70710678118654752440, INV_SQRT_2PI = 0.39894228040143267794;
        const double SQRT3 = 1.73205080756887729353;
        const double LN_SQRT27_OVER_2PI = -0.18938016104424470;   /* the lower asymptote's constant */
        for (Py_ssize_t i = 0; i < m; i++) {
            int ok = (P[i] - P[i] == 0.0) & (S[i] > 0.0) & (S[i] < INFINITY) & (K[i] > 0.0) & (K[i] < INFINITY)
                   & (T[i] > 0.0) & (T[i] < INFINITY) & (fabs(r[i]) < INFINITY) & (fabs(q[i]) < INFINITY);
            double sgn = ic[i] ? 1.0 : -1.0;
            double x = log(S[i] / K[i]) + (r[i] - q[i]) * T[i];
            /* The time value P - max(+/-(S e^{-qT} - K e^{-rT}), 0) is formed in price units with the discounted
               intrinsic written as (S - K) + S expm1(-qT) - K expm1(-rT): deep in the money, rounding
               S e^{-qT} and K e^{-rT} separately would cost far more than the price's own rounding. */
            double intr = sgn * ((S[i] - K[i]) + S[i] * expm1(-q[i] * T[i]) - K[i] * expm1(-r[i] * T[i]));
            intr = intr > 0.0 ? intr : 0.0;
            double bt = (P[i] - intr) * exp(0.5 * (r[i] + q[i]) * T[i]) / (sqrt(S[i]) * sqrt(K[i]));
            double ex = exp(0.5 * x), emx = 1.0 / ex;
            double xt = -fabs(x);
            double bmax = ex < emx ? ex : emx;
            ok = ok & (x - x == 0.0);
            /* "At" the intrinsic value or the maximum (S e^{-qT} for a call, K e^{-rT} for a put) means within a
               few ulps: the caller's own rounding of those bounds must not turn into a vol of 0+ or infinity. */
            double cap = ic[i] ? S[i] * exp(-q[i] * T[i]) : K[i] * exp(-r[i] * T[i]);
            double floor_tol = intr > 0.0 ? 4.0 * 2.220446049250313e-16 * (S[i] > K[i] ? S[i] : K[i]) : 0.0;
            int above = (bt >= bmax) | (P[i] >= cap * (1.0 - 4.0 * 2.220446049250313e-16));
            int below = (bt <= 0.0) | (P[i] - intr <= floor_tol);
            int st = above ? 3 : 0;
            st = below ? 2 : st;
            st = ok ? st : 1;
            status[i] = (int8_t)st;
            int good = st == 0;
            /* harmless stand-ins keep the maths finite for lanes that do not iterate */
            xt = good ? xt : -1.0;
            bmax = good ? bmax : 0.60653065971263342360;
            bt = good ? bt : 0.30326532985631671180;
            double ibx = 1.0 / bmax, ax = -xt, sc = sqrt(2.0 * ax);
            /* at the inflection point s_c = sqrt(2|x|), d1 = 0: b_c = bmax/2 - N(-s_c)/bmax, b'(s_c) = bmax/sqrt(2 pi) */
            double bc = 0.5 * bmax - ibx * 0.5 * erfc(sc * INV_SQRT2);
            double vc = bmax * INV_SQRT_2PI;
            int lower = bt < bc;
            /* lower asymptote: beta ~ (2 pi/sqrt 27)|x| N(-|x|/(sqrt(3) s))^3; upper: bmax - beta ~ (bmax + 1/bmax) N(-s/2) */
            double lnp_l = (log(bt) + LN_SQRT27_OVER_2PI - log(ax)) * (1.0 / 3.0);
            double p_l = exp(lnp_l);
            double pu = (bmax - bt) / (bmax + ibx);
            double qu = (0.5 * (bmax - ibx) - bt) / (bmax + ibx);   /* pu - 1/2 without cancellation */
            double lnpu = log(pu);
            double p = lower ? p_l : pu, pmh = lower ? p_l - 0.5 : qu, lnp = lower ? lnp_l : lnpu;
            double z = tp_inv_ncdf(p, pmh, lnp);
            double s_asym = ax / (SQRT3 * -z);
            s_asym = z < 0.0 ? s_asym : INFINITY;
            /* below s_c, b is convex: its tangent at s_c meets beta beyond the root */
            double s_tan = sc - (bc - bt) / vc;
            s_tan = s_tan > 0.0 ? s_tan : INFINITY;
            double half_sc = 0.5 * sc, far_sc = 2.0 * sc + 1.0;
            double s_low = s_asym < s_tan ? s_asym : s_tan;
            s_low = s_low < sc ? s_low : half_sc;
            double s_up = -2.0 * z;
            s_up = s_up > sc ? s_up : sc;
            double s0 = lower ? s_low : s_up;
            double fallback = lower ? half_sc : far_sc;
            s0 = ((s0 > 0.0) & (s0 < INFINITY)) ? s0 : fallback;
            double upper_mode = bt > 0.5 * bmax ? 2.0 : 1.0;
            L->x[i] = xt;
            L->beta[i] = bt;
            L->bmax[i] = bmax;
            L->ln_beta[i] = log(bt);
            L->ln_gap[i] = log(bmax - bt);
            L->mode[i] = lower ? 0.0 : upper_mode;
            L->s[i] = s0;
            L->lo[i] = lower ? 0.0 : sc;
            L->hi[i] = lower ? sc : INFINITY;
            L->active[i] = good ? 1.0 : 0.0;
            L->iters[i] = 0.0;
        }
    }
    """
    double exp(double)
    double log(double)
    double erfc(double)
    double expm1(double)
    double sqrt(double)
    double fabs(double)
    double INFINITY
    double NAN
    ctypedef double* tp_dout
    ctypedef const double* tp_din
    ctypedef const uint8_t* tp_bin
    ctypedef uint8_t* tp_bout
    void tp_stream_copy(double* dst, const double* src, Py_ssize_t n)
    void tp_stream_fence()
    void* tp_block_alloc(size_t nbytes)
    enum: TP_IV_BLOCK
    ctypedef struct IVLanes "tp_iv_lanes":
        double x[TP_IV_BLOCK]
        double beta[TP_IV_BLOCK]
        double bmax[TP_IV_BLOCK]
        double ln_beta[TP_IV_BLOCK]
        double ln_gap[TP_IV_BLOCK]
        double mode[TP_IV_BLOCK]
        double s[TP_IV_BLOCK]
        double lo[TP_IV_BLOCK]
        double hi[TP_IV_BLOCK]
        double active[TP_IV_BLOCK]
        double iters[TP_IV_BLOCK]
    enum: TP_BVN_MAX
    void tp_ln_ncdf_batch(int n, const double* x, double* f0, double* mills)
    void tp_exp_batch(int n, const double* x, double* out)
    void tp_log_batch(int n, const double* x, double* out)
    void tp_ln_bvn_batch(int n, const double* a, const double* b, const double* neg, double rho, double rho_c,
                         const double* lna, const double* sn0, const double* inv0, const double* sn1,
                         const double* inv1, double* lm, double* ra, double* rb, double* rab)
    void tp_iv_prepare(Py_ssize_t m, const uint8_t* ic, const double* P, const double* S, const double* K,
                       const double* T, const double* r, const double* q, IVLanes* L, int8_t* status)


# ---------------------------------------------------------------------------------------------------------
# Constants

cdef enum:
    BLOCK = 256             # options per block of the European Greeks kernel
    IV_MAX_ITERATIONS = 64  # a lane still moving after this many steps reports NO_CONVERGENCE
    # Internal per-option flags of the Greeks kernel (not part of the public Status).
    FLAG_OK = 0
    FLAG_INVALID = 1
    FLAG_EXPIRED = 2

# The American Greeks kernel spreads an array over _core_threads threads (OpenMP) once it holds at least
# PARALLEL_MIN_COSTLY options that need the 2002 formula; below that a thread wake-up costs more than it
# saves. Chunks of PARALLEL_CHUNK options (whole cache lines of output) are handed out dynamically, so a
# worker that wakes late leaves its share to the calling thread instead of holding it up.
cdef enum:
    PARALLEL_MIN_COSTLY = 24
    PARALLEL_CHUNK = 16
cdef int _core_threads = 1

# Outputs of at least this many options leave through streaming stores (smaller ones stay in cache).
cdef Py_ssize_t STREAM_THRESHOLD = 1 << 16

cdef double INV_SQRT2 = 0.70710678118654752440
cdef double INV_SQRT_2PI = 0.39894228040143267794
cdef double DBL_EPS = 2.220446049250313e-16
cdef double ONE_OVER_DAYS = 1.0 / 365.0
# Relative step below which a Householder step has converged: the next error is of order step**3.
cdef double IV_STEP_TOLERANCE = 1e-6
# Bjerksund-Stensland's first exercise date t1 = T (sqrt(5) - 1) / 2.
cdef double BS_T1_FRACTION = 0.61803398874989484820
cdef double BS_RHO = 0.78615137775742328607          # sqrt(t1 / T)
cdef double BS_RHO_C = 0.61803398874989484820        # sqrt(1 - rho**2) (= rho**2, the golden ratio again)

# Bounds of the American implied-vol search (annualised vol).
cdef double AMERICAN_IV_MAX_VOL = 20.0
cdef double AMERICAN_IV_MIN_VOL = 1e-4

# Gauss-Legendre, 20 points on [-1, 1] (Genz's BVND uses them for 0.75 <= |rho| < 0.925).
cdef double GL_X[20]
cdef double GL_W[20]
GL_X[:] = [
    -0.993128599185095, -0.9639719272779138, -0.912234428251326, -0.8391169718222188,
    -0.7463319064601508, -0.636053680726515, -0.5108670019508271, -0.37370608871541955,
    -0.22778585114164507, -0.07652652113349734, 0.07652652113349734, 0.22778585114164507,
    0.37370608871541955, 0.5108670019508271, 0.636053680726515, 0.7463319064601508,
    0.8391169718222188, 0.912234428251326, 0.9639719272779138, 0.993128599185095,
]
GL_W[:] = [
    0.017614007139150893, 0.040601429800386446, 0.06267204833410879, 0.08327674157670471,
    0.1019301198172407, 0.1181945319615186, 0.1316886384491769, 0.1420961093183824,
    0.14917298647260424, 0.15275338713072628, 0.15275338713072628, 0.14917298647260424,
    0.1420961093183824, 0.1316886384491769, 0.1181945319615186, 0.1019301198172407,
    0.08327674157670471, 0.06267204833410879, 0.040601429800386446, 0.017614007139150893,
]

# Drezner-Wesolowsky integrand nodes for rho = +BS_RHO (index 0) and -BS_RHO (index 1):
# M(a, b) = N(a) N(b) +/- sum_j exp(BVN_LNA[j] + (BVN_SN[j] a b - (a^2 + b^2)/2) BVN_INV[j]).
cdef double BVN_SN[2][20]
cdef double BVN_INV[2][20]
cdef double BVN_LNA[20]     # ln |A_j|, the same for both signs of rho


cdef void _init_bvn_nodes():
    cdef int k, j
    cdef double asr, sn
    for k in range(2):
        asr = asin(BS_RHO if k == 0 else -BS_RHO)
        for j in range(20):
            sn = sin(asr * (GL_X[j] + 1.0) * 0.5)
            BVN_SN[k][j] = sn
            BVN_INV[k][j] = 1.0 / (1.0 - sn * sn)
            if k == 0:
                BVN_LNA[j] = log(GL_W[j] * asr / (4.0 * 3.14159265358979323846))


_init_bvn_nodes()


# ---------------------------------------------------------------------------------------------------------
# Public Python types

class Status(enum.IntEnum):
    """Per-option result code of the array API; every output of an option that is not OK is NaN."""

    OK = 0
    INVALID_INPUT = 1
    BELOW_INTRINSIC = 2
    ABOVE_MAXIMUM = 3
    NO_CONVERGENCE = 4


class PriceBelowIntrinsic(ValueError):
    """The price is at or below the option's intrinsic value, so no volatility reproduces it.

    For a European option the intrinsic value is the discounted forward intrinsic
    max(+/-(S e^{-qT} - K e^{-rT}), 0); for an American one it is the model's value at zero volatility.
    """


class PriceAboveMaximum(ValueError):
    """The price is at or above the no-arbitrage maximum (S e^{-qT} for a European call, K e^{-rT} for a
    European put; the model's value as volatility grows without bound for an American option)."""


class NoConvergence(ArithmeticError):
    """The implied-volatility solver did not converge (never seen on well-posed inputs; reported, not hidden)."""


cdef class Greeks:
    """Price and Greeks of one option (immutable).

    Attributes:
        price: Option value, in the currency of spot and strike.
        delta: dV/dS.
        gamma: d2V/dS2.
        vega: Change of value per 1 volatility point (0.01), i.e. dV/dsigma / 100.
        theta: Change of value when one calendar day (1/365 year) passes, i.e. -dV/dT / 365; negative when
            time decay costs the holder.
        rho: Change of value per 1 percentage point of the rate with the dividend yield held fixed,
            i.e. dV/dr / 100.
        vanna: Change of delta per 1 volatility point, d2V/dS dsigma / 100.
        charm: Change of delta when one calendar day passes, -d2V/dS dT / 365.
    """

    def __init__(self, double price, double delta, double gamma, double vega, double theta, double rho,
                 double vanna, double charm):
        self.price = price
        self.delta = delta
        self.gamma = gamma
        self.vega = vega
        self.theta = theta
        self.rho = rho
        self.vanna = vanna
        self.charm = charm

    def __repr__(self):
        return (
            f"Greeks(price={self.price!r}, delta={self.delta!r}, gamma={self.gamma!r}, vega={self.vega!r}, "
            f"theta={self.theta!r}, rho={self.rho!r}, vanna={self.vanna!r}, charm={self.charm!r})"
        )

    def _astuple(self):
        return (self.price, self.delta, self.gamma, self.vega, self.theta, self.rho, self.vanna, self.charm)

    def __eq__(self, other):
        if not isinstance(other, Greeks):
            return NotImplemented
        return self._astuple() == (<Greeks>other)._astuple()

    def __hash__(self):
        return hash(self._astuple())

    def __reduce__(self):
        return (Greeks, self._astuple())


cdef inline Greeks _make_greeks(GreeksC g):
    cdef Greeks obj = Greeks.__new__(Greeks)
    obj.price = g.price
    obj.delta = g.delta
    obj.gamma = g.gamma
    obj.vega = g.vega
    obj.theta = g.theta
    obj.rho = g.rho
    obj.vanna = g.vanna
    obj.charm = g.charm
    return obj


cdef class GreeksArray:
    """Prices and Greeks of many options: one float64 array per output, same units as Greeks.

    Attributes:
        price, delta, gamma, vega, theta, rho, vanna, charm: float64 arrays, NaN where status is not OK.
        status: int8 array of Status values.
    """

    def __init__(self, price, delta, gamma, vega, theta, rho, vanna, charm, status):
        self.price = price
        self.delta = delta
        self.gamma = gamma
        self.vega = vega
        self.theta = theta
        self.rho = rho
        self.vanna = vanna
        self.charm = charm
        self.status = status

    def __len__(self):
        return len(self.status)

    def __reduce__(self):
        return (GreeksArray, (self.price, self.delta, self.gamma, self.vega, self.theta, self.rho, self.vanna,
                              self.charm, self.status))

    def __repr__(self):
        n_bad = int(np.count_nonzero(self.status))
        return f"GreeksArray(n={len(self.status)}, not_ok={n_bad})"


# ---------------------------------------------------------------------------------------------------------
# European closed form

cdef inline double _ncdf(double x) noexcept nogil:
    return 0.5 * erfc(-x * INV_SQRT2)


cdef inline double _npdf(double x) noexcept nogil:
    return INV_SQRT_2PI * exp(-0.5 * x * x)


cdef inline GreeksC _euro(double sgn, double S, double K, double T, double vol, double r, double q) noexcept nogil:
    # Branch-free so that gcc can vectorize the calling loop; sgn = +1 call, -1 put.
    cdef GreeksC g
    cdef double sq = sqrt(T)
    cdef double v = vol * sq
    cdef double iv = 1.0 / v
    cdef double b = r - q
    cdef double d1 = (log(S / K) + (b + 0.5 * vol * vol) * T) * iv
    cdef double d2 = d1 - v
    cdef double eq = exp(-q * T)
    cdef double er = exp(-r * T)
    cdef double n1 = INV_SQRT_2PI * exp(-0.5 * d1 * d1)
    cdef double nd1 = 0.5 * erfc(-sgn * d1 * INV_SQRT2)     # N(sgn d1)
    cdef double nd2 = 0.5 * erfc(-sgn * d2 * INV_SQRT2)     # N(sgn d2)
    cdef double se = S * eq
    cdef double ke = K * er
    cdef double eqn1 = eq * n1
    g.price = sgn * (se * nd1 - ke * nd2)
    g.delta = sgn * eq * nd1
    g.gamma = eqn1 * iv / S
    g.vega = se * n1 * sq * 0.01
    # vol / sqrt(T) = vol^2 / v and 1 / T = vol^2 / v^2 save two divisions.
    g.theta = (-0.5 * se * n1 * vol * vol * iv + sgn * (q * se * nd1 - r * ke * nd2)) * ONE_OVER_DAYS
    g.rho = sgn * ke * T * nd2 * 0.01
    g.vanna = -eqn1 * d2 * sq * iv * 0.01
    g.charm = (sgn * q * eq * nd1 - eqn1 * (b * iv - 0.5 * d2 * vol * vol * iv * iv)) * ONE_OVER_DAYS
    return g


cdef GreeksC european_greeks(double sign, double spot, double strike, double t, double vol,
                             double r, double q) noexcept nogil:
    return _euro(sign, spot, strike, t, vol, r, q)


cdef inline GreeksC _expired(double sgn, double S, double K) noexcept nogil:
    # Expiring now: intrinsic value; delta is 0 or +/-1 (0 at the money); every other Greek is 0.
    cdef GreeksC g
    cdef double itm = sgn * (S - K)
    g.price = itm if itm > 0.0 else 0.0
    g.delta = sgn if itm > 0.0 else 0.0
    g.gamma = 0.0
    g.vega = 0.0
    g.theta = 0.0
    g.rho = 0.0
    g.vanna = 0.0
    g.charm = 0.0
    return g


cdef inline GreeksC _nan_greeks() noexcept nogil:
    cdef GreeksC g
    g.price = NAN
    g.delta = NAN
    g.gamma = NAN
    g.vega = NAN
    g.theta = NAN
    g.rho = NAN
    g.vanna = NAN
    g.charm = NAN
    return g


cdef inline bint _greeks_finite(GreeksC g) noexcept nogil:
    cdef double total = g.price + g.delta + g.gamma + g.vega + g.theta + g.rho + g.vanna + g.charm
    return total - total == 0.0


cdef inline uint8_t _input_flag(double S, double K, double T, double vol, double r, double q) noexcept nogil:
    # NaN fails every comparison, so each test below also rejects NaN.
    cdef bint ok = ((S > 0.0) & (S < INFINITY) & (K > 0.0) & (K < INFINITY) & (T >= 0.0) & (T < INFINITY)
                    & (vol > 0.0) & (vol < INFINITY) & (fabs(r) < INFINITY) & (fabs(q) < INFINITY))
    if not ok:
        return FLAG_INVALID
    return FLAG_EXPIRED if T == 0.0 else FLAG_OK


cdef Py_ssize_t _euro_block(Py_ssize_t m, tp_bin ic, tp_din S, tp_din K, tp_din T, tp_din vol, tp_din r,
                            tp_din q, tp_dout p, tp_dout de, tp_dout ga, tp_dout ve, tp_dout th, tp_dout rh,
                            tp_dout va, tp_dout ch, tp_bout flag) noexcept nogil:
    # The vectorized pass of the Greeks kernel; returns how many options need the fix-up pass.
    cdef Py_ssize_t i
    cdef Py_ssize_t pending = 0
    cdef GreeksC g
    cdef double total
    for i in range(m):
        g = _euro(1.0 if ic[i] else -1.0, S[i], K[i], T[i], vol[i], r[i], q[i])
        p[i] = g.price
        de[i] = g.delta
        ga[i] = g.gamma
        ve[i] = g.vega
        th[i] = g.theta
        rh[i] = g.rho
        va[i] = g.vanna
        ch[i] = g.charm
        total = g.price + g.delta + g.gamma + g.vega + g.theta + g.rho + g.vanna + g.charm
        pending += (flag[i] != 0) | (total - total != 0.0)
    return pending


cdef inline void _store(double** outs, Py_ssize_t i, GreeksC g) noexcept nogil:
    outs[0][i] = g.price
    outs[1][i] = g.delta
    outs[2][i] = g.gamma
    outs[3][i] = g.vega
    outs[4][i] = g.theta
    outs[5][i] = g.rho
    outs[6][i] = g.vanna
    outs[7][i] = g.charm


cdef inline GreeksC _load(double** outs, Py_ssize_t i) noexcept nogil:
    cdef GreeksC g
    g.price = outs[0][i]
    g.delta = outs[1][i]
    g.gamma = outs[2][i]
    g.vega = outs[3][i]
    g.theta = outs[4][i]
    g.rho = outs[5][i]
    g.vanna = outs[6][i]
    g.charm = outs[7][i]
    return g


cdef void _greeks_european_kernel(Py_ssize_t n, const uint8_t* ic, const double* S, const double* K,
                                  const double* T, const double* vol, const double* r, const double* q,
                                  double** outs, int8_t* status) noexcept nogil:
    cdef double buf[8][BLOCK]
    cdef uint8_t flag[BLOCK]
    cdef double* bo[8]
    cdef Py_ssize_t start, m, i, j
    cdef GreeksC g
    cdef uint8_t f
    cdef bint stream = n >= STREAM_THRESHOLD
    for j in range(8):
        bo[j] = &buf[j][0]
    start = 0
    while start < n:
        m = n - start if n - start < BLOCK else BLOCK
        # 1. validate (before any maths, so nothing in the maths can weaken it)
        for i in range(m):
            flag[i] = _input_flag(S[start + i], K[start + i], T[start + i], vol[start + i], r[start + i],
                                  q[start + i])
        # 2. branch-free, vectorized maths for the whole block
        if _euro_block(m, ic + start, S + start, K + start, T + start, vol + start, r + start, q + start,
                       bo[0], bo[1], bo[2], bo[3], bo[4], bo[5], bo[6], bo[7], flag) != 0:
            # 3. fix-up: invalid input, expiry now, or a non-finite result of extreme inputs
            for i in range(m):
                f = flag[i]
                if f == FLAG_INVALID:
                    _store(bo, i, _nan_greeks())
                elif f == FLAG_EXPIRED:
                    _store(bo, i, _expired(1.0 if ic[start + i] else -1.0, S[start + i], K[start + i]))
                elif not _greeks_finite(_load(bo, i)):
                    flag[i] = FLAG_INVALID
                    _store(bo, i, _nan_greeks())
        for i in range(m):
            status[start + i] = STATUS_INVALID_INPUT if flag[i] == FLAG_INVALID else STATUS_OK
        if stream:
            for j in range(8):
                tp_stream_copy(outs[j] + start, bo[j], m)
        else:
            for j in range(8):
                for i in range(m):
                    outs[j][start + i] = buf[j][i]
        start += m
    if stream:
        tp_stream_fence()


# ---------------------------------------------------------------------------------------------------------
# Bjerksund-Stensland (2002) on second-order jets

# A jet carries a value, its first derivatives with respect to spot (s), volatility (o), time to expiry (t)
# and rate (r), and the second derivatives spot-spot, spot-vol and spot-time. The product and chain rules
# below are closed over exactly these components, so every Greek comes out exact to rounding.
cdef struct J:
    double v
    double s
    double o
    double t
    double r
    double ss
    double so
    double st


cdef inline J jc(double c) noexcept nogil:
    cdef J a
    a.v = c
    a.s = 0.0
    a.o = 0.0
    a.t = 0.0
    a.r = 0.0
    a.ss = 0.0
    a.so = 0.0
    a.st = 0.0
    return a


cdef inline J jadd(J a, J b) noexcept nogil:
    a.v += b.v
    a.s += b.s
    a.o += b.o
    a.t += b.t
    a.r += b.r
    a.ss += b.ss
    a.so += b.so
    a.st += b.st
    return a


cdef inline J jsub(J a, J b) noexcept nogil:
    a.v -= b.v
    a.s -= b.s
    a.o -= b.o
    a.t -= b.t
    a.r -= b.r
    a.ss -= b.ss
    a.so -= b.so
    a.st -= b.st
    return a


cdef inline J jaddc(J a, double c) noexcept nogil:
    a.v += c
    return a


cdef inline J jscale(J a, double c) noexcept nogil:
    a.v *= c
    a.s *= c
    a.o *= c
    a.t *= c
    a.r *= c
    a.ss *= c
    a.so *= c
    a.st *= c
    return a


cdef inline J jmul(J a, J b) noexcept nogil:
    cdef J c
    c.v = a.v * b.v
    c.s = a.s * b.v + a.v * b.s
    c.o = a.o * b.v + a.v * b.o
    c.t = a.t * b.v + a.v * b.t
    c.r = a.r * b.v + a.v * b.r
    c.ss = a.ss * b.v + 2.0 * a.s * b.s + a.v * b.ss
    c.so = a.so * b.v + a.s * b.o + a.o * b.s + a.v * b.so
    c.st = a.st * b.v + a.s * b.t + a.t * b.s + a.v * b.st
    return c


cdef inline J japply(J a, double f0, double f1, double f2) noexcept nogil:
    # f(a) for a scalar function with f(a.v) = f0, f'(a.v) = f1, f''(a.v) = f2.
    cdef J c
    c.v = f0
    c.s = f1 * a.s
    c.o = f1 * a.o
    c.t = f1 * a.t
    c.r = f1 * a.r
    c.ss = f1 * a.ss + f2 * a.s * a.s
    c.so = f1 * a.so + f2 * a.s * a.o
    c.st = f1 * a.st + f2 * a.s * a.t
    return c


cdef inline J jrecip(J a) noexcept nogil:
    cdef double f0 = 1.0 / a.v
    return japply(a, f0, -f0 * f0, 2.0 * f0 * f0 * f0)


cdef inline J jdiv(J a, J b) noexcept nogil:
    return jmul(a, jrecip(b))


cdef inline J jexp(J a) noexcept nogil:
    cdef double e = exp(a.v)
    if e == 0.0:
        # An underflowed term: its derivatives (the value times ratios of moderate size) vanish too, and must
        # not turn into 0 * inf = NaN when a log-probability's slope overflowed far in a tail.
        return jc(0.0)
    return japply(a, e, e, e)


cdef inline J jexpm1(J a) noexcept nogil:
    cdef double e = exp(a.v)
    return japply(a, expm1(a.v), e, e)


cdef inline J jlog(J a) noexcept nogil:
    cdef double inv = 1.0 / a.v
    return japply(a, log(a.v), inv, -inv * inv)


cdef inline J jlogabs(J a) noexcept nogil:
    cdef double inv = 1.0 / a.v
    return japply(a, log(fabs(a.v)), inv, -inv * inv)


cdef inline J jsqrt(J a) noexcept nogil:
    cdef double rt = sqrt(a.v)
    return japply(a, rt, 0.5 / rt, -0.25 / (rt * a.v))


cdef inline double _ln_npdf(double x) noexcept nogil:
    return -0.5 * x * x - 0.91893853320467274178      # ln n(x)


cdef inline double _ln_ncdf(double x) noexcept nogil:
    # ln N(x), accurate in the far left tail where N(x) itself underflows (asymptotic series, |x| >= 30).
    cdef double w
    if x > -30.0:
        return log(0.5 * erfc(-x * INV_SQRT2))
    w = 1.0 / (x * x)
    return (_ln_npdf(x) - log(-x)
            + log(1.0 - w * (1.0 - 3.0 * w * (1.0 - 5.0 * w * (1.0 - 7.0 * w * (1.0 - 9.0 * w * (1.0 - 11.0 * w * (
                1.0 - 13.0 * w))))))))


cdef inline J jlnncdf(J a) noexcept nogil:
    # ln N(a): d/da = n/N (the inverse Mills ratio), d2/da2 = -(n/N)(a + n/N).
    cdef double f0 = _ln_ncdf(a.v)
    cdef double mills = exp(_ln_npdf(a.v) - f0)
    return japply(a, f0, mills, -mills * (a.v + mills))


cdef struct BSParams:
    J b
    J r
    J v
    J v2


# Every term of the 2002 formula is a (possibly huge) power times a (possibly tiny) probability; each is
# evaluated as exp(ln power + ln probability), which stays finite where the factors over- or underflow.

cdef inline J _jexp_from(J a, double e) noexcept nogil:
    # exp(a) as a jet, given e = exp(a.v) (from a batch); as jexp.
    if e == 0.0:
        return jc(0.0)
    return japply(a, e, e, e)


cdef inline J _jlog_from(J a, double lv) noexcept nogil:
    # ln |a| as a jet, given lv = ln |a.v| (from a batch); as jlog / jlogabs.
    cdef double inv = 1.0 / a.v
    return japply(a, lv, inv, -inv * inv)


cdef inline J _jlnncdf_from(J a, double f0, double mills) noexcept nogil:
    # ln N(a) as a jet, given f0 = ln N(a.v) and the inverse Mills ratio (from a batch); as jlnncdf.
    return japply(a, f0, mills, -mills * (a.v + mills))


cdef struct GamTerms:
    # The parts of the 2002 formula that depend only on gamma (beta, 1 or 0), shared by its phi and psi terms.
    J mu        # b + (gamma - 1/2) v^2
    J kappa     # 2 b / v^2 + 2 gamma - 1
    J mt1       # mu t1
    J mt2       # mu T
    J lam_t1    # lambda t1, lambda = gamma b - r + gamma (gamma - 1) v^2 / 2
    J lam_t2    # lambda T


cdef void _gam_terms(J gam, J t1, J t2, BSParams* p, GamTerms* g) noexcept nogil:
    cdef J lam = jadd(jsub(jmul(gam, p.b), p.r), jscale(jmul(jmul(gam, jaddc(gam, -1.0)), p.v2), 0.5))
    g.mu = jadd(p.b, jmul(jaddc(gam, -0.5), p.v2))
    g.kappa = jaddc(jadd(jdiv(jscale(p.b, 2.0), p.v2), jscale(gam, 2.0)), -1.0)
    g.mt1 = jmul(g.mu, t1)
    g.mt2 = jmul(g.mu, t2)
    g.lam_t1 = jmul(lam, t1)
    g.lam_t2 = jmul(lam, t2)


cdef void _bs_phi_args(J lead, GamTerms* g, J ls_h, J ls_i, J inv_st, J* d, J* pre) noexcept nogil:
    # coefficient * phi(S, t1, gamma, H, I) = exp(pre[0] + ln N(d[0])) - exp(pre[1] + ln N(d[1])), with
    # lead = ln(coefficient * S^gamma), ls_h = ln(S/H), ls_i = ln(S/I), inv_st = 1/(v sqrt(t1)).
    d[0] = jscale(jmul(jadd(ls_h, g.mt1), inv_st), -1.0)
    d[1] = jadd(d[0], jmul(jscale(ls_i, 2.0), inv_st))
    pre[0] = jadd(lead, g.lam_t1)
    pre[1] = jsub(pre[0], jmul(g.kappa, ls_i))


cdef inline J _jlnbvn_from(J a, J b, double rho, double lm, double ra, double rb, double rab) noexcept nogil:
    # ln M(a, b; rho) as a jet from its value and the ratios M_a/M, M_b/M, M_ab/M (tp_ln_bvn_batch):
    # M_aa = -a M_a - rho M_ab (and likewise for b), so the second derivatives of ln M follow.
    cdef J c
    if lm == -INFINITY:
        # M is below resolution: the term vanishes, and so do its derivatives.
        return jc(-INFINITY)
    cdef double haa = -a.v * ra - rho * rab - ra * ra
    cdef double hbb = -b.v * rb - rho * rab - rb * rb
    cdef double hab = rab - ra * rb
    c.v = lm
    c.s = ra * a.s + rb * b.s
    c.o = ra * a.o + rb * b.o
    c.t = ra * a.t + rb * b.t
    c.r = ra * a.r + rb * b.r
    c.ss = ra * a.ss + rb * b.ss + haa * a.s * a.s + 2.0 * hab * a.s * b.s + hbb * b.s * b.s
    c.so = ra * a.so + rb * b.so + haa * a.s * a.o + hab * (a.s * b.o + a.o * b.s) + hbb * b.s * b.o
    c.st = ra * a.st + rb * b.st + haa * a.s * a.t + hab * (a.s * b.t + a.t * b.s) + hbb * b.s * b.t
    return c


cdef void _bs_psi_args(GamTerms* g, J ls_h, J li1_h, J li2_h, J ls_i1, J ls_i2, J li2_i1, J ninv1, J ninv2,
                       J* e, J* f) noexcept nogil:
    # The four bivariate-normal arguments of psi(S, T, gamma, H, I2, I1, t1), passed negated: M(-e, -f);
    # the first two pairs have correlation +rho, the last two -rho. ninv1 = -1/(v sqrt(t1)), ninv2 likewise.
    cdef J li2_s = jscale(ls_i2, -1.0)
    cdef J li1_s = jscale(ls_i1, -1.0)
    e[0] = jmul(jadd(ls_i1, g.mt1), ninv1)
    e[1] = jmul(jadd(jadd(li2_s, li2_i1), g.mt1), ninv1)
    e[2] = jmul(jsub(ls_i1, g.mt1), ninv1)
    e[3] = jmul(jsub(jadd(li2_s, li2_i1), g.mt1), ninv1)
    f[0] = jmul(jadd(ls_h, g.mt2), ninv2)
    f[1] = jmul(jadd(jadd(li2_s, li2_h), g.mt2), ninv2)
    f[2] = jmul(jadd(jadd(li1_s, li1_h), g.mt2), ninv2)
    f[3] = jmul(jadd(jsub(ls_h, jscale(li2_i1, 2.0)), g.mt2), ninv2)


cdef void _bs_psi_exp_args(J lead, GamTerms* g, J ls_i1, J ls_i2, J li2_i1, J* lnm, J* arg) noexcept nogil:
    # coefficient * psi(S, T, gamma, H, I2, I1, t1) = e^arg[0] - e^arg[1] - e^arg[2] + e^arg[3], from the logs
    # of its four bivariate normals (lnm, in the order of _bs_psi_args); lead = ln(coefficient * S^gamma).
    cdef J li2_s = jscale(ls_i2, -1.0)
    cdef J li1_s = jscale(ls_i1, -1.0)
    cdef J base = jadd(lead, g.lam_t2)
    arg[0] = jadd(base, lnm[0])
    arg[1] = jadd(jadd(base, jmul(g.kappa, li2_s)), lnm[1])
    arg[2] = jadd(jadd(base, jmul(g.kappa, li1_s)), lnm[2])
    arg[3] = jadd(jsub(base, jmul(g.kappa, li2_i1)), lnm[3])


cdef inline J _signed_sum4(J* a, double* e) noexcept nogil:
    # e^a[0] - e^a[1] - e^a[2] + e^a[3] as a jet (a psi term), given the exponentials of the values.
    cdef J acc = _jexp_from(a[0], e[0])
    acc = jsub(acc, _jexp_from(a[1], e[1]))
    acc = jsub(acc, _jexp_from(a[2], e[2]))
    return jadd(acc, _jexp_from(a[3], e[3]))


cdef enum:
    PSI_TERMS = 5    # psi terms in the 2002 price, four bivariate normals each
    PHI_TERMS = 6    # phi terms, two normal probabilities each


cdef J _bs2002_call(J S, J X, J T, J r, J b, J v) noexcept nogil:
    # Bjerksund and Stensland (2002), as in Haug (2007) section 3.1.4; requires b < r, v > 0, T > 0.
    cdef BSParams p
    p.b = b
    p.r = r
    p.v = v
    p.v2 = jmul(v, v)
    cdef J t1 = jscale(T, BS_T1_FRACTION)
    cdef J bv2 = jdiv(b, p.v2)
    cdef J disc = jadd(jmul(jaddc(bv2, -0.5), jaddc(bv2, -0.5)), jdiv(jscale(r, 2.0), p.v2))
    # beta - 1 = 2 (r - b)/v^2 / (sqrt(disc) + 1/2 + b/v^2), free of the cancellation in beta - 1 that makes
    # B_inf = beta X/(beta - 1) blow up as r - b -> 0+ (the denominator is >= 1 or the sum of positives).
    cdef J beta_m1 = jdiv(jdiv(jscale(jsub(r, b), 2.0), p.v2), jaddc(jadd(jsqrt(disc), bv2), 0.5))
    cdef J beta = jaddc(beta_m1, 1.0)
    cdef J b_inf = jmul(jaddc(jrecip(beta_m1), 1.0), X)
    cdef J b_0 = jmul(jdiv(r, jsub(r, b)), X) if b.v > 0.0 else X
    cdef J span = jsub(b_inf, b_0)
    cdef J scale = jdiv(jmul(X, X), jmul(span, b_0))
    cdef J h1 = jscale(jmul(jadd(jmul(b, t1), jscale(jmul(v, jsqrt(t1)), 2.0)), scale), -1.0)
    cdef J h2 = jscale(jmul(jadd(jmul(b, T), jscale(jmul(v, jsqrt(T)), 2.0)), scale), -1.0)
    # (B_inf - B_0)(1 - e^h) with expm1: h is tiny when B_inf is huge, and the product stays finite.
    cdef J i1 = jsub(b_0, jmul(span, jexpm1(h1)))
    cdef J i2 = jsub(b_0, jmul(span, jexpm1(h2)))
    if S.v >= i2.v:
        return jsub(S, X)
    cdef J one = jc(1.0)
    cdef J zero = jc(0.0)
    # The ten logarithms of the formula are taken in one vectorized batch.
    cdef J la[10]
    cdef double lx[10]
    cdef double lv[10]
    cdef int i
    la[0] = jdiv(S, i1)
    la[1] = jdiv(S, i2)
    la[2] = jdiv(i2, i1)
    la[3] = jdiv(S, X)
    la[4] = jdiv(i1, X)
    la[5] = jdiv(i2, X)
    la[6] = S
    la[7] = X
    la[8] = jsub(i1, X)
    la[9] = jsub(i2, X)
    for i in range(10):
        lx[i] = fabs(la[i].v)
    tp_log_batch(10, lx, lv)
    cdef J ls_i1 = _jlog_from(la[0], lv[0])
    cdef J ls_i2 = _jlog_from(la[1], lv[1])
    cdef J li2_i1 = _jlog_from(la[2], lv[2])
    cdef J ls_x = _jlog_from(la[3], lv[3])
    cdef J li1_x = _jlog_from(la[4], lv[4])
    cdef J li2_x = _jlog_from(la[5], lv[5])
    cdef J ln_s = _jlog_from(la[6], lv[6])
    cdef J ln_x = _jlog_from(la[7], lv[7])
    # alpha_k S^beta = (I_k - X) (S/I_k)^beta, kept in logs (beta is large when vol is small) with the sign
    # apart: when b T + 2 v sqrt(T) < 0 the 2002 triggers fall below the strike and alpha_k < 0.
    cdef double sg1 = 1.0 if i1.v >= X.v else -1.0
    cdef double sg2 = 1.0 if i2.v >= X.v else -1.0
    cdef J la1 = jadd(_jlog_from(la[8], lv[8]), jmul(beta, ls_i1))
    cdef J la2 = jadd(_jlog_from(la[9], lv[9]), jmul(beta, ls_i2))
    # Transcendentals run in batches (vectorized): the phi terms' 12 ln N, the psi terms' 20 bivariate normals,
    # then the exponentials of all 33 terms; the terms are summed in the formula's order.
    cdef J pd[PHI_TERMS * 2]
    cdef J arg[1 + PHI_TERMS * 2 + PSI_TERMS * 4]
    cdef double xs[1 + PHI_TERMS * 2 + PSI_TERMS * 4]
    cdef double ev[1 + PHI_TERMS * 2 + PSI_TERMS * 4]
    cdef double f0[PHI_TERMS * 2]
    cdef double mills[PHI_TERMS * 2]
    # gamma takes three values (beta, 1, 0) over the 11 terms: their gamma-only parts are formed once.
    cdef GamTerms g_beta, g_one, g_zero
    _gam_terms(beta, t1, T, &p, &g_beta)
    _gam_terms(one, t1, T, &p, &g_one)
    _gam_terms(zero, t1, T, &p, &g_zero)
    cdef J st1 = jmul(p.v, jsqrt(t1))
    cdef J st2 = jmul(p.v, jsqrt(T))
    cdef J inv_st1 = jrecip(st1)
    cdef J ninv1 = jrecip(jscale(st1, -1.0))
    cdef J ninv2 = jrecip(jscale(st2, -1.0))
    arg[0] = la2
    _bs_phi_args(la2, &g_beta, ls_i2, ls_i2, inv_st1, &pd[0], &arg[1])
    _bs_phi_args(ln_s, &g_one, ls_i2, ls_i2, inv_st1, &pd[2], &arg[3])
    _bs_phi_args(ln_s, &g_one, ls_i1, ls_i2, inv_st1, &pd[4], &arg[5])
    _bs_phi_args(ln_x, &g_zero, ls_i2, ls_i2, inv_st1, &pd[6], &arg[7])
    _bs_phi_args(ln_x, &g_zero, ls_i1, ls_i2, inv_st1, &pd[8], &arg[9])
    _bs_phi_args(la1, &g_beta, ls_i1, ls_i2, inv_st1, &pd[10], &arg[11])
    for i in range(PHI_TERMS * 2):
        xs[i] = pd[i].v
    tp_ln_ncdf_batch(PHI_TERMS * 2, xs, f0, mills)
    for i in range(PHI_TERMS * 2):
        arg[1 + i] = jadd(arg[1 + i], _jlnncdf_from(pd[i], f0[i], mills[i]))
    cdef J e[PSI_TERMS * 4]
    cdef J f[PSI_TERMS * 4]
    cdef J lnm[PSI_TERMS * 4]
    cdef double ea[PSI_TERMS * 4]
    cdef double fa[PSI_TERMS * 4]
    cdef double neg[PSI_TERMS * 4]
    cdef double lm[PSI_TERMS * 4]
    cdef double ra[PSI_TERMS * 4]
    cdef double rb[PSI_TERMS * 4]
    cdef double rab[PSI_TERMS * 4]
    _bs_psi_args(&g_beta, ls_i1, zero, li2_i1, ls_i1, ls_i2, li2_i1, ninv1, ninv2, &e[0], &f[0])
    _bs_psi_args(&g_one, ls_i1, zero, li2_i1, ls_i1, ls_i2, li2_i1, ninv1, ninv2, &e[4], &f[4])
    _bs_psi_args(&g_one, ls_x, li1_x, li2_x, ls_i1, ls_i2, li2_i1, ninv1, ninv2, &e[8], &f[8])
    _bs_psi_args(&g_zero, ls_i1, zero, li2_i1, ls_i1, ls_i2, li2_i1, ninv1, ninv2, &e[12], &f[12])
    _bs_psi_args(&g_zero, ls_x, li1_x, li2_x, ls_i1, ls_i2, li2_i1, ninv1, ninv2, &e[16], &f[16])
    for i in range(PSI_TERMS * 4):
        ea[i] = e[i].v
        fa[i] = f[i].v
        neg[i] = 1.0 if (i & 3) >= 2 else 0.0
    tp_ln_bvn_batch(PSI_TERMS * 4, ea, fa, neg, BS_RHO, BS_RHO_C, BVN_LNA, BVN_SN[0], BVN_INV[0], BVN_SN[1],
                    BVN_INV[1], lm, ra, rb, rab)
    for i in range(PSI_TERMS * 4):
        lnm[i] = _jlnbvn_from(e[i], f[i], -BS_RHO if neg[i] != 0.0 else BS_RHO, lm[i], ra[i], rb[i], rab[i])
    cdef int ps = 1 + PHI_TERMS * 2
    _bs_psi_exp_args(la1, &g_beta, ls_i1, ls_i2, li2_i1, &lnm[0], &arg[ps])
    _bs_psi_exp_args(ln_s, &g_one, ls_i1, ls_i2, li2_i1, &lnm[4], &arg[ps + 4])
    _bs_psi_exp_args(ln_s, &g_one, ls_i1, ls_i2, li2_i1, &lnm[8], &arg[ps + 8])
    _bs_psi_exp_args(ln_x, &g_zero, ls_i1, ls_i2, li2_i1, &lnm[12], &arg[ps + 12])
    _bs_psi_exp_args(ln_x, &g_zero, ls_i1, ls_i2, li2_i1, &lnm[16], &arg[ps + 16])
    for i in range(1 + PHI_TERMS * 2 + PSI_TERMS * 4):
        xs[i] = arg[i].v
    tp_exp_batch(1 + PHI_TERMS * 2 + PSI_TERMS * 4, xs, ev)
    cdef J price = jscale(_jexp_from(arg[0], ev[0]), sg2)
    price = jsub(price, jscale(jsub(_jexp_from(arg[1], ev[1]), _jexp_from(arg[2], ev[2])), sg2))
    price = jadd(price, jsub(_jexp_from(arg[3], ev[3]), _jexp_from(arg[4], ev[4])))
    price = jsub(price, jsub(_jexp_from(arg[5], ev[5]), _jexp_from(arg[6], ev[6])))
    price = jsub(price, jsub(_jexp_from(arg[7], ev[7]), _jexp_from(arg[8], ev[8])))
    price = jadd(price, jsub(_jexp_from(arg[9], ev[9]), _jexp_from(arg[10], ev[10])))
    price = jadd(price, jscale(jsub(_jexp_from(arg[11], ev[11]), _jexp_from(arg[12], ev[12])), sg1))
    price = jsub(price, jscale(_signed_sum4(&arg[ps], &ev[ps]), sg1))
    price = jadd(price, _signed_sum4(&arg[ps + 4], &ev[ps + 4]))
    price = jsub(price, _signed_sum4(&arg[ps + 8], &ev[ps + 8]))
    price = jsub(price, _signed_sum4(&arg[ps + 12], &ev[ps + 12]))
    price = jadd(price, _signed_sum4(&arg[ps + 16], &ev[ps + 16]))
    return price


cdef inline J jvar(double value, int which) noexcept nogil:
    cdef J a = jc(value)
    if which == 0:
        a.s = 1.0
    elif which == 1:
        a.o = 1.0
    elif which == 2:
        a.t = 1.0
    else:
        a.r = 1.0
    return a


cdef inline bint _american_is_european(double sgn, double t, double r, double q) noexcept nogil:
    # Early exercise is never optimal for a call when q <= 0 (b >= r) nor for a put when r <= 0 (r >= 0 is
    # required for American options). The early-exercise premium is also below S (1 - e^{-qT}) for a call
    # and K (1 - e^{-rT}) for a put; under 1e-17 of the spot or strike it is below resolution, and the 2002
    # formula, whose beta -> 1 there, is left out (its jets would overflow for q or r near 1e-100).
    return (q * t <= 1e-17) if sgn > 0.0 else (r * t <= 1e-17)


cdef int american_greeks(double sign, double spot, double strike, double t, double vol, double r,
                         double q, GreeksC* out) noexcept nogil:
    # The value is max(Bjerksund-Stensland 2002, European value, exercise value), as in QuantLib's engine.
    # Each of the three is the value of a feasible exercise policy, so the maximum is still a lower bound
    # for the true American price; the 2002 formula alone can fall below the other two (its triggers drop
    # under the strike when b T + 2 v sqrt(T) < 0, and near its trigger it can dip under S - K). The Greeks
    # are those of the branch that attains the maximum.
    cdef J price
    cdef GreeksC euro = _euro(sign, spot, strike, t, vol, r, q)
    cdef double exercise = sign * (spot - strike)
    if _american_is_european(sign, t, r, q):
        # (The exercise floor only bites for a put with r = 0 and q < 0, which the 2002 rule calls European.)
        out[0] = _expired(sign, spot, strike) if exercise > euro.price else euro
        return 0 if _greeks_finite(out[0]) else -1
    if sign > 0.0:
        price = _bs2002_call(jvar(spot, 0), jc(strike), jvar(t, 2), jvar(r, 3), jaddc(jvar(r, 3), -q),
                             jvar(vol, 1))
    else:
        # Put-call transformation: P(S, K, T, r, b, v) = C(K, S, T, r - b, -b, v), with r - b = q.
        price = _bs2002_call(jc(strike), jvar(spot, 0), jvar(t, 2), jc(q), jaddc(jscale(jvar(r, 3), -1.0), q),
                             jvar(vol, 1))
    out.price = price.v
    out.delta = price.s
    out.gamma = price.ss
    out.vega = price.o * 0.01
    out.theta = -price.t * ONE_OVER_DAYS
    out.rho = price.r * 0.01
    out.vanna = price.so * 0.01
    out.charm = -price.st * ONE_OVER_DAYS
    if not _greeks_finite(out[0]) or not _greeks_finite(euro):
        return -1
    if euro.price > out.price:
        out[0] = euro
    if exercise > out.price:
        out[0] = _expired(sign, spot, strike)
    return 0


cdef inline uint8_t _american_flag(double S, double K, double T, double vol, double r, double q) noexcept nogil:
    cdef uint8_t f = _input_flag(S, K, T, vol, r, q)
    if f == FLAG_OK and r < 0.0:
        return FLAG_INVALID
    return f


cdef inline void _american_one(Py_ssize_t i, const uint8_t* ic, const double* S, const double* K,
                               const double* T, const double* vol, const double* r, const double* q,
                               double** outs, int8_t* status) noexcept nogil:
    cdef GreeksC g
    cdef uint8_t f = _american_flag(S[i], K[i], T[i], vol[i], r[i], q[i])
    cdef double sgn = 1.0 if ic[i] else -1.0
    status[i] = STATUS_OK
    if f == FLAG_INVALID:
        g = _nan_greeks()
        status[i] = STATUS_INVALID_INPUT
    elif f == FLAG_EXPIRED:
        g = _expired(sgn, S[i], K[i])
    elif american_greeks(sgn, S[i], K[i], T[i], vol[i], r[i], q[i], &g) != 0:
        g = _nan_greeks()
        status[i] = STATUS_INVALID_INPUT
    _store(outs, i, g)


cdef void _greeks_american_kernel(Py_ssize_t n, const uint8_t* ic, const double* S, const double* K,
                                  const double* T, const double* vol, const double* r, const double* q,
                                  double** outs, int8_t* status) noexcept nogil:
    # Options are independent and each is computed by the same code whichever thread takes it, so the
    # results do not depend on the thread count. Only the options that take the 2002 formula (about
    # 1.5 us each, against 0.1 us for the European ones) are worth a thread wake-up, so they are counted
    # first.
    cdef Py_ssize_t i
    cdef Py_ssize_t costly = 0
    cdef int threads = _core_threads
    if threads > 1 and n >= PARALLEL_MIN_COSTLY:
        for i in range(n):
            costly += not _american_is_european(1.0 if ic[i] else -1.0, T[i], r[i], q[i])
    if threads > 1 and costly >= PARALLEL_MIN_COSTLY:
        for i in prange(n, schedule="dynamic", chunksize=PARALLEL_CHUNK, num_threads=threads):
            _american_one(i, ic, S, K, T, vol, r, q, outs, status)
    else:
        for i in range(n):
            _american_one(i, ic, S, K, T, vol, r, q, outs, status)


# ---------------------------------------------------------------------------------------------------------
# Implied volatility, European: vectorized Householder(3) in normalised variables

cdef Py_ssize_t _iv_step(Py_ssize_t m, IVLanes* L) noexcept nogil:
    # One Householder(3) step for every lane (vectorized); returns how many lanes are still active.
    cdef Py_ssize_t i
    cdef double still = 0.0     # a double reduction keeps the loop vectorizable
    cdef double x, s, bt, bx, ibx, h, t, d1, d2, e1, e2, n1, nm1, b, gap, bp, h1, h2, lb, lp, inv_lb
    cdef double nu_l, g_l, k_l, nu_m, gp, nu_u, g_u, k_u, nu, g, kk, ds, sn, noise, lo, hi, bis, mode
    cdef double act, below, bis_mid, bis_low, bis_up, bis_up2
    cdef bint small, inside, bad
    for i in range(m):
        x = L.x[i]
        s = L.s[i]
        bt = L.beta[i]
        bx = L.bmax[i]
        ibx = 1.0 / bx
        act = L.active[i]
        mode = L.mode[i]
        h = x / s
        t = 0.5 * s
        d1 = h + t
        d2 = h - t                                   # < 0 since x <= 0
        e1 = 0.5 * erfc(fabs(d1) * INV_SQRT2)      # N(-|d1|)
        e2 = 0.5 * erfc(-d2 * INV_SQRT2)           # N(d2)
        n1 = e1 if d1 < 0.0 else 1.0 - e1           # N(d1)
        nm1 = 1.0 - e1 if d1 < 0.0 else e1          # N(-d1)
        b = bx * n1 - ibx * e2
        gap = bx * nm1 + ibx * e2                   # bmax - b, without cancellation
        bp = INV_SQRT_2PI * exp(-0.5 * (h * h + t * t))
        h1 = h * h / s - 0.25 * s                   # b''/b'
        h2 = h1 * h1 - 3.0 * (h / s) * (h / s) - 0.25   # b'''/b'
        below = 1.0 if b < bt else 0.0
        lo = L.lo[i]
        hi = L.hi[i]
        lo = s if (act != 0.0) & (below != 0.0) & (s > lo) else lo
        hi = s if (act != 0.0) & (below == 0.0) & (s < hi) else hi
        # objective 1/ln(b) - 1/ln(beta)
        lb = log(b)
        lp = bp / b
        inv_lb = 1.0 / lb
        nu_l = (L.ln_beta[i] - lb) * lb / L.ln_beta[i] / lp
        g_l = h1 - lp * (1.0 + 2.0 * inv_lb)
        k_l = h2 + 2.0 * lp * lp * (1.0 + 3.0 * inv_lb * (1.0 + inv_lb)) - 3.0 * h1 * lp * (1.0 + 2.0 * inv_lb)
        # objective b - beta
        nu_m = (bt - b) / bp
        # objective ln(bmax - beta) - ln(bmax - b)
        gp = bp / gap
        nu_u = (log(gap) - L.ln_gap[i]) / gp
        g_u = h1 + gp
        k_u = h2 + gp * (2.0 * gp + 3.0 * h1)
        nu = nu_l if mode == 0.0 else (nu_m if mode == 1.0 else nu_u)
        g = g_l if mode == 0.0 else (h1 if mode == 1.0 else g_u)
        kk = k_l if mode == 0.0 else (h2 if mode == 1.0 else k_u)
        ds = nu * (1.0 + 0.5 * g * nu) / (1.0 + nu * (g + kk * nu * (1.0 / 6.0)))
        sn = s + ds
        # The price's own rounding limits how well s is determined; accept a step inside that noise.
        noise = 4.0 * DBL_EPS * (bx * n1 + ibx * e2 + 2.0 * bt) / bp
        small = (fabs(ds) <= IV_STEP_TOLERANCE * s) | ((fabs(ds) <= 2.0 * noise) & (noise <= 1e-3 * s))
        inside = (sn > lo) & (sn < hi)
        bad = (not small) & (not inside)
        bis_mid = sqrt(lo * hi)
        bis_low = 0.5 * hi
        bis_up = 2.0 * s
        bis_up2 = 2.0 * lo
        bis = bis_mid if lo > 0.0 else bis_low
        bis_up = bis_up if s > lo else bis_up2
        bis = bis if hi < INFINITY else bis_up
        sn = bis if bad else sn
        L.s[i] = sn if act != 0.0 else s
        L.lo[i] = lo
        L.hi[i] = hi
        L.iters[i] += act
        act = 0.0 if small else act
        L.active[i] = act
        still += act
    return <Py_ssize_t>still


cdef void _iv_european_block(Py_ssize_t m, const uint8_t* ic, const double* P, const double* S,
                             const double* K, const double* T, const double* r, const double* q,
                             double* vol, int8_t* status, double* iterations) noexcept nogil:
    cdef IVLanes L
    cdef Py_ssize_t i
    cdef int it
    tp_iv_prepare(m, ic, P, S, K, T, r, q, &L, status)
    for it in range(IV_MAX_ITERATIONS):
        if _iv_step(m, &L) == 0:
            break
    for i in range(m):
        if status[i] == STATUS_OK and L.active[i] != 0.0:
            status[i] = STATUS_NO_CONVERGENCE
        vol[i] = L.s[i] / sqrt(T[i]) if status[i] == STATUS_OK else NAN
        if iterations != NULL:
            iterations[i] = L.iters[i]


cdef void _iv_european_kernel(Py_ssize_t n, const uint8_t* ic, const double* P, const double* S,
                              const double* K, const double* T, const double* r, const double* q,
                              double* vol, int8_t* status, double* iterations) noexcept nogil:
    cdef Py_ssize_t start, m
    start = 0
    while start < n:
        m = n - start if n - start < TP_IV_BLOCK else TP_IV_BLOCK
        _iv_european_block(m, ic + start, P + start, S + start, K + start, T + start, r + start, q + start,
                           vol + start, status + start, NULL if iterations == NULL else iterations + start)
        start += m


# ---------------------------------------------------------------------------------------------------------
# Implied volatility, American: safeguarded Newton on the Bjerksund-Stensland price

cdef inline int _american_price_vega(double sgn, double S, double K, double T, double vol, double r, double q,
                                     double* price, double* vega) noexcept nogil:
    cdef GreeksC g
    if american_greeks(sgn, S, K, T, vol, r, q, &g) != 0:
        return -1
    price[0] = g.price
    vega[0] = g.vega * 100.0
    return 0


cdef int8_t _iv_american_one(double sgn, double P, double S, double K, double T, double r, double q,
                             double* vol, double* iterations) noexcept nogil:
    cdef uint8_t one = 1 if sgn > 0.0 else 0
    cdef int8_t st
    cdef double guess, lo, hi, s, a, vega, tv, ln_target, ds, sn, noise, lower, upper, fwd, e_max
    cdef int it
    iterations[0] = 0.0
    if _american_is_european(sgn, T, r, q):
        _iv_european_block(1, &one, &P, &S, &K, &T, &r, &q, vol, &st, iterations)
        return st
    # No vol can give less than the exercise value, nor (European bound) less than the discounted forward
    # intrinsic; an American call is worth less than S and a put less than K.
    fwd = sgn * (S * exp(-q * T) - K * exp(-r * T))
    lower = sgn * (S - K)
    lower = lower if lower > fwd else fwd
    lower = lower if lower > 0.0 else 0.0
    upper = S if sgn > 0.0 else K
    # "At" a bound means within a few ulps of it (see tp_iv_prepare).
    if not (P - lower > (4.0 * DBL_EPS * (S if S > K else K) if lower > 0.0 else 0.0)):
        return STATUS_BELOW_INTRINSIC
    if not (P < upper * (1.0 - 4.0 * DBL_EPS)):
        return STATUS_ABOVE_MAXIMUM
    lo = 0.0
    hi = INFINITY
    # The European implied vol of the same price bounds the American one from above (American >= European
    # at every vol), so it is both a guess and, after one evaluation, a bracket end.
    e_max = S * exp(-q * T) if sgn > 0.0 else K * exp(-r * T)
    guess = 0.3
    if P < e_max:
        _iv_european_block(1, &one, &P, &S, &K, &T, &r, &q, &guess, &st, NULL)
        if st != STATUS_OK:
            guess = 0.3
    s = guess
    # Newton on g(s) = ln(A(s) - lower) - ln(P - lower): the log of the time value is close to linear in
    # the vol for tiny out-of-the-money prices as well, where Newton on the price itself crawls.
    ln_target = log(P - lower)
    for it in range(100):
        if _american_price_vega(sgn, S, K, T, s, r, q, &a, &vega) != 0:
            return STATUS_NO_CONVERGENCE
        iterations[0] += 1.0
        tv = a - lower
        if a > P:
            hi = s if s < hi else hi
        else:
            lo = s if s > lo else lo
        # The 2002 formula sums terms of the size of S and K, so its value carries an absolute error of a
        # few eps (S + K); below that the price does not pin the vol down.
        if tv > 0.0 and vega > 0.0:
            ds = -(log(tv) - ln_target) * tv / vega
            sn = s + ds
            noise = 8.0 * DBL_EPS * (fabs(a) + S + K) / vega
            if fabs(ds) <= 1e-12 * s or fabs(ds) <= 2.0 * noise:
                if noise > 1e-4 * s:
                    # At the noise floor, but the price fixes the vol only to worse than 1e-4: no answer.
                    return STATUS_NO_CONVERGENCE
                vol[0] = sn if (sn > lo) and (sn < hi) else s
                return STATUS_OK
        else:
            # At or below the lower bound (the 2002 trigger has the option exercised at this vol): bisect.
            sn = INFINITY
        if not ((sn > lo) and (sn < hi)):
            if hi < INFINITY:
                sn = sqrt(lo * hi) if lo > 0.0 else 0.5 * hi
            else:
                sn = 2.0 * s
        if sn > AMERICAN_IV_MAX_VOL:
            if _american_price_vega(sgn, S, K, T, AMERICAN_IV_MAX_VOL, r, q, &a, &vega) == 0 and a < P:
                return STATUS_ABOVE_MAXIMUM
            sn = AMERICAN_IV_MAX_VOL if AMERICAN_IV_MAX_VOL < hi else 0.5 * (s + hi)
        if sn < AMERICAN_IV_MIN_VOL:
            if _american_price_vega(sgn, S, K, T, AMERICAN_IV_MIN_VOL, r, q, &a, &vega) == 0 and a > P:
                return STATUS_BELOW_INTRINSIC
            sn = AMERICAN_IV_MIN_VOL if AMERICAN_IV_MIN_VOL > lo else 0.5 * (s + lo)
        s = sn
    return STATUS_NO_CONVERGENCE


cdef void _iv_american_kernel(Py_ssize_t n, const uint8_t* ic, const double* P, const double* S,
                              const double* K, const double* T, const double* r, const double* q,
                              double* vol, int8_t* status, double* iterations) noexcept nogil:
    cdef Py_ssize_t i
    cdef double its
    cdef int8_t st
    cdef bint ok
    for i in range(n):
        ok = ((P[i] - P[i] == 0.0) & (S[i] > 0.0) & (S[i] < INFINITY) & (K[i] > 0.0) & (K[i] < INFINITY)
              & (T[i] > 0.0) & (T[i] < INFINITY) & (r[i] >= 0.0) & (r[i] < INFINITY)
              & (fabs(q[i]) < INFINITY))
        its = 0.0
        if ok:
            st = _iv_american_one(1.0 if ic[i] else -1.0, P[i], S[i], K[i], T[i], r[i], q[i], &vol[i], &its)
        else:
            st = STATUS_INVALID_INPUT
        status[i] = st
        if st != STATUS_OK:
            vol[i] = NAN
        if iterations != NULL:
            iterations[i] = its


# ---------------------------------------------------------------------------------------------------------
# Output memory

# The eight output columns and the status bytes of greeks_array live in one block (65 bytes an option). Fresh
# memory is expensive here: the kernel faults it in and zeroes it, about 4 ns an option on this VM, a third
# of the whole kernel. So the block of the last result that was dropped is kept (one slot, blocks of 1 MB to
# 256 MB) and handed to the next call of at most its size: a caller that prices batch after batch and lets
# each result go before the next call never touches fresh memory. Results that are kept alive are never
# reused; the slot is only filled by a block whose arrays have all been released.
cdef size_t CACHE_MIN_BYTES = 1 << 20
cdef size_t CACHE_MAX_BYTES = 1 << 28
cdef void* _cached_block = NULL
cdef size_t _cached_bytes = 0


@cython.auto_pickle(False)
cdef class _OutputBlock:
    """Owner (NumPy base object) of a greeks_array result's memory."""

    cdef void* ptr
    cdef size_t nbytes

    cdef int acquire(self, size_t nbytes) except -1:
        global _cached_block, _cached_bytes
        if _cached_block != NULL and nbytes <= _cached_bytes <= 2 * nbytes:
            self.ptr = _cached_block
            self.nbytes = _cached_bytes
            _cached_block = NULL
            _cached_bytes = 0
            return 0
        self.ptr = tp_block_alloc(nbytes)
        if self.ptr == NULL:
            raise MemoryError(f"cannot allocate {nbytes} bytes for the Greeks")
        self.nbytes = nbytes
        return 0

    def __dealloc__(self):
        global _cached_block, _cached_bytes
        if self.ptr == NULL:
            return
        if CACHE_MIN_BYTES <= self.nbytes <= CACHE_MAX_BYTES and self.nbytes >= _cached_bytes:
            if _cached_block != NULL:
                free(_cached_block)
            _cached_block = self.ptr
            _cached_bytes = self.nbytes
        else:
            free(self.ptr)
        self.ptr = NULL


cdef object _view(_OutputBlock owner, void* data, cnp.npy_intp* dims, int typenum):
    arr = cnp.PyArray_SimpleNewFromData(1, dims, typenum, data)
    cnp.set_array_base(arr, owner)
    return arr


# ---------------------------------------------------------------------------------------------------------
# Python API

cdef inline int _parse_style(object style) except -1:
    if style == "european":
        return STYLE_EUROPEAN
    if style == "american":
        return STYLE_AMERICAN
    raise ValueError(f"style must be 'european' or 'american', got {style!r}")


cdef inline double _parse_kind(object kind) except 0.0:
    if kind == "call":
        return 1.0
    if kind == "put":
        return -1.0
    raise ValueError(f"kind must be 'call' or 'put', got {kind!r}")


cdef inline int _check_positive(str name, double value) except -1:
    if not (value > 0.0 and value < INFINITY):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return 0


cdef inline int _check_finite(str name, double value) except -1:
    if not (fabs(value) < INFINITY):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return 0


cdef int _check_common(double spot, double strike, double expiry_years, double rate, double dividend_yield,
                       int style) except -1:
    _check_positive("spot", spot)
    _check_positive("strike", strike)
    if not (expiry_years >= 0.0 and expiry_years < INFINITY):
        raise ValueError(f"expiry_years must be a finite number >= 0, got {expiry_years!r}")
    _check_finite("rate", rate)
    _check_finite("dividend_yield", dividend_yield)
    if style == STYLE_AMERICAN and rate < 0.0:
        raise ValueError(f"rate must be >= 0 for style='american' (Bjerksund-Stensland 2002), got {rate!r}")
    return 0


def greeks(kind, double spot, double strike, double expiry_years, double volatility, double rate=0.0,
           double dividend_yield=0.0, style="european"):
    """Price and Greeks of one option.

    European options use the generalized Black-Scholes-Merton formula with cost of carry
    b = rate - dividend_yield. American options use the Bjerksund-Stensland (2002) approximation, floored by
    the European value and the exercise value (as QuantLib's engine does: each is the value of a feasible
    exercise policy, so the result stays a lower bound of the true American price); their Greeks are the
    exact derivatives of that price (forward-mode automatic differentiation, not finite differences). An
    American call with dividend_yield <= 0, or put with rate == 0, is never exercised early and is priced
    European.

    Args:
        kind: "call" or "put".
        spot: Price of the underlying, > 0.
        strike: Strike price, > 0.
        expiry_years: Time to expiry in years (365-day), >= 0; 0 means the option expires now.
        volatility: Annualised volatility as a fraction (0.2 for 20 %), > 0.
        rate: Continuously compounded risk-free rate as a fraction; >= 0 for American options.
        dividend_yield: Continuously compounded dividend yield as a fraction.
        style: "european" or "american".

    Returns:
        Greeks with price, delta (dV/dS), gamma (d2V/dS2), vega (per 1 vol point, 0.01), theta (change of
        value when one calendar day, 1/365 year, passes), rho (per 1 percentage point of the rate, dividend
        yield fixed), vanna (change of delta per 1 vol point) and charm (change of delta per calendar day).
        At expiry_years == 0: intrinsic value, delta 0 or +/-1 (0 at the money), the other Greeks 0.

    Raises:
        ValueError: An argument is NaN, infinite or out of range (the message names it), kind or style is
            unknown, or the inputs are so extreme that the result is not finite in double precision.
    """
    cdef double sgn = _parse_kind(kind)
    cdef int st = _parse_style(style)
    cdef GreeksC g
    cdef int rc = 0
    _check_common(spot, strike, expiry_years, rate, dividend_yield, st)
    _check_positive("volatility", volatility)
    if expiry_years == 0.0:
        return _make_greeks(_expired(sgn, spot, strike))
    if st == STYLE_EUROPEAN:
        g = _euro(sgn, spot, strike, expiry_years, volatility, rate, dividend_yield)
        rc = 0 if _greeks_finite(g) else -1
    else:
        rc = american_greeks(sgn, spot, strike, expiry_years, volatility, rate, dividend_yield, &g)
    if rc != 0:
        raise ValueError(
            "the inputs are too extreme for a finite result in double precision "
            f"(spot={spot!r}, strike={strike!r}, expiry_years={expiry_years!r}, volatility={volatility!r}, "
            f"rate={rate!r}, dividend_yield={dividend_yield!r})"
        )
    return _make_greeks(g)


def implied_volatility(kind, double price, double spot, double strike, double expiry_years, double rate=0.0,
                       double dividend_yield=0.0, style="european"):
    """The volatility at which the model reproduces a price.

    European: to the accuracy the price's own rounding allows (1e-15 relative where the price pins the
    volatility down that well), in two or three third-order Householder steps. American: the price of
    greeks(style="american") is inverted by bracketed Newton steps with its exact vega; a price that fixes
    the volatility only to worse than 1e-4 (where that price is flat in the volatility) has no answer.

    Intrinsic value and maximum: for a European call max(S e^{-qT} - K e^{-rT}, 0) and S e^{-qT}, for a put
    max(K e^{-rT} - S e^{-qT}, 0) and K e^{-rT}; for an American option the larger of the exercise value and
    the European intrinsic, and S (call) or K (put). A price within a few ulps of a bound counts as at it.

    Args:
        kind: "call" or "put".
        price: Option price, in the currency of spot and strike.
        spot: Price of the underlying, > 0.
        strike: Strike price, > 0.
        expiry_years: Time to expiry in years (365-day), > 0.
        rate: Continuously compounded risk-free rate as a fraction; >= 0 for American options.
        dividend_yield: Continuously compounded dividend yield as a fraction.
        style: "european" or "american".

    Returns:
        The annualised volatility as a fraction (0.2 for 20 %). Never 0.0 or a stand-in value: a price no
        volatility reproduces raises.

    Raises:
        PriceBelowIntrinsic: The price is at or below the intrinsic value.
        PriceAboveMaximum: The price is at or above the no-arbitrage maximum.
        NoConvergence: No volatility could be determined (American prices that barely depend on it).
        ValueError: An argument is NaN, infinite or out of range (the message names it), or kind or style is
            unknown.
    """
    cdef double sgn = _parse_kind(kind)
    cdef int stl = _parse_style(style)
    cdef uint8_t ic = 1 if sgn > 0.0 else 0
    cdef double vol = NAN
    cdef double its = 0.0
    cdef int8_t st
    _check_finite("price", price)
    _check_common(spot, strike, expiry_years, rate, dividend_yield, stl)
    if expiry_years == 0.0:
        raise ValueError("expiry_years must be > 0 to imply a volatility, got 0.0")
    if stl == STYLE_EUROPEAN:
        _iv_european_block(1, &ic, &price, &spot, &strike, &expiry_years, &rate, &dividend_yield, &vol, &st,
                           NULL)
    else:
        st = _iv_american_one(sgn, price, spot, strike, expiry_years, rate, dividend_yield, &vol, &its)
    if st == STATUS_OK:
        return vol
    if st == STATUS_BELOW_INTRINSIC:
        raise PriceBelowIntrinsic(f"price {price!r} is at or below the intrinsic value of this {kind}")
    if st == STATUS_ABOVE_MAXIMUM:
        raise PriceAboveMaximum(f"price {price!r} is at or above the no-arbitrage maximum of this {kind}")
    if st == STATUS_NO_CONVERGENCE:
        raise NoConvergence(f"implied volatility did not converge for price {price!r}")
    raise ValueError("invalid input")


cdef object _as_float_array(str name, object value):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a float64 array or a number") from exc
    if arr.ndim > 1:
        raise ValueError(f"{name} must be 1-dimensional or a scalar, got shape {arr.shape}")
    return arr


cdef object _as_bool_array(object value):
    arr = np.asarray(value)
    if arr.dtype != np.bool_:
        raise TypeError(f"is_call must be a bool or a NumPy bool array, got dtype {arr.dtype}")
    if arr.ndim > 1:
        raise ValueError(f"is_call must be 1-dimensional or a scalar, got shape {arr.shape}")
    return arr


cdef list _broadcast(list names, list arrays):
    cdef Py_ssize_t n = -1
    cdef Py_ssize_t k
    for k in range(len(arrays)):
        if arrays[k].ndim == 1:
            if n == -1:
                n = arrays[k].shape[0]
            elif arrays[k].shape[0] != n:
                raise ValueError(
                    f"{names[k]} has length {arrays[k].shape[0]}, but the other arrays have length {n}")
    if n == -1:
        n = 1
    out = []
    for k in range(len(arrays)):
        a = arrays[k]
        if a.ndim == 0 or a.shape[0] != n:
            a = np.broadcast_to(a, (n,))
        if k == 0:
            a = np.ascontiguousarray(a).view(np.uint8)
        else:
            a = np.ascontiguousarray(a)
        out.append(a)
    return out


def set_threads(threads):
    """Set how many threads the American array kernels may use (1 keeps every call on the calling thread).

    Results do not depend on it. ``core_ext`` sets it at import from ``TASTYPLAT_CORE_THREADS``, else
    min(2, CPUs available to the process).

    Args:
        threads: Thread count, >= 1.

    Raises:
        ValueError: threads < 1.
        TypeError: threads is not an int.
    """
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int, not {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    global _core_threads
    _core_threads = min(threads, 256)


def get_threads():
    """How many threads the American array kernels may use (see set_threads)."""
    return _core_threads


def greeks_array(is_call, spot, strike, expiry_years, volatility, rate, dividend_yield, style="european"):
    """Price and Greeks of many options at once (the loop runs without the GIL).

    Args:
        is_call: NumPy bool array (True for a call, False for a put), or one bool for all.
        spot: Underlying prices (float64 array or scalar).
        strike: Strikes.
        expiry_years: Times to expiry in years (365-day), >= 0.
        volatility: Annualised volatilities as fractions.
        rate: Continuously compounded rates; >= 0 for American options.
        dividend_yield: Continuously compounded dividend yields.
        style: "european" or "american", for all options.

    All arrays have one length; scalars broadcast. Units and models are those of greeks().

    Returns:
        GreeksArray with one float64 array per output and an int8 status array of Status values; every
        output of an option whose status is not OK is NaN (invalid input gives INVALID_INPUT). The nine
        arrays share one block of memory, which is recycled for a later call once all of them are released.

    Raises:
        ValueError: Unknown style, or arrays of different lengths or more than one dimension.
        TypeError: is_call is not boolean, or a numeric input cannot be converted to float64.
    """
    cdef int stl = _parse_style(style)
    names = ["is_call", "spot", "strike", "expiry_years", "volatility", "rate", "dividend_yield"]
    arrays = _broadcast(names, [_as_bool_array(is_call), _as_float_array("spot", spot),
                                _as_float_array("strike", strike), _as_float_array("expiry_years", expiry_years),
                                _as_float_array("volatility", volatility), _as_float_array("rate", rate),
                                _as_float_array("dividend_yield", dividend_yield)])
    cdef const uint8_t[::1] ic = arrays[0]
    cdef const double[::1] S = arrays[1]
    cdef const double[::1] K = arrays[2]
    cdef const double[::1] T = arrays[3]
    cdef const double[::1] V = arrays[4]
    cdef const double[::1] R = arrays[5]
    cdef const double[::1] Q = arrays[6]
    cdef Py_ssize_t n = S.shape[0]
    cdef _OutputBlock owner = _OutputBlock.__new__(_OutputBlock)
    owner.acquire(<size_t>n * 65 if n > 0 else 64)
    cdef double* base = <double*>owner.ptr
    cdef double* outs[8]
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    out = []
    cdef int j
    for j in range(8):
        outs[j] = base + j * n
        out.append(_view(owner, outs[j], dims, cnp.NPY_DOUBLE))
    cdef int8_t* st = <int8_t*>(base + 8 * n)
    status = _view(owner, st, dims, cnp.NPY_INT8)
    if n > 0:
        with nogil:
            if stl == STYLE_EUROPEAN:
                _greeks_european_kernel(n, &ic[0], &S[0], &K[0], &T[0], &V[0], &R[0], &Q[0], outs, st)
            else:
                _greeks_american_kernel(n, &ic[0], &S[0], &K[0], &T[0], &V[0], &R[0], &Q[0], outs, st)
    return GreeksArray(out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7], status)


cdef tuple _iv_array(is_call, price, spot, strike, expiry_years, rate, dividend_yield, style, bint want_iterations):
    cdef int stl = _parse_style(style)
    names = ["is_call", "price", "spot", "strike", "expiry_years", "rate", "dividend_yield"]
    arrays = _broadcast(names, [_as_bool_array(is_call), _as_float_array("price", price),
                                _as_float_array("spot", spot), _as_float_array("strike", strike),
                                _as_float_array("expiry_years", expiry_years), _as_float_array("rate", rate),
                                _as_float_array("dividend_yield", dividend_yield)])
    cdef const uint8_t[::1] ic = arrays[0]
    cdef const double[::1] P = arrays[1]
    cdef const double[::1] S = arrays[2]
    cdef const double[::1] K = arrays[3]
    cdef const double[::1] T = arrays[4]
    cdef const double[::1] R = arrays[5]
    cdef const double[::1] Q = arrays[6]
    cdef Py_ssize_t n = P.shape[0]
    vols = np.empty(n, dtype=np.float64)
    status = np.empty(n, dtype=np.int8)
    iterations = np.zeros(n, dtype=np.float64) if want_iterations else None
    cdef double[::1] vv = vols
    cdef int8_t[::1] st = status
    cdef double[::1] itv
    cdef double* itp = NULL
    if want_iterations and n > 0:
        itv = iterations
        itp = &itv[0]
    if n > 0:
        with nogil:
            if stl == STYLE_EUROPEAN:
                _iv_european_kernel(n, &ic[0], &P[0], &S[0], &K[0], &T[0], &R[0], &Q[0], &vv[0], &st[0], itp)
            else:
                _iv_american_kernel(n, &ic[0], &P[0], &S[0], &K[0], &T[0], &R[0], &Q[0], &vv[0], &st[0], itp)
    return vols, status, iterations


def implied_volatility_array(is_call, price, spot, strike, expiry_years, rate, dividend_yield, style="european"):
    """Implied volatilities of many options at once (the loop runs without the GIL).

    Args:
        is_call: NumPy bool array (True for a call, False for a put), or one bool for all.
        price: Option prices (float64 array or scalar).
        spot: Underlying prices.
        strike: Strikes.
        expiry_years: Times to expiry in years (365-day), > 0.
        rate: Continuously compounded rates; >= 0 for American options.
        dividend_yield: Continuously compounded dividend yields.
        style: "european" or "american", for all options.

    Returns:
        (vols, status): float64 annualised volatilities and an int8 array of Status values. A price at or
        below intrinsic gives BELOW_INTRINSIC, at or above the maximum ABOVE_MAXIMUM, invalid input
        (including expiry_years == 0) INVALID_INPUT; the vol of every such option is NaN, never 0.0.

    Raises:
        ValueError: Unknown style, or arrays of different lengths or more than one dimension.
        TypeError: is_call is not boolean, or a numeric input cannot be converted to float64.
    """
    vols, status, _ = _iv_array(is_call, price, spot, strike, expiry_years, rate, dividend_yield, style, False)
    return vols, status


def _implied_volatility_iterations(is_call, price, spot, strike, expiry_years, rate, dividend_yield,
                                   style="european"):
    """Like implied_volatility_array, plus the number of solver steps per option (for tests and benchmarks)."""
    return _iv_array(is_call, price, spot, strike, expiry_years, rate, dividend_yield, style, True)
