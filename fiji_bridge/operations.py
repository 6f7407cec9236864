"""Command-line operations contributed by the Fiji bridge (``camcorr fiji ...``)."""
from camcorr.operations import Operation, Param

_FIJI_DIR = Param(
    "fiji_dir", "folder", required=True, label="Fiji folder", metavar="FIJI_DIR",
    help="The Fiji.app folder (or a plain ImageJ 1.x folder with plugins/ beside ij.jar).",
    frontends=("cli",))

OPERATIONS = [
    Operation(
        name="fiji-install",
        title="Install Fiji Commands",
        command=("fiji", "install"),
        summary="Add the Camera Corrections commands to Fiji's Plugins menu.",
        description=(
            "Writes one ImageJ macro per camcorr operation to FIJI_DIR/scripts/Plugins/Camera "
            "Corrections/. The macros "
            "run the camcorr command line of PYTHON, so install camcorr in that Python first. "
            "Running it again updates the commands; restart Fiji afterwards.\n\n"
            "A plain ImageJ 1.x folder (plugins/ beside ij.jar) gets the macros in "
            "plugins/Camera Corrections/ instead."),
        params=(
            _FIJI_DIR,
            Param("python", "file", default=None, cli="--python", metavar="PYTHON",
                  label="Python", frontends=("cli",),
                  help="Python executable with camcorr installed, used by the Fiji commands "
                       "(default: the Python running this command)."),
        ),
        runner="fiji_bridge.install:run_install",
        frontends=("cli",),
    ),
    Operation(
        name="fiji-uninstall",
        title="Uninstall Fiji Commands",
        command=("fiji", "uninstall"),
        summary="Remove the Camera Corrections commands from Fiji.",
        description="Removes only the files written by 'camcorr fiji install'; restart Fiji "
                    "afterwards.",
        params=(_FIJI_DIR,),
        runner="fiji_bridge.install:run_uninstall",
        frontends=("cli",),
    ),
]
