"""Colour-blind check of the map palettes: every pair of categories of one concept stays apart
under simulated protanopia, deuteranopia and tritanopia (Machado, Oliveira & Fernandes 2009,
severity 1.0, applied in linear sRGB), measured as CIELAB ΔE (CIE76)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from kaizhou_gis import maps

#: Machado et al. (2009) simulation matrices at severity 1.0 (linear RGB).
MACHADO = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
}
MIN_DELTA_E = 12.0  # clearly different at a glance on a map symbol


def _lin(hex_rgb: str) -> np.ndarray:
    c = np.array([int(hex_rgb[i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _lab(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0, 1)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = m @ lin / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def min_delta_e(colours: list[str]) -> tuple[float, str]:
    worst = (np.inf, "")
    for vision, m in [("normal", np.eye(3))] + [(k, np.array(v)) for k, v in MACHADO.items()]:
        labs = [_lab(m @ _lin(c)) for c in colours]
        for (i, a), (j, b) in itertools.combinations(enumerate(labs), 2):
            d = float(np.linalg.norm(a - b))
            if d < worst[0]:
                worst = (d, f"{vision}: {colours[i]} vs {colours[j]}")
    return worst


CONCEPTS = {
    "poverty status": [c["color"] for c in maps.POVERTY_CATS],
    "road access": [c["color"] for c in maps.ACCESS_CATS],
    "road surface": [c["color"] for c in maps.ROAD_CATS],
    "road works": [c["color"] for c in maps.WORK_CATS],
    "sites": [c["color"] for c in maps.SITE_CATS],
    "industry categories": maps.CATEGORY_COLORS,
    "elevation classes (neighbours)": None,
}


@pytest.mark.parametrize("concept", sorted(CONCEPTS))
def test_categories_stay_distinct_for_colour_blind_readers(concept):
    if CONCEPTS[concept] is None:  # a sequential ramp: each class apart from the next
        ramp = maps.ELEV_COLORS
        for a, b in zip(ramp, ramp[1:]):
            d, where = min_delta_e([a, b])
            assert d >= MIN_DELTA_E / 2, (concept, round(d, 1), where)
        return
    d, where = min_delta_e(CONCEPTS[concept])
    assert d >= MIN_DELTA_E, (concept, round(d, 1), where)


def test_simulation_is_real():
    """Red and green of the same lightness collapse for a deuteranope (the check can fail)."""
    d, where = min_delta_e(["#d7191c", "#1a9641"])
    normal = float(np.linalg.norm(_lab(_lin("#d7191c")) - _lab(_lin("#1a9641"))))
    assert normal > 60 and d < normal / 2
