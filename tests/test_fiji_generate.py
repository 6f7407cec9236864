"""Pure-Python tests of the Fiji bridge: generated scripts (golden copies), their parameters
against the operation definitions, install/uninstall into a temporary Fiji-like folder."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from camcorr.errors import CamcorrError
from camcorr.operations import Operation, Param, all_operations
from fiji_bridge import generate
from toy_operation import TOY, scale
from fiji_bridge.generate import (GOLDEN_DIR, MENU, compare_golden, fiji_operations, golden_files,
                                  render_ijm, script_files)
from fiji_bridge.install import detect_installation, install, uninstall

PY = sys.executable
REAL = fiji_operations()


def _fake_fiji(root: Path) -> Path:
    (root / "jars").mkdir(parents=True)
    (root / "jars" / "imagej-legacy-2.0.0.jar").write_bytes(b"")
    (root / "plugins").mkdir()
    return root


def _fake_ij1(root: Path) -> Path:
    (root / "plugins").mkdir(parents=True)
    (root / "ij.jar").write_bytes(b"")
    return root


ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\{[^}]*\}|[^,)\s]+)')


def parse_params(text: str):
    """{name: (type, attrs)} of the #@ lines of a script."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"#@(output)? (\w+(?:\[\])?) (?:\((.*)\) )?(\w+)$", line)
        if not m or m.group(1):
            continue
        attrs = {k: v.strip('"') for k, v in ATTR.findall(m.group(3) or "")}
        out[m.group(4)] = (m.group(2), attrs)
    return out


# ---------------------------------------------------------------------------- golden copies
def test_golden_files_match_every_real_operation():
    """Every Fiji operation of the registry has up-to-date golden copies (3 flavours each) and
    there are no stale ones.  Regenerate with `python -m fiji_bridge.generate --update-golden`."""
    bad = compare_golden()
    assert bad == [], ("golden files out of date, run "
                       "`python -m fiji_bridge.generate --update-golden`: " + ", ".join(bad))
    assert len(golden_files()) == 2 * len(REAL)
    # no Python-mode scripts: Fiji's Jython cannot run camcorr
    assert not any(n.endswith('.py') for n in golden_files())


@pytest.mark.parametrize("op", REAL, ids=[o.name for o in REAL])
def test_golden_copy_of_each_real_operation(op):
    stem = generate.file_stem(op.title)
    for name, text in ((f"{stem}.ijm", render_ijm(op, "fiji")),
                       (f"{stem}.ij1.ijm", render_ijm(op, "ij1"))):
        assert (GOLDEN_DIR / name).read_text(encoding="utf-8") == text, name


def test_generation_is_deterministic_and_check_command(tmp_path):
    assert golden_files({"toy-scale": TOY}) == golden_files({"toy-scale": TOY})
    changed = generate.update_golden({"toy-scale": TOY}, tmp_path)
    assert sorted(changed) == ["Toy_Scale.ij1.ijm", "Toy_Scale.ijm"]
    assert generate.compare_golden({"toy-scale": TOY}, tmp_path) == []
    (tmp_path / "Toy_Scale.ijm").write_text("edited")
    assert generate.compare_golden({"toy-scale": TOY}, tmp_path) == ["Toy_Scale.ijm"]
    proc = subprocess.run([PY, "-m", "fiji_bridge.generate", "--check"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------- parameters vs definitions
def _check_params_match(op: Operation):
    current, all_dialog, hidden = generate._roles(op)
    # the command-line parameters, plus switches mapped onto a hidden output (save_mask)
    dialog = generate._macro_dialog(all_dialog) + [
        p for p in all_dialog if p.name in generate._MASK_SWITCHES.get(op.name, {})]
    assert [p.name for p in all_dialog] == [p.name for p in op.params
                                            if "fiji" in p.frontends and p is not current]
    fiji = parse_params(render_ijm(op, "fiji"))
    fiji.pop("cc_summary")
    key = generate.macro_key
    assert list(fiji) == [key(p) for p in dialog]
    for p in dialog:
        jtype, attrs = fiji[key(p)]
        assert attrs["label"] == p.text()
        assert attrs["persist"] == "false"  # macros without a key get the default
        assert attrs["description"].startswith(p.help.strip().replace('"', "'")[:40])
        if p.kind in ("float", "int") and p.default is not None:
            assert jtype == ("Double" if p.kind == "float" else "Integer")
            assert float(attrs["value"]) == pytest.approx(p.default)
            if p.minval is not None:
                assert float(attrs["min"]) == pytest.approx(p.minval)
            if p.maxval is not None:
                assert float(attrs["max"]) == pytest.approx(p.maxval)
        elif p.kind == "bool":
            assert jtype == "Boolean" and attrs["value"] == ("true" if p.default else "false")
        elif p.kind == "choice":
            assert jtype == "String"
            assert attrs["choices"] == "{" + ",".join(f'"{c}"' for c in p.choices) + "}"
            if p.default is not None:
                assert attrs["value"] == p.default
        elif p.kind in ("folder", "output_folder") and (p.required or p.default is not None):
            assert jtype == "File" and attrs["style"] == "directory"
        elif p.kind in ("file", "output_file", "image", "images") and (
                p.required or p.default is not None):
            assert jtype == "File" and attrs["style"] in ("open", "save")
        else:
            assert jtype == "String"
    # ImageJ 1.x flavour: a Dialog whose labels are the parameter names (= macro keys)
    ij1 = render_ijm(op, "ij1")
    labels = re.findall(r'Dialog\.add(?:Number|Checkbox|Choice|String|File|Directory)\("(\w+)"', ij1)
    assert labels == [key(p) for p in dialog]
    assert "#@" not in ij1
    # every command-line word and flag of the visible/hidden parameters reaches the argument list
    for word in op.command:
        assert f'cc_arg("{word}");' in ij1
    for p in op.params:
        if p.cli and (p in dialog or p in dict(generate._temp_outputs(hidden))):
            assert f'"{p.cli}"' in ij1, p.name


def test_toy_parameters_match_definition():
    _check_params_match(TOY)
    fiji = parse_params(render_ijm(TOY, "fiji"))
    assert fiji["factor"] == ("Double", {"label": "Factor (x)", "description":
                                         "Multiplier. Unit: x.", "value": "2", "min": "0",
                                         "max": "100", "style": "format:#.######",
                                         "required": "false", "persist": "false"})
    assert "output" not in fiji and "image" not in fiji  # hidden / the current image
    assert fiji["offset_file"][0] == "String"  # optional path: empty = not set


def test_every_param_kind_maps():
    params = tuple(Param(f"p_{k}", k, required=k in ("file", "folder"),
                         choices=("a", "b") if k == "choice" else (),
                         default={"float": 1.5, "int": 3, "bool": True, "choice": "b"}.get(k),
                         cli=f"--p-{k}".replace("_", "-"))
                   for k in ("float", "int", "bool", "choice", "str", "file", "files", "folder",
                             "int_list", "float_pair", "int_pair", "output_file"))
    op = Operation("all-kinds", "All Kinds", ("all",), "Every kind.",
                   params=(Param("image", "image", required=True),) + params, runner="x:y")
    _check_params_match(op)
    types = {n: t for n, (t, _) in parse_params(render_ijm(op, "fiji")).items()}
    assert types == {"cc_summary": "String", "p_float": "Double", "p_int": "Integer",
                     "p_bool": "Boolean", "p_choice": "String", "p_str": "String",
                     "p_file": "File", "p_files": "String", "p_folder": "File",
                     "p_int_list": "String", "p_float_pair": "String", "p_int_pair": "String",
                     "p_output_file": "String"}


def test_reserved_macro_words_get_an_underscore():
    """A parameter called like an ImageJ macro function (``split``) cannot be a macro variable."""
    op = Operation("words", "Words", ("words",), "x", params=(
        Param("image", "image", required=True),
        Param("split", "choice", default="a", choices=("a", "b"), cli="--split"),
        Param("k", "float", default=1.0, cli="--k")), runner="x:y")
    _check_params_match(op)
    text = render_ijm(op, "fiji")
    assert text.splitlines()[3] == '// Macro: run("Words", "split_=... k=...");'
    assert '"" + split_' in text and " split\n" not in text
    assert generate.macro_key(op.param("k")) == "k"


def test_hidden_required_parameter_is_refused():
    op = Operation("bad", "Bad", ("bad",), "x", params=(
        Param("k", "float", required=True, cli="--k", frontends=("cli",)),), runner="x:y")
    with pytest.raises(ValueError, match="hidden from Fiji"):
        render_ijm(op)


@pytest.mark.parametrize("op", REAL, ids=[o.name for o in REAL])
def test_real_operation_parameters_match_definition(op):
    _check_params_match(op)


def test_contract_titles_of_real_operations():
    """Menu (macro) names are the titles of the API contract."""
    contract = {"flash-calibrate": "Flash Carryover Calibrate",
                "flash-correct": "Flash Carryover Correct", "median": "Selective Median",
                "gain-estimate": "Estimate Residual Gain", "gain-normalize": "A Posteriori Normalize",
                "frc": "Fourier Ring Correlation", "flatfield-estimate": "Flatfield Estimate",
                "flatfield-apply": "Flatfield Apply"}
    for op in REAL:
        if op.name in contract:
            assert op.title == contract[op.name]
    ops = all_operations()
    assert ops["fiji-install"].command == ("fiji", "install")
    assert ops["fiji-uninstall"].frontends == ("cli",)


# ---------------------------------------------------------------------- install / uninstall
def test_detect_installation(tmp_path):
    assert detect_installation(_fake_fiji(tmp_path / "Fiji.app")) == "fiji"
    assert detect_installation(_fake_ij1(tmp_path / "ImageJ")) == "ij1"
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(CamcorrError, match="FIJI_DIR"):
            detect_installation(bad)


def test_install_uninstall_fiji_idempotent(tmp_path, capsys):
    root = _fake_fiji(tmp_path / "Fiji.app")
    ops = {"toy-scale": TOY}
    r1 = install(root, PY, operations=ops)
    menu = root / "scripts" / "Plugins" / MENU
    # the commands in the menu; their internal helper outside it (no menu entry): a BeanShell
    # file and the jar with the class that runs it from a macro's call(...)
    assert sorted(p.relative_to(root).as_posix() for p in r1.written) == [
        "jars/camcorr-fiji-helper.jar", "lib/camcorr/camera_corrections_return.bsh",
        f"scripts/Plugins/{MENU}/Toy_Scale.ijm"]
    assert f'cc_python = "{PY}";' in (menu / "Toy_Scale.ijm").read_text()
    r2 = install(root, PY, operations=ops)
    assert r2.written == [] and len(r2.unchanged) == 3
    # the helper's old place in the menu (earlier versions) is cleared by installing again
    (menu / "Internal").mkdir()
    (menu / "Internal" / "Camera_Corrections_Return.bsh").write_text("// " + generate.MARKER)
    r2b = install(root, PY, operations=ops)
    assert [p.name for p in r2b.removed] == ["Camera_Corrections_Return.bsh"]
    assert not (menu / "Internal").exists()
    # an operation that disappeared loses its command; a user's file is kept
    (menu / "My_Macro.ijm").write_text("print(1);")
    other = Operation("toy-2", "Toy Two", ("toy", "two"), "x", params=TOY.params,
                      runner=TOY.runner)
    r3 = install(root, PY, operations={"toy-2": other})
    assert {p.name for p in r3.removed} == {"Toy_Scale.ijm"}
    assert (menu / "Toy_Two.ijm").exists() and (menu / "My_Macro.ijm").exists()
    # a foreign file with a command's name is not overwritten
    (menu / "Toy_Scale.ijm").write_text("print('mine');")
    with pytest.raises(CamcorrError, match="did not write"):
        install(root, PY, operations=ops)
    assert (menu / "Toy_Scale.ijm").read_text() == "print('mine');"
    (menu / "Toy_Scale.ijm").unlink()
    u1 = uninstall(root)
    assert {p.name for p in u1.removed} == {"Toy_Two.ijm", "camera_corrections_return.bsh",
                                            "camcorr-fiji-helper.jar"}
    assert not (root / "lib" / "camcorr").exists()
    assert (menu / "My_Macro.ijm").exists() and not (menu / "Python mode").exists()
    (menu / "My_Macro.ijm").unlink()
    assert uninstall(root).removed == []
    assert not menu.exists()
    assert not list(root.rglob("*.part*"))


def test_install_plain_imagej1(tmp_path):
    root = _fake_ij1(tmp_path / "ImageJ")
    r = install(root, PY, operations={"toy-scale": TOY})
    assert r.target == "ij1" and sorted(p.relative_to(root).as_posix() for p in r.written) == [
        f"plugins/{MENU}/CamcorrMacroAbort.class", f"plugins/{MENU}/Toy_Scale.ijm"]
    assert "Restart ImageJ" in r.restart_hint
    # the helper class (no underscore: no menu entry) is rewritten only when it changed
    assert (root / "plugins" / MENU / "CamcorrMacroAbort.class").read_bytes()[:4] == b"\xca\xfe\xba\xbe"
    again = install(root, PY, operations={"toy-scale": TOY})
    assert again.written == [] and len(again.unchanged) == 2
    assert len(uninstall(root).removed) == 2 and not (root / "plugins" / MENU).exists()


def test_cli_install_uninstall(tmp_path):
    root = _fake_fiji(tmp_path / "Fiji.app")
    cmd = [PY, "-m", "camcorr", "fiji", "install", str(root), "--python", PY]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Restart Fiji" in proc.stdout
    n = len(REAL)
    assert len(list((root / "scripts" / "Plugins" / MENU).glob("*.ijm"))) == n
    proc = subprocess.run(cmd[:4] + ["uninstall", str(root)], capture_output=True, text=True)
    assert proc.returncode == 0 and "Restart Fiji" in proc.stdout, proc.stderr
    # not a Fiji folder: clear message, exit 2, nothing written
    (tmp_path / "nofiji").mkdir()
    proc = subprocess.run(cmd[:5] + [str(tmp_path / "nofiji")], capture_output=True, text=True)
    assert proc.returncode == 2 and "not a Fiji or ImageJ installation" in proc.stderr
    assert "Traceback" not in proc.stderr and list((tmp_path / "nofiji").iterdir()) == []


def test_install_refuses_python_without_camcorr(tmp_path):
    root = _fake_fiji(tmp_path / "Fiji.app")
    with pytest.raises(CamcorrError, match="no such Python"):
        install(root, str(tmp_path / "nopython"), operations={"toy-scale": TOY})
    bare = tmp_path / "bare_python"
    bare.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named camcorr' >&2\n"
                    "exit 1\n")
    bare.chmod(0o755)
    with pytest.raises(CamcorrError, match="camcorr is not installed in this Python"):
        install(root, str(bare), operations={"toy-scale": TOY})
    assert not (root / "scripts").exists()


# ------------------------------------------------------------------------ Python-side engine
def test_import_starts_no_jvm():
    code = ("import sys, fiji_bridge, fiji_bridge.convert, fiji_bridge.session, "
            "fiji_bridge.engine, fiji_bridge.install, fiji_bridge.macro_entry\n"
            "fiji_bridge.install\n"
            "assert 'jpype' not in sys.modules and 'imagej' not in sys.modules, sorted(sys.modules)\n")
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_run_on_array_matches_engine(rng):
    from fiji_bridge.engine import run_on_array

    img = rng.integers(0, 4000, (3, 6, 5)).astype(np.uint16)
    out = run_on_array(TOY, img, {"factor": 2.5, "mode": "add", "clip": False})
    np.testing.assert_array_equal(out, scale(img, 2.5, "add", False))
    assert out.dtype == np.float32
    with pytest.raises(CamcorrError, match="no image"):
        run_on_array(TOY, None, {})
    with pytest.raises(CamcorrError, match="out of range"):
        run_on_array(TOY, img, {"factor": -1})


def test_run_on_array_keeps_hyperstack_axes(rng, tmp_path):
    """A (Z, C, Y, X) array with axes='ZCYX' reaches flash-correct as a 2-channel hyperstack (the
    channels of one timepoint) and comes back with its axes; bad axes are refused."""
    from camcorr.flash import correct_interleaved, read_params, write_params
    from camcorr.flash.params import FlashParams
    from fiji_bridge.engine import run_on_array

    shp = (8, 6)
    fp = FlashParams(A=np.full(shp, 40.0, np.float32), B=np.full(shp, 2e-3, np.float32),
                     offset=np.full(shp, 100.0, np.float32), noise=np.ones(shp, np.float32))
    ppath = write_params(fp, tmp_path / "FlashParam_t.tif")
    zcyx = (100 + rng.poisson(300, (4, 2) + shp)).astype(np.uint16)
    zcyx[:, 0, 2:5, 2:4] += 20000
    out, axes = run_on_array("flash-correct", zcyx, {"params": str(ppath), "dampening": 1.0},
                             axes="ZCYX", return_axes=True)
    direct = correct_interleaved([zcyx[:, 0], zcyx[:, 1]], read_params(ppath), dampening=1.0,
                                 dtype="keep")
    assert axes == "ZCYX" and out.shape == zcyx.shape and out.dtype == np.uint16
    for c in (0, 1):
        np.testing.assert_array_equal(out[:, c], direct[c])
    for bad in ("CZYX", "ZCY", "ZYX"):
        with pytest.raises(CamcorrError, match="axes"):
            run_on_array("flash-correct", zcyx, {"params": str(ppath)}, axes=bad)
