"""Whether a difference in accuracy is real: two models on the same images, or two settings over
seeds. Used by ``omniglot-mtl-compare``.

- :func:`mcnemar` pairs two models' answers image by image. Only the images one model gets right
  and the other wrong say anything about which is better; under "no difference" each such image
  is equally likely to favour either, so their split is Binomial(n, 1/2) and the exact two-sided
  p-value is its tail (McNemar's test, exact form). It says whether these two trained models
  differ on these images, not whether the setting that made them does: a reseeded run differs
  too.
- :class:`Group` and :func:`difference` compare settings each trained over several seeds: the
  mean and sample standard deviation of each, and a 95% Welch interval for the difference of
  the means, whose width comes from the seed-to-seed spread.
- :func:`mean_interval`: the mean of per-seed figures (Δm) with a 95% Student t interval.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class McNemar:
    accuracy_a: float
    accuracy_b: float
    only_a: int  # images A gets right and B wrong
    only_b: int  # images B gets right and A wrong
    p_value: float  # exact two-sided

    @property
    def change(self) -> float:
        return self.accuracy_b - self.accuracy_a


def mcnemar(correct_a, correct_b) -> McNemar:
    """Exact McNemar test on two 0/1 arrays, one entry per image, in the same image order."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"two equal, non-empty 1-D arrays of answers expected, got {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    discordant = only_a + only_b
    p = stats.binomtest(only_a, discordant, 0.5).pvalue if discordant else 1.0
    return McNemar(float(a.mean()), float(b.mean()), only_a, only_b, float(p))


@dataclass(frozen=True)
class Group:
    values: tuple[float, ...]  # one accuracy per seed

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float:  # the sample standard deviation (n - 1)
        return float(np.std(self.values, ddof=1))


@dataclass(frozen=True)
class Difference:
    difference: float  # mean of B - mean of A
    low: float  # the 95% interval
    high: float

    @property
    def exceeds_spread(self) -> bool:
        """Whether the interval excludes 0: the difference is larger than reseeding explains."""
        return bool(self.low > 0 or self.high < 0)


def difference(a: Group, b: Group) -> Difference:
    """The difference of ``b``'s and ``a``'s means with a 95% Welch t interval (unequal spreads)."""
    if len(a.values) < 2 or len(b.values) < 2:
        raise ValueError("a spread needs at least two seeds in each group")
    d = b.mean - a.mean
    if a.sd == 0 and b.sd == 0:  # every seed gave the same figure in both groups: no t interval
        return Difference(d, d, d)
    with warnings.catch_warnings():  # one group without spread (an untrained head at chance)
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        test = stats.ttest_ind(b.values, a.values, equal_var=False)
        interval = test.confidence_interval(0.95)
    return Difference(d, float(interval.low), float(interval.high))


def mean_interval(values) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` with its 95% Student t interval; the interval is
    the mean itself where there is one value or no spread."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2 or values.std() == 0:
        return mean, mean, mean
    interval = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    return mean, float(interval.low), float(interval.high)
