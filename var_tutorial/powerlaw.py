"""Power laws: fitting y = (beta * x)^alpha, and the compute-optimal front.

Kaplan et al. (2020) and the VAR paper report the test loss L of a family of models as a
power law of their size N, L = (beta * N)^alpha with alpha < 0. Taking logs turns it into
a straight line, log L = alpha * log N + alpha * log beta, so a least-squares line through
(log N, log L) gives the exponent, and the Pearson correlation r of the two says how
straight the line is (-1: a perfect power law that falls).

Plain numpy, float64: the sweep (scaling.py), the plots (viz.py) and the widgets
(widgets.py) all fit through here, and none of them needs the rest of the other.
"""
from __future__ import annotations

import math

import numpy as np


def fit_power_law(x, y) -> dict:
    """Fit y = (beta * x)^alpha by least squares in log-log space.

    log y = alpha * log x + alpha * log beta is a straight line with slope alpha and
    intercept a = alpha * log beta, so beta = exp(a / alpha). Returns alpha, beta, their
    standard errors (beta's by the delta method), log10 beta with its standard error (beta
    itself under- or overflows when alpha is small), the Pearson correlation r of log x and
    log y, and n. Needs at least 3 points (2 would fit any line exactly).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    if n < 3 or len(y) != n:
        raise ValueError(f"got {n} x values and {len(y)} y values: expected the same number, at least 3")
    if not ((x > 0).all() and (y > 0).all() and np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be positive numbers (the fit is made in log-log space)")
    lx, ly = np.log(x), np.log(y)
    mx, my = lx.mean(), ly.mean()
    sxx, sxy, syy = ((lx - mx) ** 2).sum(), ((lx - mx) * (ly - my)).sum(), ((ly - my) ** 2).sum()
    alpha = sxy / sxx
    a = my - alpha * mx
    resid = ly - (a + alpha * lx)
    s2 = (resid ** 2).sum() / (n - 2)  # the residuals' variance
    se_alpha = math.sqrt(s2 / sxx)
    se_a = math.sqrt(s2 * (1 / n + mx ** 2 / sxx))
    cov_a_alpha = -mx * s2 / sxx
    log_beta = a / alpha
    # delta method for log beta = a / alpha: gradient (1/alpha, -a/alpha^2)
    var_log_beta = (se_a ** 2 / alpha ** 2 + a ** 2 * se_alpha ** 2 / alpha ** 4
                    - 2 * a * cov_a_alpha / alpha ** 3)
    beta = math.exp(log_beta)
    se_log10_beta = math.sqrt(max(var_log_beta, 0.0)) / math.log(10)
    return {"alpha": float(alpha), "alpha_se": se_alpha, "beta": beta,
            "beta_se": beta * se_log10_beta * math.log(10),
            "log10_beta": float(log_beta / math.log(10)), "log10_beta_se": se_log10_beta,
            "pearson_r": float(sxy / math.sqrt(sxx * syy)), "n": n}


def power_law(x, alpha: float, beta: float) -> np.ndarray:
    """y = (beta * x)^alpha, for plotting a fit (float64)."""
    return (beta * np.asarray(x, dtype=np.float64)) ** alpha


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (compute, loss) that no other point beats on both: the lowest
    loss reached for at most that much compute, in order of compute."""
    order = sorted(range(len(points)), key=lambda i: points[i])
    front, best = [], math.inf
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front
