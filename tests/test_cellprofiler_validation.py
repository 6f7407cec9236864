"""The example pipelines through CellProfiler's own code paths that touch settings.

CellProfiler's ``Pipeline.test_valid`` / ``Module.test_valid`` / ``test_module_warnings``, every
image/object chooser (``get_choices``) of every module -- SaveImages after our modules included --,
every measurement chooser (a FlagImage appended to each pipeline, pointed at one of our features),
the measurement columns, and a save/load round trip.  These are the calls the GUI makes when it
opens a pipeline; a setting that is not a plain CellProfiler setting breaks them (a ``key``
attribute hiding ``Setting.key()`` once gave ``'str' object is not callable``).
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from conftest import require_module

require_module("cellprofiler", "CellProfiler (cellprofiler extra, headless package)")

import cp_helpers as h  # noqa: E402

h.init_cellprofiler()

from cellprofiler_core.pipeline import Pipeline  # noqa: E402
from cellprofiler_core.setting import Measurement  # noqa: E402

import flashcarryovercorrect  # noqa: E402,F401  (plugins importable for the test)

PIPELINE_FILES = sorted(h.PIPELINES.glob("*.cppipe"))
OURS = ("SelectiveMedian", "FlashCarryoverCorrect", "EstimateResidualGain",
        "FlatfieldFromEmptyTiles")


@pytest.fixture(scope="module")
def input_folder(tmp_path_factory):
    """A Default Input Folder holding what the example pipelines read from it (the carryover
    parameter file and the acquisition's Settings.txt), so file settings validate."""
    from camcorr.flash.params import params_from_arrays, write_params
    from camcorr.simulate import lls

    import cellprofiler_core.preferences as cpprefs

    folder = tmp_path_factory.mktemp("cp_input")
    calib = lls.sensor_maps((1001, 1011, 1048, 1050), seed=0)
    write_params(params_from_arrays(calib.A, calib.B, calib.offset, calib.noise, roi=calib.roi,
                                    serial="100740", date="20240517"), folder)
    lls.write_settings(folder / "cell1_Settings.txt", (1001, 1011, 1032, 1042))
    out = tmp_path_factory.mktemp("cp_output")
    old_in = cpprefs.get_default_image_directory()
    old_out = cpprefs.get_default_output_directory()
    cpprefs.set_default_image_directory(str(folder))
    cpprefs.set_default_output_directory(str(out))
    yield folder
    cpprefs.set_default_image_directory(old_in)
    cpprefs.set_default_output_directory(old_out)


def _load(path: Path) -> Pipeline:
    pipeline = Pipeline()
    pipeline.load(str(path))
    return pipeline


def _append_flagimage(pipeline: Pipeline, category: str, feature: str, image: str):
    """A FlagImage at the end of the pipeline flagging on one of our image measurements."""
    from cellprofiler.modules.flagimage import FlagImage

    flag = FlagImage()
    flag.set_module_num(len(pipeline.modules()) + 1)
    pipeline.add_module(flag)
    ms = flag.flags[0].measurement_settings[0]
    ms.source_choice.value = "Whole-image measurement"
    ms.measurement.value = f"{category}_{feature}_{image}"
    ms.wants_minimum.value = True
    ms.minimum_value.value = 0.0
    return flag, ms.measurement


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.stem)
def test_cellprofiler_validation_and_choosers(path, input_folder):
    pipeline = _load(path)
    ours = [m for m in pipeline.modules() if m.module_name in OURS]
    assert ours, f"{path.name} has none of our modules"
    assert any(m.module_name == "SaveImages" for m in pipeline.modules())

    # our measurements, as CellProfiler lists them
    columns = pipeline.get_measurement_columns()
    ours_cols = [c for c in columns if c[0] == "Image" and
                 any(c[1].startswith(m.measurement_category + "_") for m in ours)]
    assert ours_cols, columns
    first = ours[0]
    feature, image = first.measurement_features()[0][0], first.measurement_image_names()[0]
    _, chooser = _append_flagimage(pipeline, first.measurement_category, feature, image)

    pipeline.test_valid()  # raises ValidationError naming the module and setting
    for module in pipeline.modules():
        module.test_valid(pipeline)
        module.test_module_warnings(pipeline)
        for setting in module.visible_settings():
            setting.test_valid(pipeline)
        for setting in module.visible_settings():  # CellProfiler asks visible settings only
            if hasattr(setting, "get_choices"):
                try:
                    choices = setting.get_choices(pipeline)
                except TypeError:  # Choice.get_choices() takes no pipeline
                    choices = setting.get_choices()
                assert choices is not None
                if module.module_name == "SaveImages" and setting is module.image_name:
                    produced = [n for m in ours for n in _image_outputs(m)]
                    offered = {c[0] if isinstance(c, tuple) else c for c in choices}
                    assert set(produced) & offered, (produced, choices)

    # the measurement chooser of FlagImage offers our category, feature and image
    assert isinstance(chooser, Measurement)
    assert first.measurement_category in chooser.get_category_choices(pipeline)
    features = chooser.get_feature_name_choices(pipeline, category=first.measurement_category)
    assert set(features) == {f for f, _ in first.measurement_features()}
    assert image in chooser.get_image_name_choices(pipeline, category=first.measurement_category,
                                                   feature_name=feature)
    chooser.test_valid(pipeline)


def _image_outputs(module):
    from cellprofiler_core.setting.text import ImageName

    return [s.value for s in module.settings() if isinstance(s, ImageName)]


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.stem)
def test_save_load_round_trip(path, input_folder):
    pipeline = _load(path)
    buf = io.StringIO()
    pipeline.dump(buf)
    again = Pipeline()
    again.load(io.StringIO(buf.getvalue()))
    for a, b in zip(pipeline.modules(), again.modules()):
        assert a.module_name == b.module_name
        assert [s.value_text for s in a.settings()] == [s.value_text for s in b.settings()]
        assert [s.text for s in a.visible_settings()] == [s.text for s in b.visible_settings()]
    again.test_valid()


def test_visible_settings_follow_the_operation_definition():
    """Param.shown_if decides what a dialog shows: 'k' only for rule 'mad', 'mean_k' only with
    the mean pass, the BaSiCPy settings only for methods that may use BaSiCPy."""
    from cellprofiler_core.utilities.core.modules import instantiate_module

    m = instantiate_module("SelectiveMedian")
    k, mean_k = m.params.by_name["k"][0], m.params.by_name["mean_k"][0]
    assert k in m.visible_settings() and mean_k not in m.visible_settings()
    m.params.by_name["rule"][0].value = "knee"
    m.params.by_name["mean_pass"][0].value = True
    assert k not in m.visible_settings() and mean_k in m.visible_settings()

    f = instantiate_module("FlatfieldFromEmptyTiles")
    eps = f.estimate.by_name["epsilon"][0]
    for method, shown in (("auto", True), ("basicpy", True), ("empty-tiles", False),
                          ("measured", False)):
        f.estimate.by_name["method"][0].value = method
        assert (eps in f.visible_settings()) is shown, method
    # every setting shown is also saved (no orphan)
    for module in (m, f):
        assert set(map(id, module.visible_settings())) - {id(s) for s in module.settings()} \
            <= {id(getattr(module, "add_button", None))}


@pytest.mark.parametrize("name", OURS)
def test_settings_are_plain_cellprofiler_settings(name):
    """No attribute of ours on a setting shadows CellProfiler's API (Setting.key() is a method)."""
    from cellprofiler_core.setting import Setting
    from cellprofiler_core.utilities.core.modules import instantiate_module

    module = instantiate_module(name)
    for s in module.settings():
        assert callable(s.key), (name, s.text)
        assert s.key() is not None and s.key() == s.key()
        fresh = type(s).__dict__.keys() | Setting.__dict__.keys()
        extra = set(vars(s)) - fresh
        assert not {"param", "key"} & extra, (name, s.text, extra)


@pytest.mark.parametrize("name", OURS)
def test_conventions_feature_names_and_help(name):
    """Features are Category_Feature_Image with no stray underscore; help names settings, not
    command-line flags; the flat-field module points to CellProfiler's own illumination pair."""
    import re

    from cellprofiler_core.utilities.core.modules import instantiate_module

    module = instantiate_module(name)
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", module.measurement_category)
    for feature, _ in module.measurement_features():
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", feature), feature
    for column in module.get_measurement_columns(Pipeline()):
        category, feature, image = column[1].split("_", 2)
        assert (category, image) == (module.measurement_category, image) and image
    texts = [module.__doc__] + [getattr(s, "doc", "") or "" for s in module.settings()]
    for text in texts:
        assert not re.search(r"(?<![\w-])--[a-z]", text), re.findall(r"--[a-z-]+", text)
    assert "System Message" not in module.get_help()
    if name == "FlatfieldFromEmptyTiles":
        assert "See also" in module.__doc__
        assert "CorrectIlluminationCalculate" in module.__doc__
        assert "CorrectIlluminationApply" in module.__doc__
