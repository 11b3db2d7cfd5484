"""The trust figures' record and formatter: hand-set figures, so every word and sign is known."""

from __future__ import annotations

import json

import pytest

from emocore.trust import Deletion, TrustFigures, ascii_text, describe, spearman_brown, summary_text


def _figures(method: str = "lime", *, top_drop: float = 0.42, agreement: float | None = 0.55,
             other: float | None = 0.62) -> TrustFigures:
    return TrustFigures(
        method=method, score=0.8712, frame_score=0.8712, base=0.1, samples=500, seed=3, seconds=1.234, segments=40,
        deletion=(Deletion(0.1, top_drop, 0.05, 0.03, 97.0, 12.3, 32, 0.11, 0.12),
                  Deletion(0.2, 0.6, 0.1, 0.05, 100.0, None, 32, 0.21, 0.2)),
        stability=0.7, stability_half=0.54, agreement=agreement, other_stability=other,
        fit_r2=0.62 if method == "lime" else None, fit_r2_null=0.09 if method == "lime" else None,
        fit_r2_heldout=0.41 if method == "lime" else None,
    )


def test_every_figure_is_described_beside_its_yardstick() -> None:
    assert describe(_figures()) == [
        "score 0.871 on the explained region (indexed frame: 0.871)",
        "hiding the top 10% lowers the score by 0.42; random regions: 0.05 ± 0.03 (32 draws), "
        "top drop at the 97th percentile, z 12.3",
        "hiding the top 20% lowers the score by 0.60; random regions: 0.10 ± 0.05 (32 draws), "
        "top drop at the 100th percentile",
        "fit R² 0.62 on its samples (pure noise: 0.09), 0.41 on held-out samples",
        "LIME–SHAP agreement 0.55; seed-to-seed stability LIME 0.70, SHAP 0.62",
        "500 samples, seed 3, 40 segments, 1.23 s",
    ]


def test_signs_follow_one_convention() -> None:
    """A drop is positive when hiding the region lowers the score; a negative drop raises it."""
    lines = describe(_figures(top_drop=-0.07), areas=(0.1,))
    assert lines[1].startswith("hiding the top 10% raises the score by 0.07;")
    assert not any("-0.07" in line or "+0.07" in line for line in lines)


def test_shap_names_the_methods_in_the_same_order_and_has_no_fit() -> None:
    shap = describe(_figures("shap", other=0.8))
    assert "LIME–SHAP agreement 0.55; seed-to-seed stability LIME 0.80, SHAP 0.70" in shap
    assert not any("R²" in line for line in shap)
    alone = describe(_figures("shap", agreement=None, other=None))
    assert "seed-to-seed stability SHAP 0.70 (no LIME map to agree with)" in alone


def test_summary_text_gives_the_agreement_once() -> None:
    text = summary_text([_figures("lime"), _figures("shap", other=0.7)])
    assert text.count("LIME–SHAP agreement") == 1
    assert text.startswith("LIME: hiding the top 10% lowers the score by 0.42;")
    assert "SHAP: hiding the top 10%" in text and "pure noise: 0.09" in text


def test_the_record_round_trips_through_the_stored_json() -> None:
    figures = _figures()
    stored = json.loads(json.dumps(figures.to_dict()))
    assert TrustFigures.from_dict(stored) == figures
    assert stored["deletion"][0]["percentile"] == 97.0 and stored["deletion"][1]["z"] is None


def test_spearman_brown_and_ascii() -> None:
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.0) == 0.0 and spearman_brown(None) is None and spearman_brown(-1.0) == -1.0
    assert ascii_text("fit R² 0.62; LIME–SHAP 0.05 ± 0.03") == "fit R2 0.62; LIME-SHAP 0.05 +/- 0.03"
