"""Lattice light-sheet acquisitions on a Flash4.0 with synchronous-readout carryover, with known truth.

The camera is described on SENSOR coordinates, so every ROI of the same simulated camera sees the
same pixels: per-pixel offset, read noise, carryover plateau A and rate B are deterministic
functions (a counter-based hash) of the sensor pixel and a seed.  An ROI (left, top, right,
bottom) is imaged with the camera rotated by 90 degrees, as in LLS data: image row ``r`` sees
sensor column ``right - r`` and image column ``c`` sees sensor row ``top + c``.  This is the
convention of LLSpy's ``get_subroi``; here it is implemented independently (sensor indexing, no
slicing), so tests of :func:`camcorr.flash.crop_params` against it are not tautological.

Frames are generated in acquisition order with the forward model of the carryover
(Lambert, LLSpy camera corrections documentation, llspy.readthedocs.io/en/latest/camera.html)::

    charge_j = photo_j + A * (1 - exp(-B * charge_{j-1}))      (ADU, photo_j Poisson in electrons)
    raw_j    = round(offset + charge_j + noise * N(0, 1))      (uint16, clipped)

Every frame is also produced without carryover from the SAME random draws (``raw_nocarry``), so
the carryover actually present in the data is known exactly.

Two writers produce folders laid out as the LLS software does:

* :func:`write_calibration_folder`: ``bright{PP}p{P}_Iter_CamA_ch0/ch1_stack0000_*.tif`` pairs at
  many laser powers (ch0 bright and even, ch1 dark), ``dark_Iter_*`` offset frames and
  ``*_Settings.txt`` files with camera serial and ROI;
* :func:`write_acquisition`: interleaved experimental stacks ``{name}_CamA_ch{c}_stack{t}_*.tif``
  of a bead-like specimen with a bright and a dim channel, and their Settings.txt.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["CameraTruth", "camera_truth", "sensor_maps", "simulate_frames", "write_settings",
           "write_calibration_folder", "write_acquisition", "CalibrationTruth", "AcquisitionTruth",
           "DEFAULT_POWERS", "E_PER_ADU"]

#: Flash4.0 v2 conversion factor, electrons per ADU (Hamamatsu data sheet value ~0.46).
E_PER_ADU = 0.46
#: Laser powers (%) of the simulated calibration: many low powers, bigger steps later (LLSpy's
#: calibration protocol, llspy.readthedocs.io/en/latest/camera.html).
DEFAULT_POWERS = (0.0, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 35.0, 60.0, 100.0)

ROI = Tuple[int, int, int, int]


# --------------------------------------------------------------------------------------------
# camera on sensor coordinates
# --------------------------------------------------------------------------------------------
def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniform(sx, sy, seed: int, stream: int) -> np.ndarray:
    """Deterministic uniforms in (0, 1) for sensor pixels (sx, sy)."""
    with np.errstate(over="ignore"):
        key = (np.asarray(sx, np.uint64) << np.uint64(16)) ^ np.asarray(sy, np.uint64)
        key = key ^ (np.uint64(seed & 0xFFFFFFFF) << np.uint64(36)) ^ (np.uint64(stream) << np.uint64(56))
        h = _splitmix64(_splitmix64(key))
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def _normal(sx, sy, seed: int, stream: int) -> np.ndarray:
    u1 = _uniform(sx, sy, seed, 2 * stream)
    u2 = _uniform(sx, sy, seed, 2 * stream + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _sensor_grid(roi: ROI):
    left, top, right, bottom = (int(v) for v in roi)
    rows = np.arange(right - left + 1)
    cols = np.arange(bottom - top + 1)
    sx = (right - rows)[:, None] * np.ones((1, cols.size), np.int64)   # sensor column seen by row r
    sy = np.ones((rows.size, 1), np.int64) * (top + cols)[None, :]     # sensor row seen by column c
    return sx, sy


@dataclass
class CameraTruth:
    """Per-pixel truth over one ROI (maps (Y, X), float32, ADU).

    Attributes
    ----------
    A, B, offset, noise : ndarray
        Carryover plateau (ADU), rate (1/ADU), offset (ADU), read noise std (ADU).
    roi : (left, top, right, bottom)
    serial : str
    seed : int
    """

    A: np.ndarray
    B: np.ndarray
    offset: np.ndarray
    noise: np.ndarray
    roi: ROI
    serial: str = "100740"
    seed: int = 0

    @property
    def shape(self):
        return self.A.shape


def sensor_maps(roi: ROI, *, seed: int = 0, a_median: float = 60.0, a_sigma: float = 0.6,
                b_median: float = 0.0019, b_sigma: float = 0.3, offset_mean: float = 100.0,
                offset_std: float = 3.0, noise_median: float = 1.6, noise_sigma: float = 0.3,
                serial: str = "100740") -> CameraTruth:
    """The simulated camera's truth maps over `roi` (rotated-camera layout, see module notes).

    A is log-normal (median `a_median` ADU, clipped to [1, 700]), B log-normal (median
    `b_median` 1/ADU, clipped to [2e-4, 9e-3]), both inside LLSpy's fit bounds; offset normal;
    read noise log-normal.  The same sensor pixel gets the same values in every ROI.
    """
    sx, sy = _sensor_grid(roi)
    A = np.clip(a_median * np.exp(a_sigma * _normal(sx, sy, seed, 1)), 1.0, 700.0)
    B = np.clip(b_median * np.exp(b_sigma * _normal(sx, sy, seed, 2)), 2e-4, 9e-3)
    off = offset_mean + offset_std * _normal(sx, sy, seed, 3)
    noise = noise_median * np.exp(noise_sigma * _normal(sx, sy, seed, 4))
    f = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
    return CameraTruth(f(A), f(B), f(off), f(noise), tuple(int(v) for v in roi), serial, seed)


camera_truth = sensor_maps


def simulate_frames(signal: np.ndarray, truth: CameraTruth, rng: np.random.Generator, *,
                    carry: bool = True, previous_charge: Optional[np.ndarray] = None,
                    return_nocarry: bool = False):
    """Camera frames in acquisition order from expected photo-signal frames.

    Parameters
    ----------
    signal : ndarray (N, Y, X)
        Expected photo signal of each frame in ADU (above offset), acquisition order.
    truth : CameraTruth
        Camera maps of the same (Y, X).
    rng : numpy Generator
    carry : bool
        Add synchronous-readout carryover.
    previous_charge : ndarray (Y, X), optional
        Charge (ADU) of the frame before the first one (default: none).
    return_nocarry : bool
        Also return the frames without carryover made from the same random draws.

    Returns
    -------
    raw : ndarray uint16 (N, Y, X)
    raw_nocarry : ndarray uint16 (N, Y, X)
        Only if `return_nocarry`.
    """
    signal = np.asarray(signal, np.float64)
    n = signal.shape[0]
    raw = np.empty(signal.shape, np.uint16)
    raw0 = np.empty(signal.shape, np.uint16) if return_nocarry else None
    prev = np.zeros(signal.shape[1:]) if previous_charge is None else np.asarray(previous_charge, float)
    A = truth.A.astype(np.float64)
    B = truth.B.astype(np.float64)
    for j in range(n):
        photo = rng.poisson(np.maximum(signal[j], 0) * E_PER_ADU) / E_PER_ADU
        read = truth.noise * rng.standard_normal(signal.shape[1:])
        c = A * (1.0 - np.exp(-B * np.maximum(prev, 0))) if carry else 0.0
        charge = photo + c
        raw[j] = np.clip(np.rint(truth.offset + charge + read), 0, 65535)
        if raw0 is not None:
            raw0[j] = np.clip(np.rint(truth.offset + photo + read), 0, 65535)
        prev = charge
    return (raw, raw0) if return_nocarry else raw


# --------------------------------------------------------------------------------------------
# Settings.txt
# --------------------------------------------------------------------------------------------
def write_settings(path, roi: ROI, *, serial: str = "100740", lasers: Sequence[int] = (488, 642),
                   powers: Sequence[float] = (5.0, 15.0), n_planes: int = 10, n_stacks: int = 1,
                   cycle: str = "per Z", date: Optional[datetime] = None, twin_cam: bool = False) -> Path:
    """Write a Settings.txt in the LLS software's layout (the parts camcorr and LLSpy read)."""
    date = date or datetime(2024, 5, 17, 14, 3, 9)
    L, T, R, B = (int(v) for v in roi)
    lines = ["***** ***** ***** General ***** ***** *****",
             f"Date :\t{date.month}/{date.day}/{date.year} {date.strftime('%I:%M:%S %p').lstrip('0')}",
             "Acq Mode :\tZ stack",
             "Version :\tv 4.04505.0012 Built on : 5/17/2017 10:55:08 AM, rev 4505", "",
             "***** ***** ***** Waveform ***** ***** *****", "Waveform type :\tLinear", ""]
    for wave, off, step in (("X Galvo", 0, 0.1), ("Z Galvo", -0.9, 0), ("Z PZT", 50, 0), ("S PZT", 52, 0.4)):
        for c in range(len(lasers)):
            lines.append(f"{wave} Offset, Interval (um), # of Pixels for Excitation ({c}) :\t{off}\t{step}\t{n_planes}")
        lines.append("")
    for c in range(len(lasers)):
        lines.append(f"# of stacks ({c}) :\t{n_stacks}")
    lines.append("")
    for c, (las, pw) in enumerate(zip(lasers, powers)):
        lines.append(f"Excitation Filter, Laser, Power (%), Exp(ms) ({c}) :\tN/A\t{las}\t{pw}\t10")
    lines += ["", f"Cycle lasers :\t{cycle}", "", "Z motion :\tSample piezo", "", "",
              "***** ***** *****   Camera  ***** ***** *****",
              "Model :\tC11440-22C", f"Serial :\t{serial}", "Frame Transfer :\tOFF",
              "Trigger :\tExternal", "Exp(s) :\t0.01002", "Cycle(s) :\t0.01111", "Cycle(Hz) :\t90.00 Hz",
              f"ROI :\tLeft={L} Top={T} Right={R} Bot={B}", "Binning :\tX=1 Y=1",
              "# of Pixels :\tX=2048 Y=2048", "",
              "***** ***** *****   Advanced Timing  ***** ***** *****",
              "Trigger Mode :\tSLM -> Cam", "",
              "***** ***** *****   .ini File  ***** ***** *****",
              "[Detection optics]", "Magnification = 62.5", "",
              "[General]", 'Camera type = "Orca4.0"', 'Cam Trigger mode = "SLM -> Cam"',
              f"Twin cam mode? = {'TRUE' if twin_cam else 'FALSE'}", "",
              "[Hamamatsu Camera Settings]", f"Orca 4.0 SN = {serial}", "Use Synch readout mode? = TRUE", "",
              "[Sample stage]", "Angle between stage and bessel beam (deg) = 31.5", ""]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines), encoding="utf-8")
    return p


def _write_stack(path: Path, data: np.ndarray):
    import tifffile

    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZYX"})


# --------------------------------------------------------------------------------------------
# calibration folder
# --------------------------------------------------------------------------------------------
@dataclass
class CalibrationTruth:
    """What :func:`write_calibration_folder` made."""

    folder: Path
    truth: CameraTruth
    powers: Tuple[float, ...]
    bright_levels: Tuple[float, ...]
    pair_files: List[Tuple[Path, Path]] = field(default_factory=list)
    dark_files: List[Path] = field(default_factory=list)
    n_planes: int = 0


def _power_tag(p: float) -> str:
    return f"{p:04.1f}".replace(".", "p")


def _flat_profile(shape) -> np.ndarray:
    y = np.linspace(-1, 1, shape[0])[:, None]
    x = np.linspace(-1, 1, shape[1])[None, :]
    return 1.0 - 0.25 * (x ** 2 + y ** 2) / 2


def write_calibration_folder(folder, *, roi: ROI = (1001, 1011, 1048, 1050), seed: int = 0,
                             powers: Sequence[float] = DEFAULT_POWERS, n_planes: int = 30,
                             bright_max: float = 5000.0, n_dark_files: int = 3,
                             dark_planes: int = 40, serial: str = "100740",
                             outlier_fraction: float = 0.0, truth_kwargs: Optional[dict] = None,
                             ) -> CalibrationTruth:
    """Write a carryover calibration folder as the LLS software would (the layout of LLSpy's
    calibration protocol, llspy.readthedocs.io/en/latest/camera.html).

    Parameters
    ----------
    folder : path-like
        Created if needed.
    roi : (left, top, right, bottom)
        Calibration camera ROI; images are (right-left+1, bottom-top+1).  Default 48 x 40.
    seed : int
        Seed of the camera truth and of the noise.
    powers : sequence of float
        Laser powers in %; the bright (ch0) level is ``bright_max * power / 100`` ADU on average,
        with a +-12 % illumination fall-off and 2 % plane-to-plane flicker.
    n_planes : int
        Bright/dark pairs per power (one ch0 and one ch1 stack of `n_planes` planes each).
    n_dark_files, dark_planes : int
        Offset/noise frames: ``dark_Iter_CamA_ch0_stack{k}_488nm.tif`` files.
    outlier_fraction : float
        Fraction of dark-channel (ch1) values replaced by cosmic-ray-like spikes (+200..2000 ADU),
        to test robustness.
    truth_kwargs : dict, optional
        Passed to :func:`sensor_maps`.

    Returns
    -------
    CalibrationTruth
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    truth = sensor_maps(roi, seed=seed, serial=serial, **(truth_kwargs or {}))
    rng = np.random.default_rng(seed + 1)
    shape = truth.shape
    prof = _flat_profile(shape)
    pair_files = []
    levels = []
    for p in powers:
        level = bright_max * p / 100.0
        levels.append(level)
        flicker = 1.0 + 0.02 * rng.standard_normal(n_planes)
        sig = np.zeros((2 * n_planes,) + shape)
        sig[0::2] = level * prof[None] * flicker[:, None, None]
        raw = simulate_frames(sig, truth, rng)
        ch0, ch1 = raw[0::2], raw[1::2].copy()
        if outlier_fraction > 0:
            hit = rng.random(ch1.shape) < outlier_fraction
            spikes = rng.uniform(200, 2000, hit.sum())
            ch1[hit] = np.clip(ch1[hit] + spikes, 0, 65535).astype(np.uint16)
        tag = f"bright{_power_tag(p)}_Iter"
        f0 = folder / f"{tag}_CamA_ch0_stack0000_488nm_0000000msec_0001234567msecAbs.tif"
        f1 = folder / f"{tag}_CamA_ch1_stack0000_642nm_0000000msec_0001234567msecAbs.tif"
        _write_stack(f0, ch0)
        _write_stack(f1, ch1)
        write_settings(folder / f"{tag}_Settings.txt", roi, serial=serial, n_planes=n_planes,
                       powers=(p, 0.0))
        pair_files.append((f0, f1))
    dark_files = []
    for k in range(n_dark_files):
        raw = simulate_frames(np.zeros((dark_planes,) + shape), truth, rng)
        f = folder / f"dark_Iter_CamA_ch0_stack{k:04d}_488nm_0000000msec_0001234567msecAbs.tif"
        _write_stack(f, raw)
        dark_files.append(f)
    write_settings(folder / "dark_Iter_Settings.txt", roi, serial=serial, n_planes=dark_planes,
                   lasers=(488,), powers=(0.0,))
    return CalibrationTruth(folder, truth, tuple(powers), tuple(levels), pair_files, dark_files, n_planes)


# --------------------------------------------------------------------------------------------
# experimental acquisition
# --------------------------------------------------------------------------------------------
@dataclass
class AcquisitionTruth:
    """What :func:`write_acquisition` made.

    Attributes
    ----------
    files : list of list of Path
        ``files[t][c]``: stack of timepoint t, channel c.
    settings : Path
    truth : CameraTruth
        Camera maps over the acquisition ROI (from sensor coordinates).
    signal : ndarray (T, C, Z, Y, X) float32
        Expected clean photo signal in ADU.
    raw : ndarray (T, C, Z, Y, X) uint16
        The written data.
    raw_nocarry : ndarray (T, C, Z, Y, X) uint16
        The same frames without carryover (same random draws).
    """

    folder: Path
    files: List[List[Path]]
    settings: Path
    truth: CameraTruth
    signal: np.ndarray
    raw: np.ndarray
    raw_nocarry: np.ndarray
    cycle: str = "per Z"

    @property
    def carryover(self) -> np.ndarray:
        """Carryover present in the data, ADU (T, C, Z, Y, X) float32."""
        return self.raw.astype(np.float32) - self.raw_nocarry.astype(np.float32)


def specimen(shape_zyx, rng: np.random.Generator, *, n_beads: int = 25, peak: float = 3000.0,
             background: float = 20.0, sigma: float = 2.0) -> np.ndarray:
    """Gaussian beads (expected photo signal, ADU) in a (Z, Y, X) volume."""
    nz, ny, nx = shape_zyx
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    vol = np.full(shape_zyx, background, np.float64)
    for _ in range(n_beads):
        cz, cy, cx = rng.uniform(0, nz), rng.uniform(0, ny), rng.uniform(0, nx)
        amp = peak * rng.uniform(0.3, 1.0)
        vol += amp * np.exp(-(((z - cz) / (sigma * 1.5)) ** 2 + ((y - cy) / sigma) ** 2
                              + ((x - cx) / sigma) ** 2) / 2)
    return vol


def write_acquisition(folder, *, roi: ROI = (1010, 1015, 1041, 1046), seed: int = 0,
                      n_planes: int = 12, n_timepoints: int = 1, lasers: Sequence[int] = (488, 642),
                      peaks: Sequence[float] = (3000.0, 0.0), cycle: str = "per Z",
                      name: str = "cell1", serial: str = "100740", camera_seed: Optional[int] = None,
                      truth_kwargs: Optional[dict] = None, write: bool = True) -> AcquisitionTruth:
    """Simulate and write an interleaved LLS acquisition with carryover.

    Parameters
    ----------
    folder : path-like
    roi : (left, top, right, bottom)
        Data camera ROI; place it inside the calibration ROI of the same camera.
    seed : int
        Seed of the specimen and noise.
    camera_seed : int, optional
        Seed of the camera (must equal the calibration's `seed` for the same camera); default
        `seed`.
    n_planes, n_timepoints : int
    lasers : sequence of int
        One channel per laser, in acquisition order.
    peaks : sequence of float
        Peak bead brightness (ADU) per channel; 0 makes a dark channel (background only, 0 ADU),
        whose content after correction must be noise only.
    cycle : {'per Z', 'per stack'}
    write : bool
        Write TIFFs and Settings.txt (False: arrays only).

    Returns
    -------
    AcquisitionTruth
    """
    folder = Path(folder)
    cam_seed = seed if camera_seed is None else camera_seed
    truth = sensor_maps(roi, seed=cam_seed, serial=serial, **(truth_kwargs or {}))
    rng = np.random.default_rng(seed + 1000)
    n_ch = len(lasers)
    zyx = (n_planes,) + truth.shape
    signal = np.zeros((n_timepoints, n_ch) + zyx, np.float32)
    raw = np.zeros((n_timepoints, n_ch) + zyx, np.uint16)
    raw0 = np.zeros_like(raw)
    per_stack = "stack" in cycle.lower()
    for t in range(n_timepoints):
        for c in range(n_ch):
            signal[t, c] = specimen(zyx, rng, peak=peaks[c], background=20.0 if peaks[c] > 0 else 0.0)
        if per_stack:
            seq = signal[t].reshape((-1,) + truth.shape)
        else:
            seq = np.swapaxes(signal[t], 0, 1).reshape((-1,) + truth.shape)
        r, r0 = simulate_frames(seq, truth, rng, return_nocarry=True)
        if per_stack:
            raw[t] = r.reshape((n_ch,) + zyx)
            raw0[t] = r0.reshape((n_ch,) + zyx)
        else:
            raw[t] = np.swapaxes(r.reshape((n_planes, n_ch) + truth.shape), 0, 1)
            raw0[t] = np.swapaxes(r0.reshape((n_planes, n_ch) + truth.shape), 0, 1)
    files: List[List[Path]] = []
    settings = folder / f"{name}_Settings.txt"
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(n_timepoints):
            row = []
            for c, las in enumerate(lasers):
                f = folder / (f"{name}_CamA_ch{c}_stack{t:04d}_{las}nm_{t * 1000:07d}msec_"
                              f"{12345678 + t * 1000:010d}msecAbs.tif")
                _write_stack(f, raw[t, c])
                row.append(f)
            files.append(row)
        write_settings(settings, roi, serial=serial, lasers=lasers, powers=[5.0] * n_ch,
                       n_planes=n_planes, n_stacks=n_timepoints, cycle=cycle)
    return AcquisitionTruth(folder, files, settings, truth, signal, raw, raw0, cycle)
