"""How far to trust an explanation: one typed record of its figures, and one formatter for them.

Every attribution is stored with a `TrustFigures` (in the cache as a JSON dict: `to_dict` /
`from_dict`). Each figure comes with the yardstick it must be read against:

- **deletion check** (`Deletion`, per hidden area): how much the score drops when the
  top-weighted regions covering 10% / 20% of the area are hidden, beside the drops of random
  regions of the same area: their mean ± standard deviation, where the top drop falls among them
  (percentile) and its z-score. A drop is positive when hiding the region LOWERS the score.
- **LIME–SHAP agreement** (Spearman rank correlation of the two maps) beside each method's
  **seed-to-seed stability** (the rank correlation two seeds of the same method would give): two
  methods cannot agree more than each agrees with itself; agreement near the stabilities means
  they tell the same story, far below means they do not.
- **LIME's fit R²** on its own samples beside the R² the same surrogate reaches on pure noise
  (the outputs shuffled across the same samples) and the R² on held-out samples.

`describe` (one attribution, a sentence a line) and `summary_text` (a frame's methods for one
emotion, in a few sentences) turn the figures into words; the CLI, the overlay PNG
(through `ascii_text`), the dashboard and the report all print these, so the same signs and the
same words are read everywhere. This module is light (no NumPy): cache readers import it freely.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

METHOD_NAMES = {"lime": "LIME", "shap": "SHAP"}
#: The fewest LIME samples per segment accepted: below ~4 the surrogate (K weights and an intercept)
#: fits noise well (pure-noise outputs reach R² 0.95 at 20 samples over 48 segments), and each
#: half of the stability split gets only half of the samples.
LIME_MIN_PER_SEGMENT = 4


@dataclass(frozen=True)
class Deletion:
    """Score drops when regions covering `area` of the image are hidden (positive = the score fell).

    Whole segments are hidden until they cover `area`, so the area really hidden is a little
    more: `top_area` for the top-weighted set, `random_area` on average for the random sets.
    `percentile`: the share of the `draws` random drops below the top drop (ties count half), in
    percent; `z`: (top_drop − random_drop) / random_std, None when the random drops do not vary.
    """

    area: float
    top_drop: float
    random_drop: float
    random_std: float
    percentile: float
    z: float | None
    draws: int
    top_area: float
    random_area: float


@dataclass(frozen=True)
class TrustFigures:
    """The trust figures of one method's explanation of one emotion on one frame."""

    method: str
    score: float
    """The model's score for the emotion on the explained region, untouched."""
    frame_score: float | None
    """The score indexed for the frame (None when not known)."""
    base: float
    """LIME: the surrogate's intercept. SHAP: the expected value (every segment hidden)."""
    samples: int
    seed: int
    seconds: float
    segments: int
    deletion: tuple[Deletion, ...]
    stability: float | None
    """Seed-to-seed stability: the Spearman correlation two seeds at this sample count would give,
    estimated from the half-split figure by the Spearman–Brown formula 2r / (1 + r)."""
    stability_half: float | None
    """Spearman correlation between the maps fitted on two disjoint halves of the same samples."""
    agreement: float | None
    """Spearman correlation with the other method's map of the same emotion (None without one)."""
    other_stability: float | None
    """The other method's `stability`: with this one, the yardstick of `agreement`."""
    fit_r2: float | None = None
    """LIME: R² of the surrogate on its own samples. SHAP: None (Shapley values are not a fit)."""
    fit_r2_null: float | None = None
    """LIME: mean R² of the same surrogate fitted to the outputs shuffled across the same samples."""
    fit_r2_heldout: float | None = None
    """LIME: R² of a surrogate fitted on half of the samples, on the other half (mean of both ways)."""

    def to_dict(self) -> dict[str, object]:
        """The JSON-ready dict stored in the cache."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TrustFigures:
        """Read back what `to_dict` stored (unknown keys are ignored; missing yardsticks are None)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["deletion"] = tuple(Deletion(**{k: d.get(k) for k in _DELETION_FIELDS})  # type: ignore[union-attr]
                                   for d in data.get("deletion") or ())  # type: ignore[union-attr]
        for name in ("stability", "stability_half", "agreement", "other_stability", "frame_score"):
            values.setdefault(name, None)
        return cls(**values)  # type: ignore[arg-type]


_DELETION_FIELDS = tuple(f.name for f in fields(Deletion))


def spearman_brown(half: float | None) -> float | None:
    """The correlation at the full sample count predicted from the one between two halves: 2r / (1 + r)."""
    if half is None or math.isnan(half):
        return None
    if half <= -1.0:
        return -1.0
    return 2.0 * half / (1.0 + half)


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ordinal(value: float) -> str:
    n = int(round(value))
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method.upper())


def deletion_line(d: Deletion) -> str:
    """'hiding the top 10% lowers the score by 0.42; random regions: 0.05 ± 0.03 (32 draws), top drop at
    the 97th percentile, z 12.3'."""
    effect = (f"lowers the score by {d.top_drop:.2f}" if d.top_drop >= 0
              else f"raises the score by {-d.top_drop:.2f}")
    z = "" if d.z is None else f", z {d.z:.1f}"
    return (f"hiding the top {d.area:.0%} {effect}; random regions: {d.random_drop:.2f} ± {d.random_std:.2f} "
            f"({d.draws} draws), top drop at the {_ordinal(d.percentile)} percentile{z}")


def agreement_line(f: TrustFigures) -> str:
    """'LIME–SHAP agreement 0.55; seed-to-seed stability LIME 0.70, SHAP 0.62' (stability alone without a peer)."""
    own = method_name(f.method)
    other = "SHAP" if f.method == "lime" else "LIME"
    stabilities = {own: f.stability, other: f.other_stability}
    if f.agreement is None:
        return f"seed-to-seed stability {own} {_num(f.stability)} (no {other} map to agree with)"
    return (f"LIME–SHAP agreement {_num(f.agreement)}; seed-to-seed stability LIME {_num(stabilities['LIME'])}, "
            f"SHAP {_num(stabilities['SHAP'])}")


def fit_line(f: TrustFigures) -> str | None:
    """'fit R² 0.62 on its samples (pure noise: 0.09), 0.41 on held-out samples' (LIME only)."""
    if f.fit_r2 is None:
        return None
    held = "" if f.fit_r2_heldout is None else f", {f.fit_r2_heldout:.2f} on held-out samples"
    return f"fit R² {f.fit_r2:.2f} on its samples (pure noise: {_num(f.fit_r2_null)}){held}"


def score_line(f: TrustFigures) -> str:
    frame = "" if f.frame_score is None else f" (indexed frame: {f.frame_score:.3f})"
    return f"score {f.score:.3f} on the explained region{frame}"


def run_line(f: TrustFigures) -> str:
    return f"{f.samples} samples, seed {f.seed}, {f.segments} segments, {f.seconds:.2f} s"


def describe(f: TrustFigures, areas: Sequence[float] | None = None) -> list[str]:
    """Every figure of one attribution with its yardstick, one sentence a line.

    `areas` picks the deletion checks shown (default: all stored).
    """
    lines = [score_line(f)]
    lines += [deletion_line(d) for d in f.deletion if areas is None or any(abs(d.area - a) < 1e-9 for a in areas)]
    fit = fit_line(f)
    if fit:
        lines.append(fit)
    lines += [agreement_line(f), run_line(f)]
    return lines


def summary_text(figures: Sequence[TrustFigures]) -> str:
    """Several methods' figures for one emotion in a few sentences: each method's deletion check
    (smallest area) and fit, then the agreement and stabilities once."""
    parts = []
    for f in figures:
        own = [deletion_line(f.deletion[0])] if f.deletion else []
        fit = fit_line(f)
        parts.append(f"{method_name(f.method)}: " + "; ".join(own + ([fit] if fit else [])) + ".")
    if figures:
        parts.append(agreement_line(figures[0]) + ".")
    return " ".join(parts)


_ASCII = {"²": "2", "–": "-", "—": "-", "−": "-", "±": "+/-", "×": "x", "≥": ">=", "≤": "<="}


def ascii_text(line: str) -> str:
    """The same sentence in ASCII (for fonts without ², ±, –): 'R²' → 'R2', '±' → '+/-'."""
    return "".join(_ASCII.get(c, c) for c in line)
