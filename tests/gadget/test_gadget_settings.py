"""Gadget properties: parsing, precedence, and clear errors for anything unknown."""

from __future__ import annotations

import pytest

from igrog_gadget.errors import ConfigError
from igrog_gadget.gadget.client import configuration_xml
from igrog_gadget.gadget.settings import (
    PROPERTIES,
    GadgetSettings,
    properties_from_json,
    properties_from_xml,
)


def test_both_property_spellings_and_repeated_set():
    xml = """<?xml version="1.0"?>
    <configuration>
        <property name="variant" value="basic"/>
        <property><name>set</name><value>training.max_seconds=2; training.seed=3</value></property>
        <property name="set" value="gridding.num_sources=4"/>
        <property name="output" value="acquisitions"/>
    </configuration>"""
    settings = GadgetSettings(overrides=["training.epochs=2"]).merged(properties_from_xml(xml))
    assert settings.overrides == [
        "training.epochs=2",
        "training.max_seconds=2",
        "training.seed=3",
        "gridding.num_sources=4",
    ]
    assert settings.output == "acquisitions"
    config = settings.igrog_config()
    assert (config.training.max_seconds, config.training.seed, config.gridding.num_sources, config.training.epochs) == (
        2.0,
        3,
        4,
        2,
    )


def test_empty_configuration_documents_have_no_properties():
    assert properties_from_xml("") == []
    assert properties_from_xml('<?xml version="1.0"?>\n') == []
    assert properties_from_xml("<configuration/>") == []


def test_unknown_property_is_an_error_naming_it_and_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown property 'varient'; the iGROG gadget knows: variant, config"):
        GadgetSettings().merged(properties_from_xml(configuration_xml({"varient": "basic"})))


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("output", "dicom", "output must be one of recondata, acquisitions, images"),
        ("image_dtype", "int", "image_dtype must be one of float, ushort"),
        ("image_series_index", "x", "image_series_index must be an integer"),
    ],
)
def test_bad_property_values(name, value, message):
    with pytest.raises(ConfigError, match=message):
        GadgetSettings().merged([(name, value)])


def test_bad_override_and_device_surface_as_config_errors():
    with pytest.raises(ConfigError, match="unknown field training.max_secs"):
        GadgetSettings().merged([("set", "training.max_secs=3")]).igrog_config()
    with pytest.raises(ConfigError, match="gridding.device"):
        GadgetSettings().merged([("device", "tpu")]).igrog_config()


def test_unexpected_elements_and_bad_xml():
    with pytest.raises(ConfigError, match=r"unexpected element\(s\) <stream>"):
        properties_from_xml("<configuration><stream/></configuration>")
    with pytest.raises(ConfigError, match="not well-formed XML"):
        properties_from_xml("<configuration>")


def test_mrd_json_parameters():
    data = {
        "parameters": {
            "config": "igrog",
            "igrog.variant": "basic",
            "igrog_set": ["a.b=1", "c.d=2"],
            "sendoriginal": True,
        }
    }
    assert properties_from_json(data, "json") == [("variant", "basic"), ("set", "a.b=1"), ("set", "c.d=2")]


def test_every_property_is_documented():
    for name, (_default, description) in PROPERTIES.items():
        assert description.strip(), name


def test_readme_documents_every_property():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "gadget.md").read_text()
    for name in PROPERTIES:
        assert f"| `{name}` |" in readme, name
