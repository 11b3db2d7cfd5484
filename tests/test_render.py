"""Rendering stored explanations: synthetic images and hand-set weights, so every pixel is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emocore.render import (
    NEGATIVE,
    POSITIVE,
    _wrap,
    caption_lines,
    edges,
    evidence,
    explanation_figure,
    overlay,
    place,
    save_png,
)
from emocore.store import FrameExplanation, StoredAttribution
from emocore.trust import Deletion, TrustFigures, ascii_text, describe


@pytest.fixture
def quarters() -> tuple[np.ndarray, np.ndarray]:
    """A 40×40 grey image cut into four 20×20 segments numbered 0 (top left) to 3 (bottom right)."""
    image = np.full((40, 40, 3), 128, dtype=np.uint8)
    segments = np.zeros((40, 40), dtype=np.int32)
    segments[:20, 20:] = 1
    segments[20:, :20] = 2
    segments[20:, 20:] = 3
    return image, segments


def _explanation(methods: tuple[str, ...] = ("lime", "shap")) -> FrameExplanation:
    """A hand-made explanation of 'happy' on a 64×64 region with 4 segments, as the store returns it."""
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[:, :, 0] = np.arange(64, dtype=np.uint8)[None, :] * 4
    segments = np.zeros((64, 64), dtype=np.int32)
    segments[:32, 32:] = 1
    segments[32:, :32] = 2
    segments[32:, 32:] = 3
    deletion = (Deletion(0.1, 0.42, 0.05, 0.03, 96.875, 12.33, 32, 0.11, 0.12),
                Deletion(0.2, -0.06, 0.1, 0.04, 3.125, -4.0, 32, 0.21, 0.22))
    stability = {"lime": 0.7, "shap": 0.62}

    def figures(method: str) -> dict[str, object]:
        lime = method == "lime"
        other = "shap" if lime else "lime"
        return TrustFigures(
            method=method, score=0.87, frame_score=0.86, base=0.1, samples=500, seed=0, seconds=0.8, segments=4,
            deletion=deletion, stability=stability[method], stability_half=0.54, agreement=0.55,
            other_stability=stability[other] if other in methods else None,
            fit_r2=0.7 if lime else None, fit_r2_null=0.09 if lime else None, fit_r2_heldout=0.41 if lime else None,
        ).to_dict()

    attributions = tuple(
        StoredAttribution("happy", m, np.array([0.5, -0.25, 0.0, 0.1]), figures(m)) for m in methods
    )
    return FrameExplanation("ad", 3, 1.5, "hash", (100, 50, 164, 114), segments, image, {}, attributions)


def test_evidence_is_normalised_by_the_largest_magnitude_and_keeps_sign(quarters) -> None:
    _, segments = quarters
    ev = evidence(segments, np.array([0.5, -1.0, 0.25, 0.0]))
    assert ev[0, 0] == 0.5 and ev[0, 39] == -1.0 and ev[39, 0] == 0.25 and ev[39, 39] == 0.0
    assert ev.min() >= -1 and ev.max() <= 1


def test_evidence_of_all_zero_weights_is_zero(quarters) -> None:
    _, segments = quarters
    assert not evidence(segments, np.zeros(4)).any()


def test_evidence_rejects_segments_without_a_weight(quarters) -> None:
    _, segments = quarters
    with pytest.raises(ValueError, match="weights"):
        evidence(segments, np.ones(3))


def test_zero_weight_pixels_are_unchanged_without_outlines(quarters) -> None:
    image, segments = quarters
    out = overlay(image, segments, np.array([1.0, 0.0, -0.5, 0.0]), outlines=False)
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out[:20, 20:], image[:20, 20:])
    np.testing.assert_array_equal(out[20:, 20:], image[20:, 20:])
    assert not np.array_equal(out[:20, :20], image[:20, :20])
    assert not np.array_equal(out[20:, :20], image[20:, :20])


def test_colours_land_where_the_weights_are(quarters) -> None:
    image, segments = quarters
    out = overlay(image, segments, np.array([1.0, -1.0, 0.0, 0.0]), opacity=1.0, outlines=False)
    np.testing.assert_array_equal(out[5, 5], POSITIVE)
    np.testing.assert_array_equal(out[5, 35], NEGATIVE)
    half = overlay(image, segments, np.array([1.0, -1.0, 0.0, 0.0]), opacity=0.5, outlines=False)
    np.testing.assert_array_equal(half[5, 5], np.round((np.array(POSITIVE) + 128) / 2))


def test_positive_only_hides_negative_evidence(quarters) -> None:
    image, segments = quarters
    weights = np.array([1.0, -1.0, 0.0, 0.0])
    positive = overlay(image, segments, weights, sign="positive", outlines=False)
    np.testing.assert_array_equal(positive[:20, 20:], image[:20, 20:])
    assert not np.array_equal(positive[:20, :20], image[:20, :20])
    negative = overlay(image, segments, weights, sign="negative", outlines=False)
    np.testing.assert_array_equal(negative[:20, :20], image[:20, :20])
    assert not np.array_equal(negative[:20, 20:], image[:20, 20:])


def test_opacity_zero_leaves_the_image_unchanged(quarters) -> None:
    image, segments = quarters
    out = overlay(image, segments, np.array([1.0, -1.0, 0.3, 0.0]), opacity=0.0, outlines=False)
    np.testing.assert_array_equal(out, image)


def test_outlines_are_thin_and_light(quarters) -> None:
    image, segments = quarters
    edge = edges(segments)
    rows = np.r_[0:19, 20:40]  # away from the horizontal boundary (row 19)
    assert edge[rows, 19].all() and not edge[rows, 20].any() and not edge[rows, 18].any()  # one pixel wide
    assert edge.sum() == 40 + 40 - 1
    out = overlay(image, segments, np.zeros(4), opacity=0.0, outlines=True)
    assert (out[edge] > image[edge]).all() and (out[edge] < 255).all()
    np.testing.assert_array_equal(out[~edge], image[~edge])


def test_overlay_rejects_bad_arguments(quarters) -> None:
    image, segments = quarters
    weights = np.zeros(4)
    with pytest.raises(ValueError, match="opacity"):
        overlay(image, segments, weights, opacity=1.5)
    with pytest.raises(ValueError, match="sign"):
        overlay(image, segments, weights, sign="up")
    with pytest.raises(ValueError, match="height and width"):
        overlay(image, segments[:10], weights)
    with pytest.raises(ValueError, match="RGB uint8"):
        overlay(image.astype(np.float32), segments, weights)


def test_overlay_does_not_modify_its_input(quarters) -> None:
    image, segments = quarters
    before = image.copy()
    overlay(image, segments, np.array([1.0, -1.0, 0.3, 0.0]))
    np.testing.assert_array_equal(image, before)


def _numbered_patch(h: int, w: int) -> np.ndarray:
    """A patch whose pixels say where they come from: red = column, green = row."""
    patch = np.zeros((h, w, 3), dtype=np.uint8)
    patch[..., 0] = np.arange(w, dtype=np.uint8)[None, :]
    patch[..., 1] = np.arange(h, dtype=np.uint8)[:, None]
    patch[..., 2] = 200
    return patch


@pytest.mark.parametrize(
    "region",
    [(-5, 10, 15, 30), (10, -7, 30, 13), (35, 10, 55, 30), (10, 25, 30, 45), (-3, -4, 47, 36)],
    ids=["left", "top", "right", "bottom", "all four"],
)
def test_place_pastes_only_the_visible_part(region: tuple[int, int, int, int]) -> None:
    frame = np.zeros((30, 40, 3), dtype=np.uint8)
    left, top, right, bottom = region
    patch = _numbered_patch(bottom - top, right - left)  # same size: no resampling, exact pixels
    out = place(frame, patch, region, outline=None)
    assert out.shape == frame.shape and out.dtype == np.uint8
    for y in range(30):
        for x in range(40):
            inside = left <= x < right and top <= y < bottom
            expected = patch[y - top, x - left] if inside else (0, 0, 0)
            np.testing.assert_array_equal(out[y, x], expected, err_msg=f"pixel ({x}, {y})")
    assert not frame.any()  # the frame given is untouched


def test_place_resizes_the_patch_and_outlines_the_region() -> None:
    frame = np.zeros((60, 80, 3), dtype=np.uint8)
    patch = np.full((8, 8, 3), (10, 20, 30), dtype=np.uint8)
    out = place(frame, patch, (20, 10, 52, 42), outline=(255, 0, 0))
    np.testing.assert_array_equal(out[26, 36], (10, 20, 30))
    np.testing.assert_array_equal(out[10, 30], (255, 0, 0))  # top edge
    np.testing.assert_array_equal(out[30, 51], (255, 0, 0))  # right edge
    np.testing.assert_array_equal(out[5, 5], (0, 0, 0))


def test_place_handles_a_region_outside_the_frame() -> None:
    frame = np.zeros((30, 40, 3), dtype=np.uint8)
    out = place(frame, _numbered_patch(10, 10), (50, 50, 60, 60))
    np.testing.assert_array_equal(out, frame)
    with pytest.raises(ValueError, match="right > left"):
        place(frame, _numbered_patch(10, 10), (10, 10, 10, 20))


def test_explanation_figure_is_an_rgb_image() -> None:
    explanation = _explanation()
    figure = explanation_figure(explanation, "happy")
    assert figure.dtype == np.uint8 and figure.ndim == 3 and figure.shape[2] == 3
    assert figure.shape[1] >= 2 * 256
    frame = np.full((180, 320, 3), 40, dtype=np.uint8)
    with_frame = explanation_figure(explanation, "happy", frame=frame, width=600)
    assert with_frame.shape[0] > figure.shape[0] and with_frame.shape[1] >= 600
    # the positive evidence is drawn somewhere in the figure
    assert (np.abs(with_frame.astype(int) - POSITIVE).sum(axis=2) < 120).any()


def test_explanation_figure_skips_missing_methods_and_raises_when_none() -> None:
    only_lime = _explanation(("lime",))
    one = explanation_figure(only_lime, "happy")
    two = explanation_figure(_explanation(), "happy")
    assert one.shape[1] < two.shape[1]
    with pytest.raises(ValueError, match="no lime or shap explanation of 'sad'"):
        explanation_figure(only_lime, "sad")
    with pytest.raises(ValueError, match="shap"):
        explanation_figure(only_lime, "happy", methods=("shap",))


def test_captions_show_the_trust_figures_in_the_formatters_words() -> None:
    explanation = _explanation()
    lime = caption_lines(explanation.attribution("happy", "lime"))
    shap = caption_lines(explanation.attribution("happy", "shap"))
    assert lime[0] == "LIME: happy" and "score 0.870" in lime[1]
    # the same sign and words as the CLI: a positive drop "lowers the score", beside the random spread
    assert ("hiding the top 10% lowers the score by 0.42; random regions: 0.05 +/- 0.03 (32 draws), "
            "top drop at the 97th percentile, z 12.3") in lime
    assert not any("20%" in line for line in lime)  # the caption shows the 10% check only
    assert "fit R2 0.70 on its samples (pure noise: 0.09), 0.41 on held-out samples" in lime
    assert "LIME-SHAP agreement 0.55; seed-to-seed stability LIME 0.70, SHAP 0.62" in lime
    assert "LIME-SHAP agreement 0.55; seed-to-seed stability LIME 0.70, SHAP 0.62" in shap
    assert not any("R2" in line for line in shap)
    assert all(line.isascii() for line in lime + shap)  # Hershey fonts draw ASCII only
    unicode = describe(TrustFigures.from_dict(explanation.attribution("happy", "lime").figures), areas=(0.1,))
    assert [ascii_text(line) for line in unicode] == lime[1:]  # exactly the formatter's sentences


def test_long_caption_lines_are_wrapped_not_shrunk() -> None:
    lines = caption_lines(_explanation().attribution("happy", "lime"))
    wrapped = _wrap(lines, 256)
    assert len(wrapped) > len(lines)
    assert all(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, 0.42, 1)[0][0] <= 248 for line in wrapped)
    assert " ".join(wrapped).split() == " ".join(lines).split()  # every word kept, in order
    assert wrapped[2].startswith("  ") and not wrapped[3].startswith(" ")  # continuations are indented


def test_save_png_round_trips_colours(tmp_path) -> None:
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    image[0, 0] = (255, 0, 0)
    image[1, 1] = POSITIVE
    image[2, 2] = NEGATIVE
    path = save_png(tmp_path / "new" / "folder" / "figure.png", image)
    assert path.is_file()
    back = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, image)
