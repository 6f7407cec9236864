"""``camcorr report``: HTML page, PNG figures and qc.json of a correction run.

:func:`build_report` reads a run folder (its manifest, see :mod:`camcorr.report.manifest`),
computes every QC number it can (and, where the simulator's truth is listed, the errors against
it), draws the figures and writes ``index.html``, ``qc.json`` and ``*.png`` into the report
folder.  The page is static HTML without scripts, so it opens from disk in any browser.
"""
from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tifffile

from .._version import __version__
from ..errors import CamcorrError
from ..io import atomic_write
from ..jsonio import jsonable
from . import figures
from .manifest import read_manifest, resolve

__all__ = ["build_report", "ReportResult", "calibration_pixel_data", "frc_cutoff",
           "carryover_removed"]


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes
    ----------
    index : pathlib.Path
        The HTML page.
    qc : dict
        Every QC number (also in ``qc.json``), by section.
    figures : dict
        Section -> PNG path.
    missing : list of str
        Sections the run did not provide.
    """

    index: Path
    qc: Dict[str, Any]
    figures: Dict[str, Path] = field(default_factory=dict)
    missing: List[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers
def _read(path) -> np.ndarray:
    p = Path(path)
    if p.suffix == ".npy":
        return np.load(p)
    return tifffile.imread(p)


def _existing_file(run, spec) -> Optional[Path]:
    """The manifest entry `spec` resolved against the run folder if it names an existing file,
    else ``None``."""
    p = resolve(run, spec)
    return p if p is not None and p.is_file() else None


def _offset_map(run, spec) -> Any:
    """Offset given as a number, a 2D TIFF, or a FlashParam file (plane 3)."""
    if spec is None:
        return 0.0
    if isinstance(spec, (int, float)):
        return float(spec)
    arr = _read(resolve(run, spec)).astype(np.float64)
    if arr.ndim == 3 and arr.shape[0] >= 3 and "FlashParam" in Path(spec).name:
        return arr[2]
    return arr


def _crop_to(arr, shape):
    """Crop a calibration-frame map to the data frame when the sizes differ (top-left aligned)."""
    if np.ndim(arr) < 2 or tuple(np.shape(arr)[-2:]) == tuple(shape):
        return arr
    return np.asarray(arr)[..., :shape[0], :shape[1]]


def _f(x, nd=4):
    """Plain float for JSON (None for NaN)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if not math.isfinite(v) else round(v, nd) if abs(v) >= 1e-3 or v == 0 else v


def calibration_pairs(calib_dir) -> List[Tuple[Path, Path]]:
    """Bright (``_ch0_``) / dark (``_ch1_``) file pairs of a Flash4.0 calibration folder.

    Files whose names contain ``dark`` (offset frames) and parameter files are ignored, as
    LLSpy does (llspy.readthedocs.io/en/latest/camera.html).
    """
    d = Path(calib_dir)
    pairs = []
    for f in sorted(d.glob("*.tif*")):
        name = f.name
        if "dark" in name.lower() or name.startswith("FlashParam") or "_ch0_" not in name:
            continue
        partner = sorted(d.glob(re.sub(r"_ch0_stack(\d+)_\d+nm", r"_ch1_stack\1_*", name)))
        if not partner:
            partner = [d / name.replace("_ch0_", "_ch1_")]
        if partner[0].is_file():
            pairs.append((f, partner[0]))
    return pairs


def _pixel_values(path, r, c) -> np.ndarray:
    try:
        arr = tifffile.memmap(path, mode="r")
    except Exception:
        arr = tifffile.imread(path)
    arr = arr.reshape((-1,) + arr.shape[-2:]) if arr.ndim > 2 else arr[None]
    return np.array(arr[:, r, c], np.float64)


def calibration_pixel_data(calib_dir, pixel, offset: float) -> Tuple[np.ndarray, np.ndarray]:
    """(x, y) of one pixel over every calibration pair: bright and following dark, minus offset.

    Raises
    ------
    CamcorrError
        When the folder has no bright/dark pairs.
    """
    pairs = calibration_pairs(calib_dir)
    if not pairs:
        raise CamcorrError("no bright/dark pairs in the calibration folder",
                           argument=str(calib_dir), expected="files named *_ch0_* and *_ch1_*",
                           received="none")
    r, c = pixel
    xs, ys = [], []
    for b, d in pairs:
        xs.append(_pixel_values(b, r, c) - offset)
        ys.append(_pixel_values(d, r, c) - offset)
    return np.concatenate(xs), np.concatenate(ys)


def frc_cutoff(frequency, curve, threshold) -> Optional[float]:
    """First frequency where the FRC falls below the threshold curve (None if it never does).

    Linear interpolation between the two samples around the crossing.
    """
    f, c, t = (np.asarray(v, np.float64) for v in (frequency, curve, threshold))
    d = c - t
    below = np.nonzero(d[1:] < 0)[0]
    if below.size == 0:
        return None
    i = below[0] + 1
    if i == 0 or d[i - 1] == d[i]:
        return float(f[i])
    return float(f[i - 1] + (f[i] - f[i - 1]) * d[i - 1] / (d[i - 1] - d[i]))


def carryover_removed(raw, corrected, clean, carryover, offset, noise=None) -> Dict[str, float]:
    """Share of the simulated carryover that a correction removed.

    Compared where the simulated carryover exceeds 3 x the read noise (or 5 ADU): the mean
    excess over the clean signal, before (raw - offset - clean) and after (corrected - clean),
    and the energy (sum of squares of the excess minus the noise variance).
    """
    raw = np.asarray(raw, np.float64) - offset
    cor = np.asarray(corrected, np.float64)
    clean = np.asarray(clean, np.float64)
    co = np.asarray(carryover, np.float64)
    thr = 3 * np.broadcast_to(noise, co.shape) if noise is not None else 5.0
    sel = co > thr
    if not sel.any():
        return {"n_samples": 0}
    before = raw[sel] - clean[sel]
    after = cor[sel] - clean[sel]
    nvar = (np.broadcast_to(noise, co.shape)[sel] ** 2) if noise is not None else 0.0
    e_before = float(np.sum(before ** 2 - nvar))
    e_after = float(np.sum(after ** 2 - nvar))
    return {"n_samples": int(sel.sum()),
            "true_carryover_mean_adu": _f(co[sel].mean()),
            "excess_before_mean_adu": _f(before.mean()),
            "excess_after_mean_adu": _f(after.mean()),
            "removed_mean_percent": _f(100 * (1 - after.mean() / before.mean())),
            "removed_energy_percent": _f(100 * (1 - max(e_after, 0.0) / e_before)
                                         if e_before > 0 else float("nan"))}


# --------------------------------------------------------------------------- sections
def _section_flash(run, m, truth, out, pixel, qc, figs, notes):
    sec = m.get("flash") or {}
    params_path = _existing_file(run, sec.get("params"))
    if params_path is None:
        return False
    P = _read(params_path).astype(np.float64)
    A, B, off, noise = P[0], P[1], P[2], P[3]
    finite = np.isfinite(A) & np.isfinite(B)
    q = {"params_file": params_path.name, "shape": list(A.shape),
         "A_median_adu": _f(np.nanmedian(A)), "A_p99_adu": _f(np.nanpercentile(A, 99)),
         "B_median_per_adu": _f(np.nanmedian(B)), "offset_median_adu": _f(np.nanmedian(off)),
         "noise_median_adu": _f(np.nanmedian(noise)), "nonfinite_fits": int((~finite).sum())}
    for k in ("n_failed", "gof_median"):
        if k in sec:
            q[k] = sec[k]
    tpath = _existing_file(run, truth.get("flash"))
    At = Bt = None
    if tpath is not None:
        T = np.load(tpath)
        At, Bt = T["A"].astype(np.float64), T["B"].astype(np.float64)
        Ot, Nt = T["offset"].astype(np.float64), T["noise"].astype(np.float64)
        # pixels with enough dynamic range: carryover saturates within the calibrated range
        xmax = float(T["x_max"]) if "x_max" in T else float(sec.get("x_max", 5000))
        good = (At > 3 * Nt) & (Bt * xmax > 2)
        q["truth"] = {
            "pixels_compared": int(good.sum()),
            "A_median_rel_error": _f(np.median(np.abs(A[good] - At[good]) / At[good])),
            "B_median_rel_error": _f(np.median(np.abs(B[good] - Bt[good]) / Bt[good])),
            "offset_max_abs_error_adu": _f(np.max(np.abs(off - Ot))),
            "offset_median_abs_error_adu": _f(np.median(np.abs(off - Ot))),
            "noise_median_rel_error": _f(np.median(np.abs(noise - Nt) / Nt)),
        }
    calib = resolve(run, sec.get("calibration_dir"))
    if calib is not None and calib.is_dir() and calibration_pairs(calib):
        if pixel is None:
            pixel = sec.get("pixel")
        if pixel is None:
            score = np.where(finite, A, -np.inf)
            pixel = np.unravel_index(int(np.argmax(score)), A.shape)
        r, c = int(pixel[0]), int(pixel[1])
        if not (0 <= r < A.shape[0] and 0 <= c < A.shape[1]):
            raise CamcorrError("pixel outside the calibrated region", argument="--pixel",
                               expected=f"ROW in [0, {A.shape[0] - 1}] and COL in "
                                        f"[0, {A.shape[1] - 1}] (the parameter file's size)",
                               received=f"{r} {c}",
                               fix="Leave --pixel out to plot the pixel with the largest carryover")
        x, y = calibration_pixel_data(calib, (r, c), off[r, c])
        figs["flash"] = figures.carryover_pixel_figure(
            out / "carryover_pixel.png", x, y, pixel=(r, c), A=A[r, c], B=B[r, c],
            A_true=None if At is None else At[r, c], B_true=None if Bt is None else Bt[r, c],
            noise=noise[r, c])
        q["pixel"] = {"row": r, "col": c, "A_adu": _f(A[r, c]), "B_per_adu": _f(B[r, c]),
                      "pairs": int(x.size)}
    else:
        notes.append("flash: no calibration folder with bright/dark pairs, so no single-pixel plot")
    qc["flash"] = q
    return True


def _section_projections(run, m, truth, out, qc, figs, notes):
    items = m.get("projections") or []
    if not items:
        return False
    qs = []
    for i, it in enumerate(items):
        bpath, apath = _existing_file(run, it.get("before")), _existing_file(run, it.get("after"))
        if bpath is None or apath is None:
            notes.append(f"projections[{i}]: file missing")
            continue
        before = _read(bpath).astype(np.float64)
        after = _read(apath).astype(np.float64)
        off = _crop_to(_offset_map(run, it.get("offset")), before.shape[-2:])
        mip_b = (before.reshape((-1,) + before.shape[-2:]) - off).max(axis=0)
        mip_a = after.reshape((-1,) + after.shape[-2:]).max(axis=0)
        label = it.get("label", f"projection {i + 1}")
        name = f"projection_{i + 1}.png"
        figs[f"projection_{i + 1}"] = figures.projections_figure(
            out / name, mip_b, mip_a, label=label + " (maximum projection over Z, no deskew)",
            title_before=it.get("title_before", "before (raw - offset)"),
            title_after=it.get("title_after", "after"),
            difference=bool(it.get("difference", True)))
        qs.append({"label": label, "mip_before_mean_adu": _f(mip_b.mean()),
                   "mip_after_mean_adu": _f(mip_a.mean()),
                   "mip_before_p99_adu": _f(np.percentile(mip_b, 99)),
                   "mip_after_p99_adu": _f(np.percentile(mip_a, 99))})
    qc["projections"] = qs
    # carryover removal against the simulator's truth
    co = truth.get("carryover") or []
    cq = []
    for it in co:
        paths = {k: _existing_file(run, it.get(k))
                 for k in ("raw", "corrected", "clean", "carryover")}
        if any(p is None for p in paths.values()):
            continue
        arrays = {k: _read(p) for k, p in paths.items()}
        off = _offset_map(run, it.get("offset"))
        noise = it.get("noise")
        noise = _read(resolve(run, noise)) if isinstance(noise, str) else noise
        res = carryover_removed(arrays["raw"], arrays["corrected"], arrays["clean"],
                                arrays["carryover"], off, noise)
        res["label"] = it.get("label", paths["raw"].name)
        cq.append(res)
    if cq:
        qc["carryover_removal"] = cq
    return True


def _section_median(run, m, truth, out, qc, figs, notes):
    sec = m.get("median") or {}
    mpath = _existing_file(run, sec.get("mask"))
    if mpath is None:
        return False
    mask = _read(mpath).astype(bool)
    mask = mask.reshape((-1,) + mask.shape[-2:]).any(axis=0)
    q = {"flagged": int(mask.sum()), "flagged_percent": _f(100 * mask.mean()),
         "pixels": int(mask.size)}
    for k, v in (sec.get("counts") or {}).items():
        q[k] = v
    t = good = None
    tpath = _existing_file(run, truth.get("hot_mask"))
    if tpath is not None:
        levels = _crop_to(_read(tpath), mask.shape)
        # 0 = clean, 1 = noisy but tolerated either way (e.g. 2-5x the median noise), 2 = bad;
        # a boolean mask means bad / clean.
        t = levels >= (2 if levels.max() >= 2 else 1)
        good = levels == 0
        q["truth"] = {"true_bad": int(t.sum()), "tolerated": int((~t & ~good).sum()),
                      "recall_percent": _f(100 * (mask & t).sum() / max(1, t.sum())),
                      "false_alarm_percent_of_good": _f(100 * (mask & good).sum() / max(1, good.sum())),
                      "precision_percent": _f(100 * (mask & t).sum() / max(1, mask.sum()))}
        # per stack (the filter runs on each stack on its own; the union above adds them up)
        rec, fa = [], []
        for sp in sec.get("stack_masks") or []:
            sp = _existing_file(run, sp)
            if sp is None:
                continue
            sm = _read(sp).astype(bool)
            sm = sm.reshape((-1,) + sm.shape[-2:]).any(axis=0)
            rec.append(100 * (sm & t).sum() / max(1, t.sum()))
            fa.append(100 * (sm & good).sum() / max(1, good.sum()))
        if rec:
            q["truth"]["per_stack"] = {
                "stacks": len(rec), "recall_percent_min": _f(min(rec)),
                "false_alarm_percent_of_good_mean": _f(float(np.mean(fa))),
                "false_alarm_percent_of_good_max": _f(max(fa))}
    figs["median"] = figures.hot_pixel_figure(
        out / "hot_pixels.png", mask, truth=t,
        tolerated=None if t is None else (~t & ~good))
    qc["median"] = q
    return True


def _section_gain(run, m, truth, out, qc, figs, notes):
    sec = m.get("gain") or {}
    gpath = _existing_file(run, sec.get("image"))
    if gpath is None:
        return False
    g = _read(gpath).astype(np.float64)
    g = g.reshape((-1,) + g.shape[-2:])[0]
    rep = {}
    rpath = _existing_file(run, sec.get("report"))
    if rpath is not None:
        rep = json.loads(rpath.read_text())
    p2, p97 = np.percentile(g, [2.5, 97.5])
    q = {"std": _f(g.std()), "p2.5": _f(p2), "p97.5": _f(p97), "max": _f(g.max()),
         "ratio_p97.5_p2.5": _f(p97 / p2), "ratio_max_p97.5": _f(g.max() / p97),
         "flags": {"std>0.04": bool(g.std() > 0.04), "p97.5/p2.5>1.15": bool(p97 / p2 > 1.15),
                   "max/p97.5>4.5": bool(g.max() / p97 > 4.5)}}
    ho = rep.get("heldout") if rep else None
    if ho:
        # held-out beside in-sample (camcorr.gain.heldout): estimated on the even frames,
        # evaluated on the odd ones
        q["in_sample_vs_heldout"] = {
            "std in-sample": _f(ho.get("std_in_sample")),
            "std reproduced by held-out frames": _f(ho.get("std_heldout")),
            "R^2 between the halves": _f(ho.get("r2_halves")),
            "gain left in held-out frames (std)": _f(ho.get("residual_std_heldout")),
            "disagree": bool(ho.get("disagree"))}
        if ho.get("disagree"):
            notes.append("gain: " + str(ho.get("note")))
    scales = rep.get("scales") if rep else None
    if scales and scales.get("note"):
        q["scales"] = f"{rep.get('fields', 'same')} fields: {scales['note']}"
    if rep:
        q["engine_report"] = rep
    t = None
    tpath = _existing_file(run, truth.get("gain"))
    if tpath is not None:
        t = _crop_to(_read(tpath).astype(np.float64), g.shape)
        r = np.corrcoef(t.ravel(), g.ravel())[0, 1]
        q["truth"] = {"r2": _f(r * r), "rms_error": _f(np.sqrt(np.mean((g / g.mean() - t / t.mean()) ** 2))),
                      "true_std": _f(t.std())}
    figs["gain"] = figures.gain_figure(out / "gain.png", g, rep or q, truth=t)
    qc["gain"] = q
    return True


def _section_frc(run, m, truth, out, qc, figs, notes):
    sec = m.get("frc") or {}
    cpath = _existing_file(run, sec.get("curves"))
    if cpath is None:
        return False
    d = json.loads(cpath.read_text())
    # our layout {"frequency", "before", "after", "threshold"}; or one curve as written by
    # 'camcorr frc' / FRCResult.save_json ({"frequency_cycles_per_pixel", "frc", "threshold"})
    fkey = "frequency" if "frequency" in d else "frequency_cycles_per_pixel"
    if fkey not in d:
        notes.append(f"frc: {cpath.name} has no frequency axis")
        return False
    f = np.asarray(d[fkey], np.float64)
    curves = {k: np.asarray(d[k], np.float64) for k in ("before", "after") if k in d}
    if not curves and "frc" in d:
        curves = {"FRC": np.asarray(d["frc"], np.float64)}
    thr = np.asarray(d["threshold"], np.float64) if "threshold" in d else None
    q = {}
    for k, c in curves.items():
        q[f"mean_{k}"] = _f(c[1:].mean())
        if thr is not None:
            q[f"cutoff_{k}"] = _f(frc_cutoff(f, c, thr))
            q[f"fraction_above_threshold_{k}"] = _f(np.mean(c[1:] > thr[1:]))
    figs["frc"] = figures.frc_figure(out / "frc.png", f, curves, thr,
                                     title=d.get("title", "Fourier ring correlation of half-set averages"))
    qc["frc"] = q
    return True


def _section_flatfield(run, m, truth, out, qc, figs, notes):
    sec = m.get("flatfield") or {}
    ppath = _existing_file(run, sec.get("profiles"))
    if ppath is None:
        return False
    with np.load(ppath) as z:
        flat = np.asarray(z["flatfield"], np.float64)
        stored = _profiles_meta(z)
    flat = flat.reshape((-1,) + flat.shape[-2:])[0]
    q = {"flatfield_min": _f(flat.min()), "flatfield_max": _f(flat.max()),
         "flatfield_corner_centre": _f(_corner_centre(flat))}
    bpath, apath = _existing_file(run, sec.get("before")), _existing_file(run, sec.get("after"))
    t = None
    tpath = _existing_file(run, truth.get("flatfield"))
    if tpath is not None:
        t = _read(tpath).astype(np.float64)
        t = t / t.mean()
        q["truth"] = {"rms_error_percent": _f(100 * np.sqrt(np.mean((flat / flat.mean() - t) ** 2))),
                      "true_corner_centre": _f(_corner_centre(t))}
    if bpath is not None and apath is not None:
        before, after = _read(bpath).astype(np.float64), _read(apath).astype(np.float64)
        q["corner_centre_before"] = _f(_corner_centre(before))
        q["corner_centre_after"] = _f(_corner_centre(after))
        sepath = _existing_file(run, sec.get("before_standard_error"))
        if sepath is not None:
            se = _read(sepath).astype(np.float64)
            if se.shape == before.shape:
                with np.errstate(divide="ignore", invalid="ignore"):
                    se_after = se * after / np.where(before != 0, before, np.nan)
                q["corner_centre_after_noise_sd"] = _f(_corner_centre_sd(after, se_after))
        figs["flatfield"] = figures.flatfield_figure(out / "flatfield.png", flat, before, after,
                                                     truth=t)
    else:
        notes.append("flatfield: no before/after image, only the profile is summarised")
    for k, v in (sec.get("quality") or {}).items():
        q.setdefault("engine_quality", {})[k] = v
    _estimate_quality(stored, q, notes)
    qc["flatfield"] = q
    return True


def _profiles_meta(z) -> dict:
    """The ``camcorr_meta`` JSON stored in a profiles.npz (empty for BaSiCPy's own files)."""
    if "camcorr_meta" not in z.files:
        return {}
    try:
        return json.loads(str(z["camcorr_meta"]))
    except (TypeError, ValueError):
        return {}


def _estimate_quality(stored: dict, q: dict, notes: list):
    """In-sample and held-out figures of the estimate, side by side, and the over-fitting note."""
    eq = stored.get("quality") or {}
    if eq.get("cv_after") is None:
        return
    keys = ("cv_before", "cv_after", "corner_centre_before", "corner_centre_after")
    q["estimate_in_sample"] = {k: _f(eq.get(k)) for k in keys}
    ho = eq.get("held_out")
    q["estimate_held_out"] = ({k: _f(ho.get(k)) for k in keys} if ho
                              else "not measured: " + str(eq.get("split", "")))
    q["estimate_split"] = eq.get("split")
    q["estimate_overfit"] = bool(eq.get("overfit"))
    meta = stored.get("meta") or {}
    if meta.get("sigma") is not None:
        q["estimate_smoothing"] = {"sigma": meta.get("sigma"), "statistic": meta.get("statistic"),
                                   "chosen_by_held_out_validation":
                                       bool(meta.get("smoothing_chosen"))}
    if eq.get("overfit"):
        notes.append("flatfield: " + str(eq.get("overfit_note")))
    elif ho:
        notes.append("flatfield: in-sample and held-out quality agree (no over-fitting).")


def _boxes(shape):
    """Slices of the four corner boxes and the centre box (1/8 of each side)."""
    h, w = shape
    bh, bw = max(1, h // 8), max(1, w // 8)
    cy, cx = h // 2, w // 2
    corners = [(slice(0, bh), slice(0, bw)), (slice(0, bh), slice(w - bw, w)),
               (slice(h - bh, h), slice(0, bw)), (slice(h - bh, h), slice(w - bw, w))]
    centre = (slice(cy - bh // 2, cy + (bh + 1) // 2), slice(cx - bw // 2, cx + (bw + 1) // 2))
    return corners, centre


def _corner_centre_sd(image, se) -> float:
    """Standard deviation of :func:`_corner_centre` of `image` from independent per-pixel
    standard errors `se` (first-order error propagation): the check's own statistical limit.
    """
    im, se = np.asarray(image, np.float64), np.asarray(se, np.float64)
    corners, centre = _boxes(im.shape)
    c = np.mean([im[b].mean() for b in corners])
    var_c = np.sum([np.sum(se[b] ** 2) / se[b].size ** 2 for b in corners]) / len(corners) ** 2
    z = im[centre].mean()
    var_z = np.sum(se[centre] ** 2) / se[centre].size ** 2
    return float(c / z * np.sqrt(var_c / c ** 2 + var_z / z ** 2))


def _corner_centre(image) -> float:
    """Mean of the four corner boxes / mean of the centre box (boxes 1/8 of the side)."""
    im = np.asarray(image, np.float64)
    if im.ndim > 2:
        im = im.reshape((-1,) + im.shape[-2:]).mean(axis=0)
    h, w = im.shape
    bh, bw = max(1, h // 8), max(1, w // 8)
    corners = [im[:bh, :bw], im[:bh, -bw:], im[-bh:, :bw], im[-bh:, -bw:]]
    cy, cx = h // 2, w // 2
    centre = im[cy - bh // 2:cy + (bh + 1) // 2, cx - bw // 2:cx + (bw + 1) // 2]
    return float(np.mean([c.mean() for c in corners]) / centre.mean())


# --------------------------------------------------------------------------- HTML
_SECTIONS = [
    ("flash", "Flash4.0 carryover calibration",
     "Calibration data of one pixel: intensity of each bright image (x) against the carryover in "
     "the dark image that follows (y), both minus the pixel's offset, with the fitted model "
     "A (1 - exp(-B x)) (as in LLSpy's documentation, Fig. 5)."),
    ("projections", "Maximum projections before and after",
     "Maximum-intensity projections over Z (no deskewing), before and after correction, on one "
     "grey scale (as in LLSpy's documentation, Fig. 6); the right panel shows what was removed."),
    ("median", "Hot and noisy pixels",
     "Pixels flagged by the selective median filter and replaced by the median of their 8 "
     "neighbours (pixels drawn enlarged; the union over all stacks). The filter judges each "
     "pixel's standard deviation over Z against its neighbours', so a noisy pixel under a bright, "
     "Z-varying specimen can go unflagged in that stack."),
    ("gain", "Residual gain",
     "Gain left after the camera's gain reference, estimated blindly from the data (recorded = "
     "ideal x gain), with the three flags of a bad calibration: std > 0.04, p97.5/p2.5 > 1.15, "
     "max/p97.5 > 4.5. Held-out: the gain estimated on the even frames, evaluated on the odd ones "
     "(the std they reproduce beside the in-sample std; a large gap means part of the estimate "
     "is noise)."),
    ("frc", "Fourier ring correlation",
     "FRC between averages of two disjoint halves of the frames, before and after a posteriori "
     "normalisation; above the 3-sigma curve the halves share a pattern (fixed-pattern noise)."),
    ("flatfield", "Flat-field",
     "Estimated flat-field, and the smoothed profile from a corner through the centre to the "
     "opposite corner of an image before and after correction (1 = centre)."),
]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1150px;
color:#222;padding:0 1em}h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}img{max-width:100%;border:1px solid #eee}table{border-collapse:collapse;margin:.6em 0;
font-size:.92em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}th{background:#f5f5f5}
.ok{color:#2a7a2a;font-weight:600}.bad{color:#b22;font-weight:600}.muted{color:#777}
code{background:#f3f3f3;padding:0 .25em}
"""


def _flatten(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _flatten(v, key + ".")
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for i, item in enumerate(v):
                yield from _flatten(item, f"{key}[{i}].")
        else:
            yield key, v


def _table(d) -> str:
    rows = []
    for k, v in _flatten(d):
        if isinstance(v, bool):
            cell = f'<span class="{"bad" if v else "ok"}">{"yes" if v else "no"}</span>'
        elif isinstance(v, float):
            cell = f"{v:.4g}"
        else:
            cell = html.escape(json.dumps(v) if isinstance(v, (list, dict)) else str(v))
        rows.append(f"<tr><td><code>{html.escape(k)}</code></td><td>{cell}</td></tr>")
    return "<table><tr><th>quantity</th><th>value</th></tr>" + "".join(rows) + "</table>"


def _checks_table(checks) -> str:
    if not checks:
        return ""
    rows = []
    for c in checks:
        cls = "ok" if c["pass"] else "bad"
        rows.append(f"<tr><td>{html.escape(c['name'])}</td><td>{c['value']}</td>"
                    f"<td>{html.escape(c['target'])}</td>"
                    f'<td class="{cls}">{"pass" if c["pass"] else "FAIL"}</td></tr>')
    return ("<h2>Against the simulator's truth</h2><table><tr><th>check</th><th>measured</th>"
            "<th>target</th><th></th></tr>" + "".join(rows) + "</table>")


CORNER_CENTRE_TOLERANCE = 0.03
"""Flat-field check: corner/centre after correction within 1 +- this (README tolerance)."""
CORNER_CENTRE_NOISE_SDS = 4.0
"""...or within this many standard deviations of the check image's own noise, if larger."""


def truth_checks(qc: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Pass/fail of the QC numbers against the project's stated tolerances (where truth exists).

    Targets are the project's stated tolerances, as listed in the README (flash: A 5 %, B 10 %, offset
    0.2 ADU, noise 5 %, >= 95 % of the carryover removed; median: >= 99 % of the pixels with 5x
    the median noise found, < 0.1 % of clean pixels flagged; gain: amplitude within 0.8-1.25
    and R^2 >= 0.9 (see below); flat-field:
    <= 2 % RMS, corner/centre 0.97-1.03 after; FRC after normalisation at the noise level).
    """
    out = []

    def add(name, value, target, test):
        if value is None:
            return
        out.append({"name": name, "value": value, "target": target, "pass": bool(test(value))})

    t = qc.get("flash", {}).get("truth", {})
    add("carryover amplitude A, median relative error", t.get("A_median_rel_error"), "< 0.05",
        lambda v: v < 0.05)
    add("carryover rate B, median relative error", t.get("B_median_rel_error"), "< 0.10",
        lambda v: v < 0.10)
    add("offset, median absolute error (ADU)", t.get("offset_median_abs_error_adu"), "< 0.2",
        lambda v: v < 0.2)
    add("read noise, median relative error", t.get("noise_median_rel_error"), "< 0.05",
        lambda v: v < 0.05)
    for c in qc.get("carryover_removal", []):
        add(f"carryover removed, {c.get('label', '')} (% of mean excess)",
            c.get("removed_mean_percent"), ">= 95", lambda v: v >= 95)
    t = qc.get("median", {}).get("truth", {})
    add("pixels with >= 5x the median noise found (%)", t.get("recall_percent"), ">= 99",
        lambda v: v >= 99)
    ps = t.get("per_stack") or {}
    if ps:
        add("clean pixels (< 1.5x the median noise) flagged, mean per stack (%)",
            ps.get("false_alarm_percent_of_good_mean"), "< 0.1", lambda v: v < 0.1)
    else:
        add("clean pixels (< 1.5x the median noise) flagged (%)",
            t.get("false_alarm_percent_of_good"), "< 0.1", lambda v: v < 0.1)
    gq = qc.get("gain", {})
    t = gq.get("truth", {})
    # The demo's gain-check movie shows independent fields, so the gain is estimated at all
    # spatial scales (camcorr.gain.scales): the blind estimate alone saturates near R^2 0.85 on
    # the white column-amplifier drift (it cannot see what is smooth over a few columns).
    add("residual gain R^2 against truth", t.get("r2"), ">= 0.9", lambda v: v >= 0.9)
    if t.get("true_std") and gq.get("std") is not None:
        add("residual gain amplitude: estimated std / true std", gq["std"] / t["true_std"],
            "0.8 - 1.25", lambda v: 0.8 <= v <= 1.25)
    if t.get("true_std") is not None and t["true_std"] > 0.06:
        flags = qc.get("gain", {}).get("flags", {})
        add("drifted gain (true std > 0.06) raises a flag", any(flags.values()), "yes",
            lambda v: v)
    t = qc.get("flatfield", {}).get("truth", {})
    add("flat-field RMS error (%)", t.get("rms_error_percent"), "<= 2", lambda v: v <= 2)
    # 0.97 - 1.03, widened to 4 standard deviations of the check image's own noise when the
    # data cannot resolve 3 % (the tiny demo's 4 x 4-pixel boxes: ~0.6 %, so it stays 3 %)
    fq = qc.get("flatfield", {})
    tol = max(CORNER_CENTRE_TOLERANCE,
              CORNER_CENTRE_NOISE_SDS * float(fq.get("corner_centre_after_noise_sd") or 0.0))
    lo_cc, hi_cc = round(1 - tol, 3), round(1 + tol, 3)
    add("corner/centre ratio after flat-field", fq.get("corner_centre_after"),
        f"{lo_cc:g} - {hi_cc:g}", lambda v: lo_cc <= v <= hi_cc)
    add("FRC above the 3-sigma curve after normalisation (fraction of rings)",
        qc.get("frc", {}).get("fraction_above_threshold_after"), "< 0.1", lambda v: v < 0.1)
    return out


def _html(title, qc, figs, notes, missing, checks, out) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class='muted'>camcorr {html.escape(__version__)} quality report. Every number "
             f"below is also in <a href='qc.json'>qc.json</a>.</p>"]
    if missing:
        parts.append("<p class='muted'>Not in this run: " + html.escape(", ".join(missing)) + ".</p>")
    parts.append(_checks_table(checks))
    for key, head, text in _SECTIONS:
        if key not in qc:
            continue
        parts.append(f"<h2 id='{key}'>{html.escape(head)}</h2><p>{html.escape(text)}</p>")
        for name, path in figs.items():
            if name == key or name.startswith(key.rstrip("s") + "_") or (
                    key == "projections" and name.startswith("projection_")):
                rel = Path(path).name
                parts.append(f"<p><img src='{html.escape(rel)}' alt='{html.escape(head)}'></p>")
        parts.append(_table({key: qc[key]}))
        if key == "projections" and "carryover_removal" in qc:
            parts.append(_table({"carryover_removal": qc["carryover_removal"]}))
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                     + "</ul>")
    extra = {k: v for k, v in qc.items() if k not in dict((s[0], 0) for s in _SECTIONS)
             and k not in ("carryover_removal", "checks")}
    if extra:
        parts.append("<h2>Run</h2>" + _table(extra))
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(run_dir, out_dir=None, *, pixel=None, title: Optional[str] = None) -> ReportResult:
    """Write ``index.html``, the PNG figures and ``qc.json`` of a run.

    Parameters
    ----------
    run_dir : path
        Run folder (with ``camcorr_run.json``; see :mod:`camcorr.report.manifest`).
    out_dir : path, optional
        Report folder; default ``run_dir/report``.
    pixel : (int, int), optional
        Pixel of the carryover plot (default: the manifest's, else the largest fitted A).

    Returns
    -------
    ReportResult

    Raises
    ------
    CamcorrError
        The run folder does not exist, its manifest is invalid, or it lists none of the
        sections the report knows.
    """
    run = Path(run_dir)
    m = read_manifest(run)
    out = Path(out_dir) if out_dir is not None else run / "report"
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _build(run, m, out, pixel, title)
    except BaseException:
        if created:  # leave nothing behind: an empty report folder made by this call goes
            try:
                out.rmdir()
            except OSError:
                pass
        raise


def _build(run: Path, m: Dict, out: Path, pixel, title) -> ReportResult:
    truth = m.get("truth") or {}
    qc: Dict[str, Any] = {}
    figs: Dict[str, Path] = {}
    notes: List[str] = []
    present = {
        "flash": _section_flash(run, m, truth, out, pixel, qc, figs, notes),
        "projections": _section_projections(run, m, truth, out, qc, figs, notes),
        "median": _section_median(run, m, truth, out, qc, figs, notes),
        "gain": _section_gain(run, m, truth, out, qc, figs, notes),
        "frc": _section_frc(run, m, truth, out, qc, figs, notes),
        "flatfield": _section_flatfield(run, m, truth, out, qc, figs, notes),
    }
    missing = [k for k, v in present.items() if not v]
    if not any(present.values()):
        raise CamcorrError("nothing to report in this folder", argument=str(run),
                           expected="a run folder with camcorr_run.json or known outputs "
                                    "(FlashParam_*.tif, *mask*.tif, gain.tif, frc.json, profiles.npz)",
                           received="none of them",
                           fix="Run 'camcorr demo' to see an example run folder")
    if m.get("qc"):
        qc["run"] = m["qc"]
    checks = truth_checks(qc)
    if checks:
        qc["checks"] = checks
    page_title = title or m.get("title") or f"camcorr report: {run.name}"
    text = json.dumps(jsonable(qc), indent=2, default=str)
    atomic_write(out / "qc.json", lambda tmp: Path(tmp).write_text(text))
    page = _html(page_title, qc, figs, notes, missing, checks, out)
    index = atomic_write(out / "index.html", lambda tmp: Path(tmp).write_text(page))
    return ReportResult(index=index, qc=qc, figures=figs, missing=missing)
