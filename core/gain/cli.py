"""Command-line runner of ``camcorr gain estimate`` and movie readers (TIFF, MRC)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import CamcorrError
from ..io import atomic_write, ensure_not_input, iter_planes, read_image, write_tiff
from ..operations import RunResult
from ._kernels import median
from .estimate import estimate_gain, parse_sigmas, prepare_gain_ref
from .operations import GAIN_ESTIMATE

__all__ = ["run_estimate", "parse_sigmas", "iter_movie_frames", "read_gain_ref", "summary_lines",
           "heldout_numbers"]

MRC_SUFFIXES = (".mrc", ".mrcs", ".st", ".map")


def _is_mrc(path) -> bool:
    return str(path).lower().endswith(MRC_SUFFIXES)


def _iter_mrc(path, chunk: int) -> Iterator[np.ndarray]:
    try:
        import mrcfile
    except ImportError:
        raise CamcorrError("MRC support is not installed", argument="MOVIE", received=str(path),
                           expected="a TIFF movie, or mrcfile installed",
                           fix="pip install 'camcorr[mrc]' (or pip install mrcfile)") from None
    p = Path(path)
    if not p.is_file():
        raise CamcorrError("file not found", argument="MOVIE", expected="an existing movie file",
                           received=str(p))
    try:
        mrc = mrcfile.mmap(str(p), mode="r", permissive=True)
    except Exception as exc:
        raise CamcorrError("cannot read as MRC", argument="MOVIE", expected="an MRC movie",
                           received=f"{p} ({type(exc).__name__}: {exc})") from None
    with mrc:
        data = mrc.data
        if data is None:
            raise CamcorrError("MRC file has no data", argument="MOVIE", received=str(p))
        planes = data.reshape((-1,) + data.shape[-2:]) if data.ndim > 2 else data[None]
        for i in range(0, planes.shape[0], chunk):
            yield np.array(planes[i:i + chunk])


def iter_movie_frames(paths: Sequence, *, chunk: int = 4) -> Iterator[np.ndarray]:
    """Yield blocks of frames (n, Y, X) from TIFF and MRC movies, one block in memory at a time."""
    for path in paths:
        if _is_mrc(path):
            yield from _iter_mrc(path, chunk)
        else:
            yield from iter_planes(path, chunk=chunk, argument="MOVIE")


def read_gain_ref(path) -> np.ndarray:
    """Read a gain reference (TIFF or MRC, one 2D image)."""
    if _is_mrc(path):
        blocks = list(_iter_mrc(path, 2))
        data = np.concatenate(blocks) if blocks else np.zeros((0, 0, 0))
    else:
        data = read_image(path, argument="--gain-ref")
    data = np.asarray(data)
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise CamcorrError("gain reference is not one 2D image", argument="--gain-ref",
                           expected="a single (Y, X) image", received=f"shape {data.shape}")
    return data


def check_offset_below_data(offset: float, movies: Sequence, *, argument: str = "--offset"):
    """Refuse an offset at or above the typical level of the first frame (before any work).

    Subtracting an offset above the data leaves mostly negative or zero signal: the gain
    estimate would be meaningless (and used to report a flat gain without a flag).

    Raises
    ------
    CamcorrError
        If `offset` is at or above the median of the first frame (one frame is read: its median
        is the data's level to well within what the check needs, and reading the first block of
        four frames cost a 4096^2 run ~0.4 s of serial start-up).
    """
    if not offset:
        return
    first = next(iter_movie_frames(list(movies)[:1], chunk=1), None)
    if first is None or first.size == 0:
        return
    level = median(first)     # np.median's value, by a parallel selection
    if offset >= level:
        raise CamcorrError("offset at or above the data", argument=argument,
                           expected=f"an offset below the data (median of the first frame: "
                                    f"{level:.6g} ADU)",
                           received=f"{offset:.6g} ADU",
                           fix="Give the camera's dark level (e.g. from 'camcorr parallel dark' "
                               "or the camera sheet), usually 100 ADU for sCMOS cameras")


def summary_lines(rep: dict) -> list:
    """Lines of the report a user reads first: held-out beside in-sample, and the scales."""
    lines = []
    ho = rep.get("heldout") or {}
    if ho:
        lines.append(f"in-sample std {ho['std_in_sample']:.4f}; held-out (estimate on even "
                     f"frames, evaluate on odd): std reproduced {ho['std_heldout']:.4f}, R^2 "
                     f"between halves {ho['r2_halves']:.3f}, gain left in held-out frames "
                     f"{ho['residual_std_heldout']:.4f}")
        if ho.get("disagree"):
            lines.append("WARNING: " + ho["note"])
    sc = rep.get("scales") or {}
    if sc.get("note"):
        lines.append(f"scales ({rep.get('fields', 'same')} fields): {sc['note']}")
    return lines


def heldout_numbers(rep: dict) -> dict:
    """Held-out figures (``heldout_*``) and the all-scales limit of a gain report, flat.

    The keys a front end shows beside the in-sample std (camcorr.gain.heldout): the std that
    independent frames reproduce, R^2 between the halves, the gain one half leaves in the
    other, the estimate's noise, whether in-sample and held-out disagree; with independent
    fields also the R^2 to expect against the true gain and the ``noise_limited`` flag.
    """
    out = {}
    ho = rep.get("heldout") or {}
    for k in ("std_in_sample", "std_heldout", "r2_halves", "reliability",
              "residual_std_heldout", "error_std", "disagree"):
        if k in ho:
            out[f"heldout_{k}"] = ho[k]
    sc = rep.get("scales") or {}
    for k in ("r2_expected", "noise_limited"):
        if k in sc:
            out[k] = sc[k]
    return out


def run_estimate(values: dict) -> RunResult:
    """Runner of ``camcorr gain estimate`` (values already validated by the Operation)."""
    run = RunResult()
    movies = [str(m) for m in values["movies"]]
    output = values["output"]
    report_path = values.get("report")
    inputs = list(movies)
    ref = None
    if values.get("gain_ref"):
        inputs.append(values["gain_ref"])
        ref = read_gain_ref(values["gain_ref"])
        prepare_gain_ref(ref, orientation=values["ref_orientation"], argument="--gain-ref")
    ensure_not_input(output, inputs, argument="--output")
    if report_path:
        ensure_not_input(report_path, inputs, argument="--report")
    kwargs = GAIN_ESTIMATE.engine_kwargs(values, argument="--sigmas", gain_ref=ref)
    check_offset_below_data(values["offset"], movies)
    verbose = sys.stderr.isatty()

    def progress(it, n):
        if verbose:
            print(f"\riteration {it + 1}: {n} frames", end="", file=sys.stderr, flush=True)

    result = estimate_gain(
        lambda: iter_movie_frames(movies), progress=progress, **kwargs)
    if verbose:
        print(file=sys.stderr)
    write_tiff(output, result.gain.astype(np.float32), inputs=inputs,
               extra_metadata={"camcorr": "gain-estimate", "mode": result.mode,
                               "orientation": "recorded = ideal x gain"})
    rep = dict(result.report)
    rep.update({"inputs": movies, "gain_ref": values.get("gain_ref"),
                "ref_orientation": values.get("ref_orientation"), "output": str(output),
                "changes": [float(c) for c in result.changes],
                "orientation": "recorded = ideal x gain (divide frames by the gain to correct)"})
    if report_path:
        text = json.dumps(rep, indent=2)

        def _write(tmp):
            Path(tmp).write_text(text + "\n")

        atomic_write(report_path, _write, suffix=".json")
    flags = [k[5:] for k in ("flag_std", "flag_percentile_ratio", "flag_max_ratio") if rep[k]]
    floor = rep.get("noise_floor")
    run.arrays["gain"] = result.gain
    run.numbers.update({k: rep[k] for k in ("std", "p2_5", "p97_5", "max") if k in rep})
    run.numbers.update(heldout_numbers(rep))
    run.say(f"{result.mode} gain from {result.n_frames} frames, {result.iterations} iteration(s): "
            f"std {rep['std']:.4f}, p2.5 {rep['p2_5']:.4f}, p97.5 {rep['p97_5']:.4f}, "
            f"max {rep['max']:.4f}; noise floor {floor if floor is None else round(floor, 4)}; "
            f"flags: {', '.join(flags) if flags else 'none'}"
            + (" (within noise)" if flags and rep.get("flags_within_noise") else ""))
    for line in summary_lines(rep):
        run.say(line)
    run.outputs += [str(output)] + ([str(report_path)] if report_path else [])
    run.say(f"wrote {output}" + (f" and {report_path}" if report_path else ""))
    return run
