#!/usr/bin/env python3
"""Generates the 8-interval tables of GELU's Φ(x) and gelu'(x) = Φ(x) + x·φ(x) on [0, 8) that
kernels/src/gelu/tables.rs holds as PHI_PW8 and DGELU_PW8 (the AVX2 path: one 8-entry `vpermps`
per coefficient; negative x use Φ(−x) = 1 − Φ(x) and gelu'(−x) = 1 − gelu'(x)).

Independent of the code under test: the functions are evaluated with mpmath at 50 digits, each
interval [i, i + 1) gets the degree-7 polynomial in g = x − i that interpolates them at the 8
Chebyshev nodes, solved in exact rational arithmetic from those values; the coefficients are
rounded to f32. The script then evaluates the rounded polynomials the way the kernel does
(Horner with fused multiply-adds, each rounded once to f32; x ≥ 0 only, where the symmetry adds
one more rounding) on a dense grid and prints the largest absolute errors.

    python3 kernels/tools/gelu_tables.py            # prints the Rust tables and the errors
"""
from fractions import Fraction

import mpmath
import numpy as np

mpmath.mp.dps = 50
DEG = 7
N_INT = 8


def phi(x):
    return mpmath.ncdf(x)


def dgelu(x):
    return mpmath.ncdf(x) + x * mpmath.npdf(x)


def exact(v):
    """The mpf value v as an exact fraction."""
    sign, man, exp, _ = mpmath.mpf(v)._mpf_
    return (-1) ** sign * Fraction(int(man)) * Fraction(2) ** exp


def fit(f, i):
    """Monomial coefficients (lowest first) of the interpolant of f on [i, i+1) in
    g = x − (i + ½) ∈ [−½, ½)."""
    nodes = [exact(-mpmath.cos((2 * k + 1) * mpmath.pi / (2 * (DEG + 1))) / 2)
             for k in range(DEG + 1)]
    vals = [exact(f(i + mpmath.mpf(0.5) + mpmath.mpf(g.numerator) / g.denominator))
            for g in nodes]
    # Solve the Vandermonde system exactly.
    n = DEG + 1
    a = [[g ** p for p in range(n)] + [v] for g, v in zip(nodes, vals)]
    for c in range(n):
        piv = next(r for r in range(c, n) if a[r][c] != 0)
        a[c], a[piv] = a[piv], a[c]
        for r in range(n):
            if r != c and a[r][c] != 0:
                fct = a[r][c] / a[c][c]
                a[r] = [x - fct * y for x, y in zip(a[r], a[c])]
    return [float(a[r][n] / a[r][r]) for r in range(n)]


def f32(x):
    return np.float32(x)


def fma32(a, b, c):
    # a·b is exact in f64 for f32 a, b; the sum then rounds once to f64 and once to f32, which
    # differs from one rounding only in double-rounding ties (far below the errors measured).
    return np.float32(np.float64(a) * np.float64(b) + np.float64(c))


def table(f):
    return [[f32(c) for c in fit(f, i)] for i in range(N_INT)]


def evaluate(tab, x):
    a = min(abs(np.float32(x)), np.float32(7.9999995))
    i = int(np.floor(a))
    g = np.float32(a - np.float32(i + 0.5))
    acc = tab[i][DEG]
    for k in range(DEG - 1, -1, -1):
        acc = fma32(acc, g, tab[i][k])
    return acc if x >= 0 else np.float32(np.float32(1.0) - acc)


def max_err(tab, f, lo, hi, n):
    worst = (0.0, 0.0)
    for x in np.linspace(lo, hi, n, dtype=np.float64):
        x = float(np.float32(x))
        e = abs(float(evaluate(tab, x)) - float(f(mpmath.mpf(x))))
        if e > worst[0]:
            worst = (e, x)
    return worst


def rust(name, tab, doc):
    lines = [doc, "#[rustfmt::skip]", f"pub(crate) const {name}: [[f32; {N_INT}]; {DEG + 1}] = ["]
    for k in range(DEG + 1):
        row = ", ".join(str(np.float32(tab[i][k])) for i in range(N_INT))
        lines.append(f"    [{row}],")
    lines.append("];")
    return "\n".join(lines)


if __name__ == "__main__":
    tp, td = table(phi), table(dgelu)
    print(rust("PHI_PW8", tp, "/// `phi` coefficients on [0, 8): `[k][i]` multiplies `gᵏ` on interval `i`."))
    print(rust("DGELU_PW8", td, "/// `gelu'` coefficients on [0, 8), laid out as [`PHI_PW8`]."))
    for name, tab, f in (("phi", tp, phi), ("gelu'", td, dgelu)):
        e, x = max_err(tab, f, -8.5, 8.5, 40001)
        print(f"// max abs error of {name} over [-8.5, 8.5] (40001 points): {e:.3g} at x = {x}")
