"""Every ``gadgetron_configs/*.xml`` is a valid Gadgetron 4 stream that uses the gadget correctly."""

from __future__ import annotations

import importlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from igrog_gadget.config import IgrogConfig, apply_overrides
from igrog_gadget.gadget.settings import GadgetSettings, properties_from_element

CONFIG_DIR = Path(__file__).resolve().parents[2] / "gadgetron_configs"
FILES = sorted(CONFIG_DIR.glob("*.xml"))
#: Gadgets the chains may use, with the library that exports them in Gadgetron 4.
KNOWN_GADGETS = {
    "NoiseAdjustGadget": "gadgetron_mricore",
    "SimpleReconGadget": "gadgetron_mricore",
    "ImageArraySplitGadget": "gadgetron_mricore",
    "ExtractGadget": "gadgetron_mricore",
}
KNOWN_READERS = {"AcquisitionReader", "WaveformReader", "ImageReader"}
KNOWN_WRITERS = {"ImageWriter", "AcquisitionWriter", "WaveformWriter"}


def test_the_four_chains_exist():
    names = {path.name for path in FILES}
    assert {"igrog_basic.xml", "igrog_image_based.xml", "igrog_fieldcorr.xml", "igrog_connect.xml"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_chain(path: Path):
    root = ET.parse(path).getroot()
    assert root.tag == "configuration" and root.findtext("version") == "2"
    for reader in root.iter("reader"):
        assert reader.findtext("dll") == "gadgetron_core_readers" and reader.findtext("classname") in KNOWN_READERS
    for writer in root.iter("writer"):
        assert writer.findtext("dll") == "gadgetron_core_writers" and writer.findtext("classname") in KNOWN_WRITERS
    stream = root.find("stream")
    assert stream is not None
    externals = stream.findall("external")
    assert len(externals) == 1
    external = externals[0]
    gadgets = [child.findtext("classname") for child in stream if child.tag == "gadget"]
    for child in stream:
        if child.tag == "gadget":
            assert KNOWN_GADGETS.get(child.findtext("classname")) == child.findtext("dll")
    # order: noise adjust before the gadget, Cartesian recon after it
    order = [child.tag if child.tag == "external" else child.findtext("classname") for child in stream]
    assert order == ["NoiseAdjustGadget", "external", "SimpleReconGadget", "ImageArraySplitGadget", "ExtractGadget"]
    assert gadgets == ["NoiseAdjustGadget", "SimpleReconGadget", "ImageArraySplitGadget", "ExtractGadget"]

    execute, connect = external.find("execute"), external.find("connect")
    assert (execute is None) != (connect is None)
    if execute is not None:
        assert execute.get("type") == "python"
        module = importlib.import_module(execute.get("name"))
        target = getattr(module, execute.get("target"))
        assert callable(target)
    else:
        assert int(connect.get("port")) > 0

    configuration = external.find("configuration")
    assert configuration is not None
    properties = properties_from_element(configuration)
    settings = GadgetSettings().merged(properties, path.name)  # raises on any unknown property
    assert settings.output in (None, "recondata")  # Cartesian recon gadgets downstream need recon data
    apply_overrides(IgrogConfig(variant=settings.variant), settings.overrides)  # every override names a real field
    expected_variant = {"igrog_image_based.xml": "image_based", "igrog_fieldcorr.xml": "fieldcorr"}.get(
        path.name, "basic"
    )
    assert settings.variant == expected_variant
