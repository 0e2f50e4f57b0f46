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
logs (a huge power times a tiny probability), which keeps the formula finite at low vol. The formula and its
jet arithmetic are written in C (a jet is one SIMD vector) and its transcendentals run in vectorized batches.
The bivariate normal uses Drezner-Wesolowsky's integral on 14 Gauss-Legendre nodes (Genz (2004) takes 20),
exact to double precision in absolute terms for the fixed correlation +/- sqrt(t1/T) = +/- 0.786 the formula
needs. American implied vols come from Newton steps on the log of the time value, bracketed, starting from
the European implied vol (an upper bound).
"""

import enum

import numpy as np

cimport cython
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport int8_t, uint8_t
from cpython.pycapsule cimport PyCapsule_New
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
       together so that their transcendentals (ln N of 80 arguments, the quadrature exponentials, the logs and
       the ratios of the derivatives) run through libmvec's vector functions instead of scalar libm. Every
       select is a two-way ternary so gcc if-converts and vectorizes the lane loops. */
    #define TP_BVN_PAIRS 20
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
    /* ln N(x) and the inverse Mills ratio n(x)/N(x) for n lanes, vectorized */
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

    /* The correlation is always +/- rho = sqrt(t1/T) = 0.786 (t1 = T (sqrt 5 - 1)/2), and
       M(a, b; r) = N(a) N(b) + (1/2 pi) int_0^asin r exp(-(a^2 + b^2 - 2 a b sin u) / (2 cos^2 u)) du
       (Drezner-Wesolowsky) is taken with Gauss-Legendre on TP_BVN_NODES = 14 nodes. Its absolute error is
       then below 2e-16 for every a, b (against 96 nodes over |a|, |b| <= 12; further out every node term is
       below 1e-30), as with the 20 nodes of Genz's BVND (his rule for 0.75 <= |r| < 0.925, aimed at an
       absolute 1e-15); 12 nodes leave 1e-15. Relative to a tiny M (+rho, both arguments far below 0) neither
       rule is exact; the 2002 formula gives those terms small weights. Between 14 and 96 nodes (30 digits)
       the 2002 price moves by less than 1e-16 of max(price, 1) on 540 random options of the test ranges. The
       nodes and weights are the Legendre polynomial's to 17 digits. */
    #define TP_BVN_NODES 14
    #define TP_BS_T1_FRACTION 0.61803398874989484820
    #define TP_BS_RHO 0.78615137775742328607      /* sqrt(t1 / T) */
    #define TP_BS_RHO_C 0.61803398874989484820    /* sqrt(1 - rho^2) (= rho^2, the golden ratio again) */
    #define TP_BS_INV_RHO_C 1.61803398874989484820
    static const double tp_gl_x[TP_BVN_NODES] = {
        -0.9862838086968123, -0.9284348836635735, -0.827201315069765, -0.6872929048116855, -0.5152486363581541,
        -0.31911236892788974, -0.10805494870734367, 0.10805494870734367, 0.31911236892788974, 0.5152486363581541,
        0.6872929048116855, 0.827201315069765, 0.9284348836635735, 0.9862838086968123};
    static const double tp_gl_w[TP_BVN_NODES] = {
        0.03511946033175186, 0.08015808715976021, 0.12151857068790319, 0.15720316715819355, 0.18553839747793782,
        0.2051984637212956, 0.2152638534631578, 0.2152638534631578, 0.2051984637212956, 0.18553839747793782,
        0.15720316715819355, 0.12151857068790319, 0.08015808715976021, 0.03511946033175186};
    /* The psi terms' pairs come in fours, two with +rho and two with -rho (tp_bvn_neg[i] = 0 or 1). For pair i,
       M(a, b) = N(a) N(b) +/- sum_j exp(tp_bvn_lna[j] + (tp_bvn_sn[j][i] a b - (a^2 + b^2)/2) tp_bvn_inv[j][i]);
       ln |A_j| is the same for both signs. The nodes are laid out per pair so the loops need no selects. */
    static double tp_bvn_lna[TP_BVN_NODES], tp_bvn_sn[TP_BVN_NODES][TP_BVN_PAIRS];
    static double tp_bvn_inv[TP_BVN_NODES][TP_BVN_PAIRS], tp_bvn_neg[TP_BVN_PAIRS];
    static void tp_bvn_init(void) {
        for (int i = 0; i < TP_BVN_PAIRS; i++) {
            int k = (i & 3) >= 2;
            double asr = asin(k == 0 ? TP_BS_RHO : -TP_BS_RHO);
            tp_bvn_neg[i] = k;
            for (int j = 0; j < TP_BVN_NODES; j++) {
                double sn = sin(asr * (tp_gl_x[j] + 1.0) * 0.5);
                tp_bvn_sn[j][i] = sn;
                tp_bvn_inv[j][i] = 1.0 / (1.0 - sn * sn);
                if (k == 0) tp_bvn_lna[j] = log(tp_gl_w[j] * asr / (4.0 * 3.14159265358979323846));
            }
        }
    }
    /* tp_ln_bvn_batch where every probability and every quadrature term is a normal double (most options):
       x holds a, b, (b - r a)/rho_c and (a - r b)/rho_c, all > -26, so each N is above 1e-149, and
       (a^2 + b^2)/2 <= 100, so each node term is above e^-530 (its exponent is at least
       ln|A_j| - (a^2 + b^2) / (1 - rho^2)). M and its ratios are then formed directly, without the logs of
       the general path; a ratio is capped at e^700 as there. (The floor of the joint density at e^-700 is
       harmless: the numerators of M_a/M and M_b/M are above e^-443.) */
    static void tp_ln_bvn_direct(const double *__restrict__ a, const double *__restrict__ b,
                                 const double *__restrict__ x, double *__restrict__ lm, double *__restrict__ rat) {
        enum { P = TP_BVN_PAIRS, NQ = TP_BVN_NODES };
        const double *neg = tp_bvn_neg;
        double nx[4 * P], ab[P], hs[P], acc[P], den[P], q[NQ * P];
        const double lo = tp_opaque(-700.0), hi = tp_opaque(700.0), one = tp_opaque(1.0);
        const double cap = 1.0142320547350045e+304;   /* e^700 */
        for (int k = 0; k < 4 * P; k++) nx[k] = 0.5 * erfc(-x[k] * 0.70710678118654752440);
        for (int i = 0; i < P; i++) {
            ab[i] = a[i] * b[i];
            hs[i] = 0.5 * (a[i] * a[i] + b[i] * b[i]);
            acc[i] = 0.0;
        }
        for (int j = 0; j < NQ; j++)
            for (int i = 0; i < P; i++)
                q[j * P + i] = tp_bvn_lna[j] + (tp_bvn_sn[j][i] * ab[i] - hs[i]) * tp_bvn_inv[j][i];
        for (int k = 0; k < NQ * P; k++) q[k] = exp(q[k]);
        for (int j = 0; j < NQ; j++)
            for (int i = 0; i < P; i++) acc[i] += q[j * P + i];
        for (int i = 0; i < P; i++) {
            double t = nx[i] * nx[P + i];
            double s = neg[i] != 0.0 ? t - acc[i] : t + acc[i];
            /* the negative-correlation correction can cancel N(a) N(b) below resolution: M is negligible */
            den[i] = s > 0.0 ? s : one;
            double sl = log(den[i]);
            lm[i] = s > 0.0 ? sl : -INFINITY;
        }
        for (int i = 0; i < P; i++) {
            double ua = x[2 * P + i];
            rat[i] = -0.5 * a[i] * a[i];
            rat[P + i] = -0.5 * b[i] * b[i];
            rat[2 * P + i] = -0.5 * (a[i] * a[i] + ua * ua);
        }
        for (int k = 0; k < 3 * P; k++) rat[k] = tp_exp_clamped(rat[k], lo, hi);
        for (int i = 0; i < P; i++) {
            double inv = 1.0 / den[i];
            double ra = rat[i] * nx[2 * P + i] * (0.39894228040143267794 * inv);
            double rb = rat[P + i] * nx[3 * P + i] * (0.39894228040143267794 * inv);
            double rab = rat[2 * P + i] * (0.15915494309189533577 * TP_BS_INV_RHO_C * inv);
            rat[i] = ra < cap ? ra : cap;
            rat[P + i] = rb < cap ? rb : cap;
            rat[2 * P + i] = rab < cap ? rab : cap;
        }
    }
    /* For the TP_BVN_PAIRS pairs (a, b) with correlation +rho or -rho (tp_bvn_neg[i] = 0 or 1): lm = ln M and
       the ratios rat[i] = M_a / M, rat[P + i] = M_b / M, rat[2 P + i] = M_ab / M. lm is -inf where M is below
       resolution. In general M is formed in logs (a scale e^m taken out), which holds in the far tails where
       N underflows. Loops over all nodes of all pairs are flat (whole vectors for libmvec, no remainders);
       each pair still sums its nodes in order. */
    static void tp_ln_bvn_batch(const double *__restrict__ a, const double *__restrict__ b, double *__restrict__ lm,
                                double *__restrict__ rat) {
        const double *neg = tp_bvn_neg;
        enum { P = TP_BVN_PAIRS, NQ = TP_BVN_NODES };
        double x[4 * P], l[4 * P], m[P], ab[P], hs[P], acc[P], q[NQ * P];
        const double lo = tp_opaque(-700.0), hi = tp_opaque(700.0), tail = tp_opaque(-30.0), one = tp_opaque(1.0);
        int direct = 1;
        for (int i = 0; i < P; i++) {
            double r = neg[i] != 0.0 ? -TP_BS_RHO : TP_BS_RHO;
            x[i] = a[i];
            x[P + i] = b[i];
            x[2 * P + i] = (b[i] - r * a[i]) * TP_BS_INV_RHO_C;
            x[3 * P + i] = (a[i] - r * b[i]) * TP_BS_INV_RHO_C;
            direct &= 0.5 * (a[i] * a[i] + b[i] * b[i]) <= 100.0;
        }
        for (int k = 0; k < 4 * P; k++) direct &= x[k] > -26.0;
        if (direct) {
            tp_ln_bvn_direct(a, b, x, lm, rat);
            return;
        }
        for (int k = 0; k < 4 * P; k++) {
            /* clamped so that erfc never underflows into log(0), a slow path of libmvec's log */
            double xc = x[k] > tail ? x[k] : tail;
            l[k] = log(0.5 * erfc(-xc * 0.70710678118654752440));
        }
        for (int k = 0; k < 4 * P; k++)
            if (!(x[k] > -30.0)) l[k] = tp_ln_ncdf_tail(x[k]);
        for (int i = 0; i < P; i++) {
            ab[i] = a[i] * b[i];
            hs[i] = 0.5 * (a[i] * a[i] + b[i] * b[i]);
            m[i] = l[i] + l[P + i];
            acc[i] = 0.0;
        }
        /* node-major: the max and the sum vectorize across pairs */
        for (int j = 0; j < NQ; j++)
            for (int i = 0; i < P; i++) {
                double ej = tp_bvn_lna[j] + (tp_bvn_sn[j][i] * ab[i] - hs[i]) * tp_bvn_inv[j][i];
                q[j * P + i] = ej;
                m[i] = ej > m[i] ? ej : m[i];
            }
        for (int j = 0; j < NQ; j++)
            for (int i = 0; i < P; i++) q[j * P + i] -= m[i];
        for (int k = 0; k < NQ * P; k++) q[k] = tp_exp_clamped(q[k], lo, hi);
        for (int j = 0; j < NQ; j++)
            for (int i = 0; i < P; i++) acc[i] += q[j * P + i];
        for (int i = 0; i < P; i++) {
            /* clamping is exact here: below -700, t is nil beside acc >= 1 (the largest node term is 1) */
            double t = tp_exp_clamped(l[i] + l[P + i] - m[i], lo, hi);
            double s = neg[i] != 0.0 ? t - acc[i] : t + acc[i];
            /* the negative-correlation correction can cancel N(a) N(b) below resolution: M is negligible */
            /* (log of a stand-in 1 there: a negative argument would take libmvec's scalar slow path) */
            double sl = log(s > 0.0 ? s : one);
            lm[i] = s > 0.0 ? m[i] + sl : -INFINITY;
        }
        for (int i = 0; i < P; i++) {
            double lpa = -0.5 * a[i] * a[i] - 0.91893853320467274178;
            double lpb = -0.5 * b[i] * b[i] - 0.91893853320467274178;
            double ua = x[2 * P + i];
            double lpua = -0.5 * ua * ua - 0.91893853320467274178;
            rat[i] = lpa + l[2 * P + i] - lm[i];
            rat[P + i] = lpb + l[3 * P + i] - lm[i];
            rat[2 * P + i] = lpa + lpua - lm[i];
        }
        for (int k = 0; k < 3 * P; k++) rat[k] = tp_exp_clamped(rat[k], lo, hi);
        for (int i = 0; i < P; i++) rat[2 * P + i] *= TP_BS_INV_RHO_C;
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
# Bounds of the American implied-vol search (annualised vol).
cdef double AMERICAN_IV_MAX_VOL = 20.0
cdef double AMERICAN_IV_MIN_VOL = 1e-4



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
#
# A jet carries a value, its first derivatives with respect to spot (s), volatility (o), time to expiry (t)
# and rate (r), and the second derivatives spot-spot, spot-vol and spot-time. The product and chain rules
# below are closed over exactly these components, so every Greek comes out exact to rounding.
#
# The formula is written in C: a jet is one vector of eight doubles (GCC/Clang vector extensions; one AVX-512
# register, two AVX2 ones), so a sum is one instruction and a product a handful. As a Cython struct of eight
# doubles every jet operation was scalar code, about 40 % of an option's time.

cdef extern from * nogil:
    """
    /* [v, s, o, t, r, ss, so, st]: value, d/dS, d/dvol, d/dT, d/dr, d2/dS2, d2/dS dvol, d2/dS dT */
    typedef double tp_jet __attribute__((vector_size(64)));
    #if defined(__GNUC__) && !defined(__clang__)
    /* gcc notes that a 64-byte vector is passed differently without AVX-512; jets only pass between static
       functions of this file, so the note is moot for the AVX2 (or older) builds */
    #pragma GCC diagnostic ignored "-Wpsabi"
    #endif
    #if defined(__clang__) || __GNUC__ >= 12
    #define TP_JSHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
    #else
    typedef long long tp_jet_index __attribute__((vector_size(64)));
    #define TP_JSHUF(a, b, ...) __builtin_shuffle(a, b, (tp_jet_index){__VA_ARGS__})
    #endif
    static inline tp_jet tp_jc(double c) {
        tp_jet a = {c};
        return a;
    }
    static inline tp_jet tp_jvar(double c, int lane) {
        tp_jet a = {c};
        a[lane] = 1.0;
        return a;
    }
    static inline tp_jet tp_jaddc(tp_jet a, double c) {
        a[0] += c;
        return a;
    }
    /* [0, 0, 0, 0, 0, a.s, a.o, a.t]: what the second-order components pair with a partner's d/dS */
    static inline tp_jet tp_jhi(tp_jet a) {
        const tp_jet z = {0.0};
        return TP_JSHUF(a, z, 8, 8, 8, 8, 8, 1, 2, 3);
    }
    /* The value lane is kept to a.v b.v in the product and f0 in the chain rule: the other terms are moved into
       lanes 1-7 by shuffles that put an exact 0 in lane 0 (a product 0 * x would turn an infinite derivative,
       an overflowed tail slope the caller may still drop, into a NaN value). */
    static inline tp_jet tp_jmul(tp_jet a, tp_jet b) {
        const tp_jet z = {0.0};
        /* lanes s, o, t of a b.s + b a.s are the cross terms of ss, so, st */
        return a * b[0] + TP_JSHUF(b * a[0], z, 8, 1, 2, 3, 4, 5, 6, 7) + tp_jhi(a * b[1] + b * a[1]);
    }
    /* f(a) for a scalar function with f(a.v) = f0, f'(a.v) = f1, f''(a.v) = f2 */
    static inline tp_jet tp_japply(tp_jet a, double f0, double f1, double f2) {
        tp_jet c = a * f1 + tp_jhi(a) * (f2 * a[1]);
        c[0] = f0;
        return c;
    }
    static inline tp_jet tp_jrecip(tp_jet a) {
        double f0 = 1.0 / a[0];
        return tp_japply(a, f0, -f0 * f0, 2.0 * f0 * f0 * f0);
    }
    static inline tp_jet tp_jdiv(tp_jet a, tp_jet b) {
        return tp_jmul(a, tp_jrecip(b));
    }
    static inline tp_jet tp_jexpm1(tp_jet a) {
        /* e^a = 1 + expm1(a) to 2 ulps while that is at least 1/2 (the usual case), saving a call */
        double em1 = expm1(a[0]);
        double e = em1 > -0.5 ? 1.0 + em1 : exp(a[0]);
        return tp_japply(a, em1, e, e);
    }
    static inline tp_jet tp_jsqrt(tp_jet a) {
        double rt = sqrt(a[0]);
        return tp_japply(a, rt, 0.5 / rt, -0.25 / (rt * a[0]));
    }

    /* The transcendentals come from the batches; these turn their values into jets. */
    /* ln |a| given lv = ln |a.v| */
    static inline tp_jet tp_jlog_from(tp_jet a, double lv) {
        double inv = 1.0 / a[0];
        return tp_japply(a, lv, inv, -inv * inv);
    }
    /* ln N(a) given f0 = ln N(a.v) and the inverse Mills ratio: d/da = n/N, d2/da2 = -(n/N)(a + n/N) */
    static inline tp_jet tp_jlnncdf_from(tp_jet a, double f0, double mills) {
        return tp_japply(a, f0, mills, -mills * (a[0] + mills));
    }
    /* ln M(a, b; rho) given lm = ln M(a.v, b.v), its gradient (ra, rb) = (M_a/M, M_b/M) and, for the second
       order, ca = h_aa a.s + h_ab b.s and cb = h_ab a.s + h_bb b.s with h the Hessian of ln M */
    static inline tp_jet tp_jlnbvn_from(tp_jet a, tp_jet b, double lm, double ra, double rb, double ca, double cb) {
        if (lm == -INFINITY) return tp_jc(-INFINITY);   /* M below resolution: the term vanishes */
        tp_jet c = a * ra + b * rb + tp_jhi(a * ca + b * cb);
        c[0] = lm;
        return c;
    }

    /* The 2002 price is a signed sum of 33 terms: alpha_2 S^beta, six phi terms of two normal probabilities
       each and five psi terms of four bivariate normals each (Haug's phi(S, t1, gamma, H, I2) and
       psi(S, T, gamma, H, I2, I1, t1); the phi terms all have I = I2). Every term is a (possibly huge) power
       times a (possibly tiny) probability and is evaluated as exp(ln power + ln probability), which stays
       finite where the factors over- or underflow. The arguments of the probabilities and the log powers are
       linear in a few logs (ln S/I1, ln S/I2, ln I2/I1, ...) and in parts that depend on gamma alone (beta, 1
       or 0), so the products are formed once per log and per gamma and each term is a sum of them. */
    typedef struct {
        tp_jet m1;       /* -mu t1 / (v sqrt t1), mu = b + (gamma - 1/2) v^2 */
        tp_jet m2;       /* -mu T / (v sqrt T) */
        tp_jet lam_t1;   /* lambda t1, lambda = gamma b - r + gamma (gamma - 1) v^2 / 2 */
        tp_jet lam_t2;   /* lambda T */
        tp_jet k_i1;     /* kappa ln(S/I1), kappa = 2 b / v^2 + 2 gamma - 1 */
        tp_jet k_i2;     /* kappa ln(S/I2) */
        tp_jet k_i21;    /* kappa ln(I2/I1) */
    } tp_gam_terms;

    /* gamma's parts from lambda, mu and kappa; tn1 = -t1 / (v sqrt t1), tn2 = -T / (v sqrt T) */
    static inline void tp_gam(tp_jet lam, tp_jet mu, tp_jet kappa, tp_jet T, tp_jet tn1, tp_jet tn2, tp_jet ls_i1,
                              tp_jet ls_i2, tp_jet li2_i1, tp_gam_terms *g) {
        g->m1 = tp_jmul(mu, tn1);
        g->m2 = tp_jmul(mu, tn2);
        g->lam_t2 = tp_jmul(lam, T);
        g->lam_t1 = g->lam_t2 * TP_BS_T1_FRACTION;
        g->k_i1 = tp_jmul(kappa, ls_i1);
        g->k_i2 = tp_jmul(kappa, ls_i2);
        g->k_i21 = tp_jmul(kappa, li2_i1);
    }

    /* coefficient * phi(S, t1, gamma, H, I2) = exp(pre[0] + ln N(d[0])) - exp(pre[1] + ln N(d[1])), with
       lead = ln(coefficient * S^gamma), lh = -ln(S/H) / (v sqrt t1), l2 = -ln(S/I2) / (v sqrt t1):
       d[0] = -(ln(S/H) + mu t1) / (v sqrt t1), d[1] = d[0] + 2 ln(S/I2) / (v sqrt t1). */
    static inline void tp_phi_args(tp_jet lead, const tp_gam_terms *g, tp_jet lh, tp_jet l2, tp_jet *d, tp_jet *pre) {
        d[0] = lh + g->m1;
        d[1] = d[0] - l2 * 2.0;
        pre[0] = lead + g->lam_t1;
        pre[1] = pre[0] - g->k_i2;
    }

    /* The four bivariate normals of psi(S, T, gamma, H, I2, I1, t1) are M(-e[k], -f[k]), the first two with
       correlation +rho, the last two -rho, where (with s1 = v sqrt t1, s2 = v sqrt T)
         e = (ln(S/I1) + mu t1, ln(I2^2/(S I1)) + mu t1, ln(S/I1) - mu t1, ln(I2^2/(S I1)) - mu t1) / s1,
         f = (ln(S/H), ln(I2^2/(S H)), ln(I1^2/(S H)), ln(S I1^2/(H I2^2)))  / s2 + mu T / s2.
       They are passed negated: e1 = -ln(S/I1) / s1, q1 = -ln(I2^2/(S I1)) / s1 and fh[k] = -(log of f[k]) / s2. */
    static inline void tp_psi_args(const tp_gam_terms *g, tp_jet e1, tp_jet q1, const tp_jet *fh, tp_jet *a,
                                   tp_jet *b) {
        a[0] = e1 + g->m1;
        a[1] = q1 + g->m1;
        a[2] = e1 - g->m1;
        a[3] = q1 - g->m1;
        for (int k = 0; k < 4; k++) b[k] = fh[k] + g->m2;
    }

    /* coefficient * psi(...) = e^arg[0] - e^arg[1] - e^arg[2] + e^arg[3], from the logs of its four bivariate
       normals (lnm, in the order of tp_psi_args); lead = ln(coefficient * S^gamma). */
    static inline void tp_psi_exp_args(tp_jet lead, const tp_gam_terms *g, const tp_jet *lnm, tp_jet *arg) {
        tp_jet base = lead + g->lam_t2;
        arg[0] = base + lnm[0];
        arg[1] = (base - g->k_i2) + lnm[1];
        arg[2] = (base - g->k_i1) + lnm[2];
        arg[3] = (base - g->k_i21) + lnm[3];
    }

    /* e^arg[k] as a jet, given ev[k] = exp(arg[k].v) from the batch. A term that underflowed is left out whole:
       its derivatives (the value times ratios of moderate size) vanish too, and must not turn into
       0 * inf = NaN when a log-probability's slope overflowed far in a tail. */
    static inline tp_jet tp_term(const tp_jet *arg, const double *ev, int k) {
        return ev[k] == 0.0 ? tp_jc(0.0) : tp_japply(arg[k], ev[k], ev[k], ev[k]);
    }
    /* a phi term, e^arg[k] - e^arg[k + 1] */
    static inline tp_jet tp_pair(const tp_jet *arg, const double *ev, int k) {
        return tp_term(arg, ev, k) - tp_term(arg, ev, k + 1);
    }
    /* a psi term, e^arg[k] - e^arg[k + 1] - e^arg[k + 2] + e^arg[k + 3] */
    static inline tp_jet tp_quad(const tp_jet *arg, const double *ev, int k) {
        tp_jet acc = tp_term(arg, ev, k) - tp_term(arg, ev, k + 1);
        acc = acc - tp_term(arg, ev, k + 2);
        return acc + tp_term(arg, ev, k + 3);
    }

    #define TP_PHI_TERMS 6    /* phi terms in the 2002 price, two normal probabilities each */
    #define TP_PSI_TERMS 5    /* psi terms, four bivariate normals each */
    #define TP_TERMS (1 + 2 * TP_PHI_TERMS + 4 * TP_PSI_TERMS)
    #define TP_EURO_TERMS 2   /* the European value, two more terms of the same form (see tp_bs2002_call) */

    /* Bjerksund and Stensland (2002), as in Haug (2007) section 3.1.4; requires b < r, v > 0, T > 0. Sets *price
       and returns 1, with the European value in *euro (to about 1e-15 (S + X): it is formed in logs); or,
       where S is at or above the trigger I2 (exercise now), sets *price = S - X and returns 0. */
    static int tp_bs2002_call(tp_jet S, tp_jet X, tp_jet T, tp_jet r, tp_jet b, tp_jet v, tp_jet *price,
                              double *euro) {
        tp_jet v2 = tp_jmul(v, v);
        tp_jet t1 = T * TP_BS_T1_FRACTION;
        tp_jet bv2 = tp_jdiv(b, v2);
        tp_jet disc = tp_jmul(tp_jaddc(bv2, -0.5), tp_jaddc(bv2, -0.5)) + tp_jdiv(r * 2.0, v2);
        /* beta - 1 = 2 (r - b)/v^2 / (sqrt(disc) + 1/2 + b/v^2), free of the cancellation in beta - 1 that makes
           B_inf = beta X/(beta - 1) blow up as r - b -> 0+ (the denominator is >= 1 or the sum of positives). */
        tp_jet beta_m1 = tp_jdiv(tp_jdiv((r - b) * 2.0, v2), tp_jaddc(tp_jsqrt(disc) + bv2, 0.5));
        tp_jet beta = tp_jaddc(beta_m1, 1.0);
        tp_jet b_inf = tp_jmul(tp_jaddc(tp_jrecip(beta_m1), 1.0), X);
        tp_jet b_0 = b[0] > 0.0 ? tp_jmul(tp_jdiv(r, r - b), X) : X;
        tp_jet span = b_inf - b_0;
        tp_jet scale = tp_jdiv(tp_jmul(X, X), tp_jmul(span, b_0));
        tp_jet st1 = tp_jmul(v, tp_jsqrt(t1)), st2 = tp_jmul(v, tp_jsqrt(T));
        tp_jet h1 = -tp_jmul(tp_jmul(b, t1) + st1 * 2.0, scale);
        tp_jet h2 = -tp_jmul(tp_jmul(b, T) + st2 * 2.0, scale);
        /* (B_inf - B_0)(1 - e^h) with expm1: h is tiny when B_inf is huge, and the product stays finite. */
        tp_jet i1 = b_0 - tp_jmul(span, tp_jexpm1(h1));
        tp_jet i2 = b_0 - tp_jmul(span, tp_jexpm1(h2));
        if (S[0] >= i2[0]) {
            *price = S - X;
            return 0;
        }
        /* The ten logarithms of the formula are taken in one vectorized batch (padded to whole AVX-512 vectors,
           as the batches below: a remainder would go to scalar libm). */
        tp_jet la[10];
        double lx[16], lv[16];
        tp_jet inv_i1 = tp_jrecip(i1), inv_i2 = tp_jrecip(i2), inv_x = tp_jrecip(X);
        la[0] = tp_jmul(S, inv_i1);
        la[1] = tp_jmul(S, inv_i2);
        la[2] = tp_jmul(i2, inv_i1);
        la[3] = tp_jmul(S, inv_x);
        la[4] = tp_jmul(i1, inv_x);
        la[5] = tp_jmul(i2, inv_x);
        la[6] = S;
        la[7] = X;
        la[8] = i1 - X;
        la[9] = i2 - X;
        for (int i = 0; i < 10; i++) lx[i] = fabs(la[i][0]);
        for (int i = 10; i < 16; i++) lx[i] = 1.0;
        tp_log_batch(16, lx, lv);
        tp_jet ls_i1 = tp_jlog_from(la[0], lv[0]);
        tp_jet ls_i2 = tp_jlog_from(la[1], lv[1]);
        tp_jet li2_i1 = tp_jlog_from(la[2], lv[2]);
        tp_jet ls_x = tp_jlog_from(la[3], lv[3]);
        tp_jet li1_x = tp_jlog_from(la[4], lv[4]);
        tp_jet li2_x = tp_jlog_from(la[5], lv[5]);
        tp_jet ln_s = tp_jlog_from(la[6], lv[6]);
        tp_jet ln_x = tp_jlog_from(la[7], lv[7]);
        /* alpha_k S^beta = (I_k - X) (S/I_k)^beta, kept in logs (beta is large when vol is small) with the sign
           apart: when b T + 2 v sqrt(T) < 0 the 2002 triggers fall below the strike and alpha_k < 0. */
        double sg1 = i1[0] >= X[0] ? 1.0 : -1.0;
        double sg2 = i2[0] >= X[0] ? 1.0 : -1.0;
        tp_jet la1 = tp_jlog_from(la[8], lv[8]) + tp_jmul(beta, ls_i1);
        tp_jet la2 = tp_jlog_from(la[9], lv[9]) + tp_jmul(beta, ls_i2);
        /* gamma = beta, 1, 0: lambda, mu and kappa (beta's lambda takes beta - 1 as formed above) */
        tp_jet ninv1 = tp_jrecip(-st1), ninv2 = tp_jrecip(-st2);
        tp_jet tn1 = tp_jmul(t1, ninv1), tn2 = tp_jmul(T, ninv2);
        tp_jet half_v2 = v2 * 0.5, bv2_2 = bv2 * 2.0;
        tp_gam_terms g_beta, g_one, g_zero;
        tp_gam((tp_jmul(beta, b) - r) + tp_jmul(tp_jmul(beta, beta_m1), v2) * 0.5,
               b + tp_jmul(tp_jaddc(beta, -0.5), v2), tp_jaddc(bv2_2 + beta * 2.0, -1.0), T, tn1, tn2, ls_i1, ls_i2,
               li2_i1, &g_beta);
        tp_gam(b - r, b + half_v2, tp_jaddc(bv2_2, 1.0), T, tn1, tn2, ls_i1, ls_i2, li2_i1, &g_one);
        tp_gam(-r, b - half_v2, tp_jaddc(bv2_2, -1.0), T, tn1, tn2, ls_i1, ls_i2, li2_i1, &g_zero);
        /* Transcendentals run in batches (vectorized): the phi terms' 12 ln N, the psi terms' 20 bivariate
           normals, then the exponentials of all 33 terms (and two more of each for the European value). */
        tp_jet e1 = tp_jmul(ls_i1, ninv1), l2 = tp_jmul(ls_i2, ninv1), q1 = tp_jmul(li2_i1 - ls_i2, ninv1);
        /* f's logs for H = I1 and H = X, over -v sqrt T */
        tp_jet fh_i1[4], fh_x[4];
        fh_i1[0] = tp_jmul(ls_i1, ninv2);
        fh_i1[1] = tp_jmul(li2_i1 - ls_i2, ninv2);
        fh_i1[2] = -fh_i1[0];
        fh_i1[3] = tp_jmul(ls_i1 - li2_i1 * 2.0, ninv2);
        fh_x[0] = tp_jmul(ls_x, ninv2);
        fh_x[1] = tp_jmul(li2_x - ls_i2, ninv2);
        fh_x[2] = tp_jmul(li1_x - ls_i1, ninv2);
        fh_x[3] = tp_jmul(ls_x - li2_i1 * 2.0, ninv2);
        tp_jet e[TP_BVN_PAIRS], f[TP_BVN_PAIRS], lnm[TP_BVN_PAIRS];
        double ea[TP_BVN_PAIRS], fa[TP_BVN_PAIRS], es[TP_BVN_PAIRS], fs[TP_BVN_PAIRS], lm[TP_BVN_PAIRS];
        double rat[3 * TP_BVN_PAIRS], ca[TP_BVN_PAIRS], cb[TP_BVN_PAIRS];
        tp_psi_args(&g_beta, e1, q1, fh_i1, &e[0], &f[0]);
        tp_psi_args(&g_one, e1, q1, fh_i1, &e[4], &f[4]);
        tp_psi_args(&g_one, e1, q1, fh_x, &e[8], &f[8]);
        tp_psi_args(&g_zero, e1, q1, fh_i1, &e[12], &f[12]);
        tp_psi_args(&g_zero, e1, q1, fh_x, &e[16], &f[16]);
        /* The European call on the same (transformed) inputs, S e^{(b - r) T} N(d1) - X e^{-r T} N(d2), is two
           more terms of the same form, with d1 = (ln(S/X) + (b + v^2/2) T) / (v sqrt T) = -f[8], d2 = -f[16]
           and the lambdas of gamma = 1 and 0: its value costs a few lanes of the batches (only the value; the
           caller decides with it whether the European floor can bind). */
        enum { NPD = 2 * TP_PHI_TERMS + TP_EURO_TERMS, NT = TP_TERMS + TP_EURO_TERMS, NPD_PAD = 16, NT_PAD = 40 };
        tp_jet pd[2 * TP_PHI_TERMS], arg[TP_TERMS];
        double xs[NT_PAD], ev[NT_PAD], f0[NPD_PAD], mills[NPD_PAD];
        arg[0] = la2;
        tp_phi_args(la2, &g_beta, l2, l2, &pd[0], &arg[1]);
        tp_phi_args(ln_s, &g_one, l2, l2, &pd[2], &arg[3]);
        tp_phi_args(ln_s, &g_one, e1, l2, &pd[4], &arg[5]);
        tp_phi_args(ln_x, &g_zero, l2, l2, &pd[6], &arg[7]);
        tp_phi_args(ln_x, &g_zero, e1, l2, &pd[8], &arg[9]);
        tp_phi_args(la1, &g_beta, e1, l2, &pd[10], &arg[11]);
        for (int i = 0; i < 2 * TP_PHI_TERMS; i++) xs[i] = pd[i][0];
        xs[2 * TP_PHI_TERMS] = -f[8][0];
        xs[2 * TP_PHI_TERMS + 1] = -f[16][0];
        for (int i = NPD; i < NPD_PAD; i++) xs[i] = 0.0;
        tp_ln_ncdf_batch(NPD_PAD, xs, f0, mills);
        for (int i = 0; i < 2 * TP_PHI_TERMS; i++) arg[1 + i] += tp_jlnncdf_from(pd[i], f0[i], mills[i]);
        for (int i = 0; i < TP_BVN_PAIRS; i++) {
            ea[i] = e[i][0];
            fa[i] = f[i][0];
            es[i] = e[i][1];
            fs[i] = f[i][1];
        }
        tp_ln_bvn_batch(ea, fa, lm, rat);
        /* The Hessian of ln M, all pairs at once (vectorized): M_aa = -a M_a - rho M_ab, likewise for b, so
           h_aa = -a ra - rho rab - ra^2, h_bb = -b rb - rho rab - rb^2, h_ab = rab - ra rb. */
        for (int i = 0; i < TP_BVN_PAIRS; i++) {
            double ra = rat[i], rb = rat[TP_BVN_PAIRS + i], rab = rat[2 * TP_BVN_PAIRS + i];
            double rho = tp_bvn_neg[i] != 0.0 ? -TP_BS_RHO : TP_BS_RHO;
            double haa = -ea[i] * ra - rho * rab - ra * ra;
            double hbb = -fa[i] * rb - rho * rab - rb * rb;
            double hab = rab - ra * rb;
            ca[i] = haa * es[i] + hab * fs[i];
            cb[i] = hab * es[i] + hbb * fs[i];
        }
        for (int i = 0; i < TP_BVN_PAIRS; i++)
            lnm[i] = tp_jlnbvn_from(e[i], f[i], lm[i], rat[i], rat[TP_BVN_PAIRS + i], ca[i], cb[i]);
        const int ps = 1 + 2 * TP_PHI_TERMS;
        tp_psi_exp_args(la1, &g_beta, &lnm[0], &arg[ps]);
        tp_psi_exp_args(ln_s, &g_one, &lnm[4], &arg[ps + 4]);
        tp_psi_exp_args(ln_s, &g_one, &lnm[8], &arg[ps + 8]);
        tp_psi_exp_args(ln_x, &g_zero, &lnm[12], &arg[ps + 12]);
        tp_psi_exp_args(ln_x, &g_zero, &lnm[16], &arg[ps + 16]);
        for (int i = 0; i < TP_TERMS; i++) xs[i] = arg[i][0];
        xs[TP_TERMS] = ln_s[0] + g_one.lam_t2[0] + f0[2 * TP_PHI_TERMS];
        xs[TP_TERMS + 1] = ln_x[0] + g_zero.lam_t2[0] + f0[2 * TP_PHI_TERMS + 1];
        for (int i = NT; i < NT_PAD; i++) xs[i] = 0.0;
        tp_exp_batch(NT_PAD, xs, ev);
        /* The terms are summed in the formula's grouping: the two parts of a phi term and the four of a psi term
           nearly cancel where the price is small, and are differenced first. */
        tp_jet p = tp_term(arg, ev, 0) * sg2;
        p = p - tp_pair(arg, ev, 1) * sg2;
        p = p + tp_pair(arg, ev, 3);
        p = p - tp_pair(arg, ev, 5);
        p = p - tp_pair(arg, ev, 7);
        p = p + tp_pair(arg, ev, 9);
        p = p + tp_pair(arg, ev, 11) * sg1;
        p = p - tp_quad(arg, ev, ps) * sg1;
        p = p + tp_quad(arg, ev, ps + 4);
        p = p - tp_quad(arg, ev, ps + 8);
        p = p - tp_quad(arg, ev, ps + 12);
        p = p + tp_quad(arg, ev, ps + 16);
        *price = p;
        *euro = ev[TP_TERMS] - ev[TP_TERMS + 1];
        return 1;
    }

    /* The 2002 price of a call (put = 0) or a put (put = 1) and its derivatives, as a jet in out[0..7], and as
       tp_bs2002_call the European value in *euro (returns 1) or not (exercise now, returns 0). The put-call
       transformation P(S, K, T, r, b, v) = C(K, S, T, r - b, -b, v), with r - b = q, holds for the European
       value too. */
    static int tp_bs2002_jet(int put, double spot, double strike, double t, double vol, double r, double q,
                             double *out, double *euro) {
        tp_jet price;
        int has_euro;
        if (!put)
            has_euro = tp_bs2002_call(tp_jvar(spot, 1), tp_jc(strike), tp_jvar(t, 3), tp_jvar(r, 4),
                                      tp_jaddc(tp_jvar(r, 4), -q), tp_jvar(vol, 2), &price, euro);
        else
            has_euro = tp_bs2002_call(tp_jc(strike), tp_jvar(spot, 1), tp_jvar(t, 3), tp_jc(q),
                                      tp_jaddc(-tp_jvar(r, 4), q), tp_jvar(vol, 2), &price, euro);
        for (int i = 0; i < 8; i++) out[i] = price[i];
        return has_euro;
    }
    """
    int tp_bs2002_jet(int put, double spot, double strike, double t, double vol, double r, double q,
                      double* out, double* euro)
    void tp_bvn_init()


tp_bvn_init()


cdef inline GreeksC _jet_greeks(const double* jet) noexcept nogil:
    # A price jet [v, d/dS, d/dvol, d/dT, d/dr, d2/dS2, d2/dS dvol, d2/dS dT] in the public units.
    cdef GreeksC g
    g.price = jet[0]
    g.delta = jet[1]
    g.gamma = jet[5]
    g.vega = jet[2] * 0.01
    g.theta = -jet[3] * ONE_OVER_DAYS
    g.rho = jet[4] * 0.01
    g.vanna = jet[6] * 0.01
    g.charm = -jet[7] * ONE_OVER_DAYS
    return g


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
    cdef double jet[8]
    cdef double euro_price = NAN
    cdef GreeksC euro
    cdef int has_euro
    cdef double exercise = sign * (spot - strike)
    if _american_is_european(sign, t, r, q):
        # (The exercise floor only bites for a put with r = 0 and q < 0, which the 2002 rule calls European.)
        euro = _euro(sign, spot, strike, t, vol, r, q)
        out[0] = _expired(sign, spot, strike) if exercise > euro.price else euro
        return 0 if _greeks_finite(out[0]) else -1
    has_euro = tp_bs2002_jet(0 if sign > 0.0 else 1, spot, strike, t, vol, r, q, jet, &euro_price)
    out[0] = _jet_greeks(jet)
    if not _greeks_finite(out[0]):
        return -1
    # The 2002 kernel also gives the European value (in logs, good to about 1e-15 (S + K)). Where that is
    # clearly below the 2002 price the floor does not bind; otherwise the closed form decides, and gives the
    # floor's Greeks.
    if not (has_euro and euro_price + 1e-13 * (spot + strike) < out.price):
        euro = _euro(sign, spot, strike, t, vol, r, q)
        if not _greeks_finite(euro):
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
    _american_spread(n, ic, S, K, T, vol, r, q, outs, status, _core_threads)


cdef void _greeks_american_kernel_serial(Py_ssize_t n, const uint8_t* ic, const double* S, const double* K,
                                         const double* T, const double* vol, const double* r, const double* q,
                                         double** outs, int8_t* status) noexcept nogil:
    # The caller's thread only, whatever set_threads says (greeks_kernel(parallel=False)).
    _american_spread(n, ic, S, K, T, vol, r, q, outs, status, 1)


cdef void _american_spread(Py_ssize_t n, const uint8_t* ic, const double* S, const double* K,
                           const double* T, const double* vol, const double* r, const double* q,
                           double** outs, int8_t* status, int threads) noexcept nogil:
    # Options are independent and each is computed by the same code whichever thread takes it, so the
    # results do not depend on the thread count. Only the options that take the 2002 formula (about
    # 1.3 us each, against 0.02-0.1 us for the European ones) are worth a thread wake-up, so they are counted
    # first.
    cdef Py_ssize_t i
    cdef Py_ssize_t costly = 0
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


cdef list _array_inputs(list names, tuple values):
    # An array API's inputs converted, checked and broadcast: the first (is_call) as bytes, the others float64.
    return _broadcast(names, [_as_bool_array(values[0])]
                      + [_as_float_array(name, value) for name, value in zip(names[1:], values[1:])])


cdef list _greeks_inputs(is_call, spot, strike, expiry_years, volatility, rate, dividend_yield):
    return _array_inputs(["is_call", "spot", "strike", "expiry_years", "volatility", "rate", "dividend_yield"],
                         (is_call, spot, strike, expiry_years, volatility, rate, dividend_yield))


cdef int _greeks_run(int stl, list arrays, double** outs, int8_t* status) except -1:
    # Price the converted inputs (_greeks_inputs) into outs[0..7] and status, without the GIL.
    cdef const uint8_t[::1] ic = arrays[0]
    cdef const double[::1] S = arrays[1]
    cdef const double[::1] K = arrays[2]
    cdef const double[::1] T = arrays[3]
    cdef const double[::1] V = arrays[4]
    cdef const double[::1] R = arrays[5]
    cdef const double[::1] Q = arrays[6]
    cdef Py_ssize_t n = S.shape[0]
    if n > 0:
        with nogil:
            if stl == STYLE_EUROPEAN:
                _greeks_european_kernel(n, &ic[0], &S[0], &K[0], &T[0], &V[0], &R[0], &Q[0], outs, status)
            else:
                _greeks_american_kernel(n, &ic[0], &S[0], &K[0], &T[0], &V[0], &R[0], &Q[0], outs, status)
    return 0


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
    arrays = _greeks_inputs(is_call, spot, strike, expiry_years, volatility, rate, dividend_yield)
    cdef Py_ssize_t n = len(arrays[1])
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
    _greeks_run(stl, arrays, outs, st)
    return GreeksArray(out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7], status)


def greeks_kernel(style="european", *, parallel=True):
    """The array Greeks kernel of ``style`` for C callers, as a PyCapsule named ``"tastyplat.greeks_kernel"``.

    The pointer is a ``void (*)(Py_ssize_t n, const uint8_t* is_call, const double* spot, const double* strike,
    const double* expiry_years, const double* volatility, const double* rate, const double* dividend_yield,
    double** outs, int8_t* status)`` that may be called without the GIL: what greeks_into() runs, writing
    the eight outputs (price, delta, gamma, vega, theta, rho, vanna, charm) through ``outs[0..7]`` and the
    Status codes through ``status``. It does no validation of lengths: the caller owns every array.

    Args:
        style: ``"european"`` or ``"american"``.
        parallel: Whether the American kernel may spread an array over the threads of set_threads(), as
            greeks_into() does; False gives one that runs on the caller's thread only (same results), for a
            latency-bound caller of small arrays on a busy machine, where waiting for a second thread to get a
            core costs more than it saves. The European kernel is single-threaded either way.

    Raises:
        ValueError: Unknown style.
    """
    cdef int stl = _parse_style(style)
    if stl == STYLE_EUROPEAN:
        return PyCapsule_New(<void*>_greeks_european_kernel, b"tastyplat.greeks_kernel", NULL)
    if parallel:
        return PyCapsule_New(<void*>_greeks_american_kernel, b"tastyplat.greeks_kernel", NULL)
    return PyCapsule_New(<void*>_greeks_american_kernel_serial, b"tastyplat.greeks_kernel", NULL)


def greeks_into(is_call, spot, strike, expiry_years, volatility, rate, dividend_yield, out, status=None,
                style="european"):
    """greeks_array() written into arrays the caller owns: nothing is allocated for the outputs.

    For a caller that prices the same options again and again (a book re-priced on every tick): the outputs
    can be views into its own columns.

    Args:
        is_call, spot, strike, expiry_years, volatility, rate, dividend_yield, style: As for greeks_array().
        out: Writable float64 array of shape (8, n) whose last axis is contiguous (rows may be strided, e.g.
            a column slice of a wider array), receiving price, delta, gamma, vega, theta, rho, vanna and
            charm (the order of GreeksArray's fields); every output of an option that is not OK is NaN.
        status: Optional writable, contiguous int8 array of length n receiving the Status codes.

    Raises:
        ValueError: Unknown style, lengths that differ (out's second axis included), or an out array of
            another shape or layout.
        TypeError: is_call is not boolean, a numeric input cannot be converted to float64, or out / status
            has another dtype.
    """
    cdef int stl = _parse_style(style)
    arrays = _greeks_inputs(is_call, spot, strike, expiry_years, volatility, rate, dividend_yield)
    cdef Py_ssize_t n = len(arrays[1])
    if not isinstance(out, np.ndarray) or out.dtype != np.float64:
        raise TypeError("out must be a float64 NumPy array")
    if out.ndim != 2 or out.shape[0] != 8 or out.shape[1] != n:
        raise ValueError(f"out must have shape (8, {n}), got {out.shape}")
    if n > 1 and out.strides[1] != sizeof(double):
        raise ValueError("out's last axis must be contiguous")
    cdef double[:, :] O = out
    cdef int8_t[::1] st
    if status is None:
        scratch = np.empty(n, dtype=np.int8)
        st = scratch
    else:
        if not isinstance(status, np.ndarray) or status.dtype != np.int8:
            raise TypeError("status must be an int8 NumPy array")
        if status.ndim != 1 or status.shape[0] != n:
            raise ValueError(f"status must have shape ({n},), got {status.shape}")
        st = status
    cdef double* outs[8]
    cdef int j
    if n > 0:
        for j in range(8):
            outs[j] = &O[j, 0]
        _greeks_run(stl, arrays, outs, &st[0])


cdef tuple _iv_array(is_call, price, spot, strike, expiry_years, rate, dividend_yield, style, bint want_iterations):
    cdef int stl = _parse_style(style)
    arrays = _array_inputs(["is_call", "price", "spot", "strike", "expiry_years", "rate", "dividend_yield"],
                           (is_call, price, spot, strike, expiry_years, rate, dividend_yield))
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
