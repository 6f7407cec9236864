"""File-to-file Flash4.0 carryover correction in blocks of planes (memory bounded).

The correction of a camera frame needs the frame itself and the raw frame the camera took just
before it (:func:`previous_frames`).  Each output file is written block by block: the block's
planes and their previous frames are read (each plane once), corrected with the kernel
:func:`~camcorr.flash.correct_interleaved` uses, and appended to the atomic output
(:mod:`camcorr.streaming`).  The result is bit-identical to reading the files whole and calling
:func:`~camcorr.flash.correct_interleaved`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from ..errors import CamcorrError, check_range
from ..streaming import PlaneReader, _runs, blocks, planes_per_block, write_planes
from .correct import _check_params, _check_stack, _is_per_stack, _out_dtype, _run
from .params import FlashParams

__all__ = ["previous_frames", "hyperstack_previous_frames", "correct_files"]


def previous_frames(n_channels: int, n_planes: int, cycle: str = "per Z") -> np.ndarray:
    """Index of the raw frame acquired just before each (channel, plane), or -1.

    Frames are numbered ``c * n_planes + z`` (channel stacks one after the other).

    Parameters
    ----------
    n_channels, n_planes : int
        Channels of one timepoint and planes per channel.
    cycle : {'per Z', 'per stack'}
        Laser cycling: ch0 z0, ch1 z0, ..., ch0 z1 ('per Z') or ch0 z0..zN, ch1 z0, ...

    Returns
    -------
    ndarray of int64, shape (n_channels, n_planes)
        -1 for the first frame of the timepoint (offset subtraction only).
    """
    c = np.arange(n_channels)[:, None]
    z = np.arange(n_planes)[None, :]
    if _is_per_stack(cycle):
        prev = np.where(z > 0, c * n_planes + z - 1, (c - 1) * n_planes + n_planes - 1)
        prev = np.where((z == 0) & (c == 0), -1, prev)
    else:
        prev = np.where(c > 0, (c - 1) * n_planes + z, (n_channels - 1) * n_planes + z - 1)
        prev = np.where((c == 0) & (z == 0), -1, prev)
    return np.broadcast_to(prev, (n_channels, n_planes)).astype(np.int64)


def hyperstack_previous_frames(shape: Sequence[int], axes: str, cycle: str = "per Z"
                               ) -> np.ndarray:
    """Previous-frame index of every plane of an ImageJ hyperstack, in storage order.

    Channels C of one timepoint are interleaved as
    :func:`~camcorr.flash.cli.hyperstack_to_tczyx` reads them (each timepoint on its own).

    Returns
    -------
    ndarray of int64, shape (n_planes,)
        Flat index (storage order) of the previous raw frame of each plane, -1 for none.
    """
    from .cli import hyperstack_to_tczyx

    lead = tuple(int(s) for s in shape[:-2])
    n = int(np.prod(lead)) if lead else 1
    flat = np.arange(n, dtype=np.int64).reshape(lead + (1, 1))
    tczyx, _ = hyperstack_to_tczyx(flat, axes)
    nt, nc, nz = tczyx.shape[:3]
    idx = tczyx[..., 0, 0].reshape(nt, nc * nz)         # (T, C*Z) flat index of (t, c, z)
    local = previous_frames(nc, nz, cycle).ravel()       # index into the C*Z frames, or -1
    prev = np.full(n, -1, np.int64)
    for t in range(nt):
        has = local >= 0
        prev[idx[t][has]] = idx[t][local[has]]
    return prev


class _Frames:
    """Planes of several files numbered one file after the other."""

    def __init__(self, readers: Sequence[PlaneReader]):
        self.readers = list(readers)
        self.starts = np.cumsum([0] + [r.n_planes for r in self.readers])

    def read_unique(self, indices: np.ndarray):
        uniq, position = np.unique(np.asarray(indices, np.int64), return_inverse=True)
        r0 = self.readers[0]
        out = np.empty((uniq.size,) + r0.plane_shape, r0.dtype)
        for k, reader in enumerate(self.readers):
            lo, hi = np.searchsorted(uniq, [self.starts[k], self.starts[k + 1]])
            # uniq is sorted and unique: read each contiguous run straight into its rows
            for pos, first, stop in _runs(uniq[lo:hi] - self.starts[k]):
                reader.read(first, stop, out[lo + pos:lo + pos + stop - first])
        return out, position.astype(np.int64).ravel()


def _corrected_blocks(frames: _Frames, prev: np.ndarray, start: int, stop: int, block: int,
                      params: FlashParams, dampening: float, out_dtype, backend: str):
    for i0, i1 in blocks(stop - start, block):
        cur_idx = np.arange(start + i0, start + i1, dtype=np.int64)
        p = prev[cur_idx]
        has = p >= 0
        buf, pos = frames.read_unique(np.concatenate([cur_idx, p[has]]))
        first = int(pos[0])
        cur = buf[first:first + cur_idx.size]            # cur rows are consecutive in buf
        local = np.full(cur_idx.size, -1, np.int64)
        local[has] = pos[cur_idx.size:]
        out = np.empty(cur.shape, out_dtype)
        _run(cur, buf, local, params, dampening, out, backend)
        del buf, cur
        yield out
        del out  # one block in memory at a time


def correct_files(files: Sequence[Path], outputs: Sequence[Path], params: FlashParams, *,
                  prepare: Callable[[tuple], FlashParams], dampening: float = 1.0,
                  cycle: str = "per Z", dtype="keep", memory: int = 1 << 30,
                  inputs: Sequence[Path] = (), backend: str = "numba",
                  on_single_channel: Optional[Callable[[], None]] = None) -> List[Path]:
    """Correct the channel stacks of one timepoint (or one hyperstack) file to file.

    Parameters
    ----------
    files : sequence of path
        One ImageJ hyperstack (axes with C and/or T), or the (Z, Y, X) channel stacks of one
        timepoint in acquisition order (a 2D file is one plane).
    outputs : sequence of path
        One output per file.
    params : FlashParams
        Parameters as read; `prepare` cuts them to the images' (Y, X).
    prepare : callable
        ``prepare((Y, X)) -> FlashParams`` (ROI cut and checks of the command line).
    dampening, cycle, dtype, backend
        As in :func:`~camcorr.flash.correct_interleaved`.
    memory : int
        Budget in bytes for the blocks (input planes, their previous frames and the output).
    inputs : sequence of path
        Files never to overwrite.
    on_single_channel : callable, optional
        Called when the data are a single channel (for the command line's note).

    Returns
    -------
    list of pathlib.Path
        Files written.

    Raises
    ------
    CamcorrError
        As :func:`~camcorr.flash.correct_interleaved` and the command line; the outputs of an
        interrupted or failed run are never left under their final names.
    """
    check_range(dampening, "dampening", low=0.0, high=2.0)
    readers = [PlaneReader(f, argument="images") for f in files]
    try:
        infos = [r.info for r in readers]
        first = infos[0]
        hyper = any(("C" in i.axes.upper() or "T" in i.axes.upper()) for i in infos)
        if hyper:
            if len(files) > 1:
                bad = next(i for i in infos if "C" in i.axes.upper() or "T" in i.axes.upper())
                raise CamcorrError("a multi-channel or time-lapse hyperstack among other stacks",
                                   argument="images",
                                   expected="either one hyperstack (axes with C and/or T) or "
                                            "single-channel (Z, Y, X) stacks, one per channel",
                                   received=f"axes {bad.axes!r} in {bad.path} among "
                                            f"{len(files)} files",
                                   fix="Give the hyperstack alone")
            prev = hyperstack_previous_frames(first.shape, first.axes, cycle)
            from .cli import hyperstack_to_tczyx
            n_channels = hyperstack_to_tczyx(
                np.empty(tuple(first.shape[:-2]) + (1, 1), np.uint8), first.axes)[0].shape[1]
            out_shapes = [first.shape]
            out_kwargs = [first.write_kwargs()]
        else:
            for f, i in zip(files, infos):
                if len(i.shape) not in (2, 3):
                    raise CamcorrError("not a (Z, Y, X) stack", argument="images",
                                       expected="3D stacks, one per channel",
                                       received=f"shape {i.shape} in {f}")
            shapes = [(r.n_planes,) + r.plane_shape for r in readers]
            for k, (s, r) in enumerate(zip(shapes, readers)):
                if s != shapes[0] or r.dtype != readers[0].dtype:
                    raise CamcorrError("channel stacks differ", argument=f"stack {k}",
                                       expected=f"shape {shapes[0]} and dtype "
                                                f"{readers[0].dtype} like stack 0",
                                       received=f"shape {s}, dtype {r.dtype}",
                                       fix="Pass the channels of one timepoint, all of the "
                                           "same size")
            n_channels = len(files)
            prev = previous_frames(n_channels, shapes[0][0], cycle).ravel()
            out_shapes = shapes
            out_kwargs = []
            for i, s in zip(infos, shapes):
                kw = i.write_kwargs()
                if tuple(s) != tuple(i.shape):
                    kw.pop("axes", None)
                out_kwargs.append(kw)
        if n_channels == 1 and on_single_channel is not None:
            on_single_channel()
        _check_stack(np.empty((0, 0, 0), readers[0].dtype), "stack 0")
        cut = prepare(tuple(readers[0].plane_shape))
        _check_params(cut, readers[0].plane_shape)
        out_dt = _out_dtype(readers[0].dtype, dtype)
        frames = _Frames(readers)
        plane_px = int(np.prod(readers[0].plane_shape))
        # per pixel of a block: its planes and their previous frames (input), the output
        bpp = 2 * readers[0].dtype.itemsize + out_dt.itemsize
        block = planes_per_block(memory, plane_px, bpp, fixed_bytes=3 * 4 * plane_px)
        written = []
        for k, (out, shape, kw) in enumerate(zip(outputs, out_shapes, out_kwargs)):
            start, stop = int(frames.starts[k]), int(frames.starts[k + 1])
            gen = _corrected_blocks(frames, prev, start, stop, block, cut, dampening, out_dt,
                                    backend)
            written.append(write_planes(out, shape, out_dt, gen, inputs=inputs,
                                        argument="--output", **kw))
        return written
    finally:
        for r in readers:
            r.close()
