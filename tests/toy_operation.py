"""A stand-in operation for the Fiji bridge tests (not a user command; not shipped).

``toy-scale`` multiplies or offsets an image, with every parameter kind a Fiji dialog maps
(number with limits, choice, boolean, optional file).  ``python -m toy_operation ARGS`` (with
``tests/`` on ``PYTHONPATH``) and :func:`main` are the ``camcorr`` command line given a registry
holding only this operation, so the Java tests can run an installed macro end to end.
"""
from __future__ import annotations

import sys

import numpy as np

from camcorr.errors import CamcorrError
from camcorr.operations import Operation, Param

TOY = Operation(
    name="toy-scale",
    title="Toy Scale",
    command=("toy", "scale"),
    summary="Scale an image (test stand-in).",
    params=(
        Param("image", "image", required=True, label="Image", help="Image to scale."),
        Param("factor", "float", default=2.0, minval=0.0, maxval=100.0, unit="x", cli="--factor",
              label="Factor", help="Multiplier."),
        Param("mode", "choice", default="multiply", choices=("multiply", "add"), cli="--mode",
              label="Mode", help="Multiply by or add the factor."),
        Param("clip", "bool", default=True, cli="--clip", label="Clip",
              help="Clip to the input dtype range."),
        Param("offset_file", "file", default=None, cli="--offset-file", label="Offset file",
              help="Optional TIFF subtracted first."),
        Param("output", "output_file", required=True, cli="--output", short="-o",
              frontends=("cli",), help="Output TIFF."),
    ),
    runner="toy_operation:run",
)


def scale(image: np.ndarray, factor: float, mode: str, clip: bool, offset=None) -> np.ndarray:
    """The toy engine: (image - offset) * factor or + factor, float32 (clipped to the input
    dtype's range and cast back when `clip`)."""
    out = image.astype(np.float32)
    if offset is not None:
        out = out - offset.astype(np.float32)
    out = out * np.float32(factor) if mode == "multiply" else out + np.float32(factor)
    if clip and image.dtype.kind == "u":
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max).astype(image.dtype)
    return out


def run(values) -> int:
    from camcorr.io import read_image, write_tiff

    image = read_image(values["image"], argument="IMAGE")
    offset = None
    if values.get("offset_file"):
        offset = read_image(values["offset_file"], argument="--offset-file")
        if offset.shape != image.shape[-2:] and offset.shape != image.shape:
            raise CamcorrError("offset file has the wrong shape", argument="--offset-file",
                               expected=f"shape {image.shape[-2:]}", received=f"{offset.shape}")
    write_tiff(values["output"], scale(image, values["factor"], values["mode"], values["clip"],
                                       offset), inputs=[values["image"]])
    return 0


def main(argv=None) -> int:
    from fiji_bridge.macro_entry import run as macro_run

    return macro_run(sys.argv[1:] if argv is None else argv, operations={TOY.name: TOY})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
