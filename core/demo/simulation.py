"""Simulated lattice light-sheet acquisition of ``camcorr demo`` (known truth everywhere)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import tifffile

from ..errors import CamcorrError

__all__ = ["simulate", "SIZES"]


#: Demo sizes.  ROIs are (left, top, right, bottom) on the simulated sensor; an image has
#: right-left+1 rows and bottom-top+1 columns (rotated camera, as LLS data).
SIZES: Dict[str, Dict[str, Any]] = {
    "small": dict(calib_roi=(1001, 1001, 1128, 1128), calib_planes=20, n_dark=4, dark_planes=100,
                  roi=(1009, 1011, 1120, 1106), n_z=48, n_t=2, z_levels=(9, 38), bead_z=(12, 36),
                  n_beads=(40, 30), gain_frames=100),
    "tiny": dict(calib_roi=(1001, 1011, 1048, 1050), calib_planes=8, n_dark=3, dark_planes=60,
                 roi=(1005, 1015, 1040, 1046), n_z=40, n_t=1, z_levels=(11, 28), bead_z=(13, 27),
                 n_beads=(12, 8), gain_frames=100),
}
LASERS = (488, 642)
PEAKS = (3000.0, 600.0)        # bead peak signal per channel, ADU above offset
BACKGROUND = (150.0, 150.0)    # fluorescent background per channel, ADU above offset
SERIAL = "100740"
NAME = "cell1"


# --------------------------------------------------------------------------- simulation
def _read_noise_map(shape, rng) -> (np.ndarray, str):
    """Read-noise std map (ADU): a crop of the real sCMOS variance map, or a synthetic one."""
    from ..simulate import noise as snoise

    try:
        var = snoise.load_variance_map()
        h, w = shape
        y0, x0 = 100, 150
        var = var[y0:y0 + h, x0:x0 + w]
        if var.shape == tuple(shape):
            return np.sqrt(var).astype(np.float32), "real sCMOS variance map (crop)"
    except CamcorrError:
        pass
    sigma = 1.6 * np.exp(0.25 * rng.standard_normal(shape))
    hot = rng.random(shape) < 0.004
    sigma[hot] *= rng.uniform(6, 20, hot.sum())
    return sigma.astype(np.float32), "synthetic heavy-tailed read noise"


def _beads(shape_zyx, z_range, n, peak, rng, sigma=1.6):
    nz, ny, nx = shape_zyx
    vol = np.zeros(shape_zyx, np.float64)
    z, y, x = np.ogrid[:nz, :ny, :nx]
    for _ in range(n):
        cz = rng.uniform(z_range[0] + 1.5, z_range[1] - 1.5)
        cy, cx = rng.uniform(2, ny - 2), rng.uniform(2, nx - 2)
        amp = peak * rng.uniform(0.4, 1.0)
        vol += amp * np.exp(-(((z - cz) / (sigma * 1.6)) ** 2 + ((y - cy) / sigma) ** 2
                              + ((x - cx) / sigma) ** 2) / 2)
    return vol


def _channel_file(folder: Path, c: int, t: int) -> Path:
    return folder / (f"{NAME}_CamA_ch{c}_stack{t:04d}_{LASERS[c]}nm_{t * 1000:07d}msec_"
                     f"{12345678 + t * 1000:010d}msecAbs.tif")


def simulate(out: Path, size: str, seed: int, quiet: bool = False) -> Dict[str, Any]:
    """Write the calibration folder, the raw acquisition, the gain movie and the truth."""
    from ..simulate import camera as scam
    from ..simulate import lls
    from ..simulate import noise as snoise
    from ..simulate import tiles as stiles

    cfg = SIZES[size]
    rng = np.random.default_rng(seed)
    calib = lls.write_calibration_folder(out / "calibration", roi=cfg["calib_roi"], seed=seed,
                                         n_planes=cfg["calib_planes"], n_dark_files=cfg["n_dark"],
                                         dark_planes=cfg["dark_planes"], serial=SERIAL)
    cam = lls.sensor_maps(cfg["roi"], seed=seed, serial=SERIAL)
    shape = cam.shape
    noise, noise_source = _read_noise_map(shape, rng)
    cam.noise = noise
    flat = stiles.make_flatfield(shape)
    flat = np.asarray(flat, np.float64) / np.mean(flat)
    n_z, n_t = cfg["n_z"], cfg["n_t"]
    raw_dir = out / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    truth_dir = out / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    files = []
    raw0_ch1 = raw_ch1 = None
    # RTS (random telegraph) pixels: large two-level read-noise jumps, a camera property
    n_rts = max(4, int(round(0.003 * noise.size)))
    rts_idx = rng.choice(noise.size, n_rts, replace=False)
    rts_amp = rng.uniform(150.0, 400.0, n_rts)
    rts_var = np.zeros(noise.size)
    for t in range(n_t):
        sig = []
        for c in range(2):
            vol = BACKGROUND[c] + _beads((n_z,) + shape, cfg["bead_z"], cfg["n_beads"][c],
                                         PEAKS[c], rng)
            sig.append(vol * flat[None])
        seq = np.stack(sig, axis=1).reshape((-1,) + shape)  # ch0z0, ch1z0, ch0z1, ... ('per Z')
        raw, raw0 = lls.simulate_frames(seq, cam, rng, return_nocarry=True)
        tele = snoise.telegraph_noise(seq.shape[0], n_rts, amplitude=rts_amp, p_switch=0.5,
                                      rng=rng)
        rts_var[rts_idx] += tele.var(axis=0) / n_t
        for r in (raw, raw0):
            flat_view = r.reshape(r.shape[0], -1)
            flat_view[:, rts_idx] = np.clip(flat_view[:, rts_idx] + np.rint(tele), 0, 65535)
        raw = raw.reshape((n_z, 2) + shape)
        raw0 = raw0.reshape((n_z, 2) + shape)
        row = []
        for c in range(2):
            f = _channel_file(raw_dir, c, t)
            tifffile.imwrite(f, np.ascontiguousarray(raw[:, c]), imagej=True,
                             metadata={"axes": "ZYX"})
            row.append(f)
        files.append(row)
        if t == 0:
            raw_ch1, raw0_ch1 = raw[:, 1].copy(), raw0[:, 1].copy()
    lls.write_settings(raw_dir / f"{NAME}_Settings.txt", cfg["roi"], serial=SERIAL, lasers=LASERS,
                       powers=[5.0, 5.0], n_planes=n_z, n_stacks=n_t, cycle="per Z")
    # truth files for the report
    T = calib.truth
    np.savez(truth_dir / "flash_truth.npz", A=T.A, B=T.B, offset=T.offset, noise=T.noise,
             x_max=max(calib.bright_levels))
    off = cam.offset.astype(np.float32)
    tifffile.imwrite(truth_dir / "clean_ch1_t0.tif", (raw0_ch1.astype(np.float32) - off))
    tifffile.imwrite(truth_dir / "carryover_ch1_t0.tif",
                     raw_ch1.astype(np.float32) - raw0_ch1.astype(np.float32))
    # noisy pixels: total noise on the background (read + RTS + shot) >= 5 x the median
    total = np.sqrt(noise.astype(np.float64) ** 2 + rts_var.reshape(shape)
                    + BACKGROUND[1] * flat / lls.E_PER_ADU)
    ratio = total / np.median(total)
    hot = np.where(ratio >= 5, 2, np.where(ratio >= 1.5, 1, 0)).astype(np.uint8)
    tifffile.imwrite(truth_dir / "hot_mask.tif", hot)  # 2: >= 5x median noise, 1: 1.5-5x, 0: clean
    tifffile.imwrite(truth_dir / "flatfield.tif", flat.astype(np.float32))
    # the camera's drifted residual gain, seen in a movie of a weakly textured specimen (10 %
    # contrast) that is new in every frame (independent fields, so the gain is estimated at all
    # spatial scales); drift of the per-column amplifiers of an sCMOS (readout stripes), some row
    # and pixel terms
    gm = scam.gain_map(shape, column_std=0.06, row_std=0.02, smooth_amplitude=0.0,
                       pixel_std=0.01, rng=rng)
    tifffile.imwrite(truth_dir / "gain.tif", gm.gain.astype(np.float32))
    movie = scam.integrating_movie(gm.gain, cfg["gain_frames"], photons_per_px=2000.0,
                                   adu_per_e=1 / lls.E_PER_ADU, read_noise_adu=1.6, offset=100.0,
                                   contrast=0.1, motion="independent", rng=rng)
    gdir = out / "gain"
    gdir.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(gdir / "gain_check_movie.tif", movie.frames, imagej=True,
                     metadata={"axes": "TYX"})
    return {"calib": calib, "files": files, "cam": cam, "noise_source": noise_source,
            "flat": flat, "hot": hot, "movie_offset": 100.0, "gain_truth": gm.gain,
            "movie_params": movie.params}


# --------------------------------------------------------------------------- steps
