"""Deterministic noise fields for the synthetic DEM (spectral synthesis, ridged fractals)."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates


def fractal(shape: tuple[int, int], rng: np.random.Generator, *, beta: float = 2.0,
            low_cut_cells: float | None = None) -> np.ndarray:
    """Power-law (1/f^beta) noise on a grid, zero mean and unit standard deviation.

    Parameters
    ----------
    shape : (rows, cols)
    rng : numpy Generator
        The only source of randomness (same state, same field).
    beta : float
        Spectral exponent of the amplitude spectrum ``|k|^-beta``; larger is smoother.
    low_cut_cells : float, optional
        Wavelengths longer than this many cells are damped (keeps the field from carrying a
        regional trend, which comes from elsewhere).
    """
    spec = np.fft.rfft2(rng.standard_normal(shape))
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0
    amp = k ** (-beta)
    amp[0, 0] = 0.0
    if low_cut_cells:
        k0 = 1.0 / low_cut_cells
        amp *= 1.0 - np.exp(-(k / k0) ** 2)
    del k
    spec *= amp
    del amp
    field = np.fft.irfft2(spec, s=shape)
    del spec
    field -= field.mean()
    sd = field.std()
    if sd > 0:
        field /= sd
    return field


def ridged(shape: tuple[int, int], rng: np.random.Generator, *, octaves: int = 5,
           base_cells: float = 120.0, gain: float = 0.5) -> np.ndarray:
    """Ridged multi-octave noise in [0, 1]: sharp crests (1) and rounded hollows (0).

    Each octave is band-limited noise at wavelength ``base_cells / 2**i`` folded as ``1 - |n|``;
    octaves are weighted by ``gain**i`` and by the previous octave (detail sits on the ridges).
    """
    out = np.zeros(shape)
    weight = np.ones(shape)
    total = 0.0
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    k = np.hypot(kx, ky)
    # in place, operation for operation: band = exp(-((k - k0) / (0.5 k0))^2), spec = rfft2(noise)
    # * band, r = (1 - clip(|n|, 0, 1))^2, out += a * r * weight, weight = clip(1.5 r, 0, 1)
    for i in range(octaves):
        wl = base_cells / (2 ** i)
        k0 = 1.0 / max(wl, 2.0)
        band = k - k0
        band /= 0.5 * k0
        band **= 2
        np.negative(band, out=band)
        np.exp(band, out=band)
        spec = np.fft.rfft2(rng.standard_normal(shape))
        spec *= band
        del band
        n = np.fft.irfft2(spec, s=shape)
        del spec
        n /= (n.std() or 1.0) * 2.0
        r = n
        np.abs(r, out=r)
        np.clip(r, 0, 1, out=r)
        np.subtract(1.0, r, out=r)
        np.multiply(r, r, out=r)
        a = gain ** i
        ar = np.multiply(r, a)
        ar *= weight
        out += ar
        del ar
        np.multiply(r, 1.5, out=weight)
        np.clip(weight, 0, 1, out=weight)
        del n, r
        total += a
    del weight, k
    out /= total
    lo, hi = np.percentile(out, [1, 99])
    out -= lo
    out /= hi - lo + 1e-12
    np.clip(out, 0.0, 1.0, out=out)
    return out


def warp(field: np.ndarray, dx_cells: np.ndarray, dy_cells: np.ndarray) -> np.ndarray:
    """Sample ``field`` at positions displaced by (dx, dy) cells (bilinear, edges clamped)."""
    rr, cc = np.mgrid[0:field.shape[0], 0:field.shape[1]].astype("float64")
    return map_coordinates(field, [rr + dy_cells, cc + dx_cells], order=1, mode="nearest")
