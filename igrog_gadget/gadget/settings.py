"""Gadget settings: the ``<property>`` elements of a chain's ``<configuration>``.

Gadgetron hands the external gadget only its ``<configuration>`` element, e.g.::

    <configuration>
        <property name="variant" value="basic"/>
        <property name="set" value="training.max_steps=600; gridding.num_sources=5"/>
        <property name="output" value="recondata"/>
    </configuration>

Both property spellings Gadgetron knows are read: ``<property name="N" value="V"/>`` and
``<property><name>N</name><value>V</value></property>``. Every property name must be one of
:data:`PROPERTIES`; anything else is a :class:`~igrog_gadget.errors.ConfigError` that the
gadget sends back before closing the connection. An empty value means "not set".

Precedence: the server's own defaults (``igrog serve --variant/--config/--set/...``) first,
then the connection's properties (``set`` overrides are appended after the server's).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Iterable, Mapping

from igrog_gadget.config import DEVICES, VARIANTS, IgrogConfig, load_config, read_toml
from igrog_gadget.errors import ConfigError
logger = logging.getLogger(__name__)

OUTPUT_MODES = ("recondata", "acquisitions", "images")
#: Pixel types of output images (``image_dtype``).
IMAGE_DTYPES = ("float", "ushort")
#: Ports ``igrog serve`` listens on by default: that of Gadgetron's own examples for ``<connect>``,
#: and the one MRD servers conventionally use.
DEFAULT_GADGETRON_PORT = 18000
DEFAULT_MRD_PORT = 9002

#: Every property the gadget reads: name -> (default shown in docs, description).
PROPERTIES: dict[str, tuple[str, str]] = {
    "variant": ("basic", f"iGROG variant: {' | '.join(VARIANTS)}."),
    "config": (
        "",
        "Path (on the gadget's machine) of a TOML file overriding the variant's standard configuration.",
    ),
    "set": (
        "",
        "Configuration overrides 'section.field=value'; repeat the property or separate several "
        "with ';' (e.g. 'training.max_steps=600; calibration.source=acs').",
    ),
    "device": ("auto", f"Compute device: {' | '.join(DEVICES)} (auto: CUDA when available)."),
    "output": (
        "recondata",
        f"What the gadget sends on: {' | '.join(OUTPUT_MODES)}: recondata (IsmrmrdReconData per frame, for "
        "SimpleReconGadget / Generic Cartesian gadgets), acquisitions (Cartesian lines), images (RSS magnitude). "
        "Default: recondata for Gadgetron peers, images for MRD clients.",
    ),
    "image_dtype": (
        "float",
        f"Pixel type of output images (output=images): {' | '.join(IMAGE_DTYPES)} (ushort: scaled to 0..4095).",
    ),
    "image_series_index": ("1", "image_series_index of output images (output=images)."),
}


#: Largest TOML configuration file a connection may name.
MAX_CONFIG_FILE_BYTES = 1 << 20

#: Configuration fields that name a file (``set`` overrides a peer may send).
FILE_FIELDS = ("fieldcorr.b0map_file", "image_calibration.image_file")
#: Configuration fields only the server's operator sets, never a connection (a directory the server writes).
SERVER_FIELDS = ("training.warm_start_dir",)


class Dialect(str, Enum):
    """Who is on the other side."""

    GADGETRON = "gadgetron"
    """A Gadgetron 4 external-language peer: results go to Cartesian gadgets; errors as ERROR (8)."""
    MRD = "mrd"
    """An MRD / python-ismrmrd-server client (OpenRecon): images back; errors as TEXT (5)."""

    @property
    def default_output(self) -> str:
        return "recondata" if self is Dialect.GADGETRON else "images"

@dataclass(frozen=True)
class PeerFiles:
    """Which files a connection may name (``config`` property, ``FILE_FIELDS`` overrides).

    None by default. With ``data_dir`` (``igrog serve --data-dir``): regular files below it, of at
    most ``max_bytes``, named relative to it (or by an absolute path inside it). A refusal never
    says whether a path outside the directory exists.
    """

    data_dir: str | None = None
    max_bytes: int = 1 << 30

    def resolve(self, value: str, what: str, max_bytes: int | None = None) -> str:
        """The real path of the file ``value`` names; ConfigError when a peer may not read it
        (``max_bytes``: a smaller bound for this file, e.g. a TOML configuration)."""
        limit = self.max_bytes if max_bytes is None else min(max_bytes, self.max_bytes)
        if self.data_dir is None:
            raise ConfigError(
                f"{what} names a file ({value!r}), but this server reads no files for its peers "
                "(the operator can allow files below a directory: igrog serve --data-dir DIR)"
            )
        root = os.path.realpath(self.data_dir)
        candidate = os.path.realpath(os.path.join(root, value))
        outside = ConfigError(f"{what}: {value!r} is not a file below the server's data directory")
        if os.path.commonpath([root, candidate]) != root:
            raise outside
        try:
            info = os.stat(candidate)
        except OSError:
            raise ConfigError(f"{what}: {value!r} does not exist in the server's data directory") from None
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what}: {value!r} is not a regular file")
        if info.st_size > limit:
            raise ConfigError(f"{what}: {value!r} has {info.st_size} bytes, more than the limit of {limit}")
        return candidate


@dataclass
class GadgetSettings:
    """What one connection runs with (server defaults merged with its properties)."""

    variant: str = "basic"
    config_file: str | None = None
    overrides: list[str] = field(default_factory=list)
    device: str | None = None
    output: str | None = None
    """None: the dialect's default (recondata for Gadgetron, images for MRD)."""
    image_dtype: str = "float"
    image_series_index: int = 1
    files: PeerFiles = field(default_factory=PeerFiles)
    """What files a connection's properties may name (the server's own defaults are trusted)."""

    def merged(self, properties: Iterable[tuple[str, str]], origin: str = "configuration") -> "GadgetSettings":
        """A copy with ``properties`` (name, value) applied in order; unknown names raise ConfigError."""
        result = replace(self, overrides=list(self.overrides))
        for name, value in properties:
            name = name.strip()
            value = (value or "").strip()
            if name not in PROPERTIES:
                raise ConfigError(
                    f"{origin}: unknown property {name!r}; the iGROG gadget knows: {', '.join(PROPERTIES)}"
                )
            if not value:
                continue
            if name == "variant":
                result.variant = value
            elif name == "config":
                result.config_file = self.files.resolve(value, f"{origin}: property config", MAX_CONFIG_FILE_BYTES)
                _refuse_server_fields(read_toml(result.config_file), f"{origin}: config file {value!r}")
            elif name == "set":
                result.overrides.extend(
                    self._peer_override(part.strip(), origin) for part in value.split(";") if part.strip()
                )
            elif name == "device":
                result.device = value
            elif name == "output":
                if value not in OUTPUT_MODES:
                    raise ConfigError(
                        f"{origin}: property output must be one of {', '.join(OUTPUT_MODES)}; got {value!r}"
                    )
                result.output = value
            elif name == "image_dtype":
                if value not in IMAGE_DTYPES:
                    raise ConfigError(
                        f"{origin}: property image_dtype must be one of {', '.join(IMAGE_DTYPES)}; got {value!r}"
                    )
                result.image_dtype = value
            elif name == "image_series_index":
                try:
                    index = int(value)
                except ValueError:
                    raise ConfigError(
                        f"{origin}: property image_series_index must be an integer; got {value!r}"
                    ) from None
                if index < 0:
                    raise ConfigError(f"{origin}: property image_series_index must be >= 0; got {index}")
                result.image_series_index = index
        return result

    def _peer_override(self, override: str, origin: str) -> str:
        """A peer's ``section.field=value``; file fields are resolved through ``files``."""
        name, sep, value = override.partition("=")
        if name.strip() in SERVER_FIELDS:
            raise ConfigError(f"{origin}: {name.strip()} is the server's setting; a connection may not set it")
        if sep and name.strip() in FILE_FIELDS and value.strip():
            return f"{name.strip()}={self.files.resolve(value.strip(), f'{origin}: {name.strip()}')}"
        return override

    def igrog_config(self) -> IgrogConfig:
        """The validated variant configuration (standard file, config file, overrides, device)."""
        overrides = list(self.overrides)
        if self.device:
            overrides.append(f"gridding.device={self.device}")
        return load_config(self.variant, self.config_file, overrides)


def _refuse_server_fields(table: dict, origin: str) -> None:
    """ConfigError when a connection's configuration file sets one of ``SERVER_FIELDS``."""
    for name in SERVER_FIELDS:
        section, field_name = name.split(".")
        if isinstance(table.get(section), dict) and field_name in table[section]:
            raise ConfigError(f"{origin}: {name} is the server's setting; a connection may not set it")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def properties_from_element(root: ET.Element) -> list[tuple[str, str]]:
    """(name, value) of every ``<property>`` directly under ``root`` (both spellings).

    Raises:
        ConfigError: a ``<property>`` without a name.
    """
    found = []
    for node in root:
        if _local(node.tag) != "property":
            continue
        name = node.get("name")
        value = node.get("value")
        if name is None:
            child_name = next((c for c in node if _local(c.tag) == "name"), None)
            child_value = next((c for c in node if _local(c.tag) == "value"), None)
            if child_name is None:
                raise ConfigError(f"a <property> has no name: {ET.tostring(node, encoding='unicode').strip()}")
            name = (child_name.text or "").strip()
            value = (child_value.text or "") if child_value is not None else ""
        found.append((name, value or ""))
    return found


def properties_from_xml(text: str, origin: str = "configuration") -> list[tuple[str, str]]:
    """Properties of a ``<configuration>`` text (what Gadgetron sends an external gadget).

    An empty document (Gadgetron sends just an XML declaration when the chain's ``<external>``
    has no ``<configuration>``) has no properties. Elements other than ``<property>`` are
    reported as errors, so a typo never goes unnoticed.

    Raises:
        ConfigError: not XML, or unexpected elements.
    """
    stripped = text.strip().strip("\x00").strip()
    if not stripped or (stripped.startswith("<?xml") and stripped.endswith("?>") and "<" not in stripped[2:-2]):
        return []
    try:
        root = ET.fromstring(stripped)
    except ET.ParseError as error:
        raise ConfigError(f"{origin} is not well-formed XML: {error}") from None
    extra = sorted({_local(c.tag) for c in root if _local(c.tag) != "property"})
    if extra:
        raise ConfigError(
            f"{origin}: unexpected element(s) <{'>, <'.join(extra)}> in <{_local(root.tag)}>; "
            "the iGROG gadget reads only <property name=... value=.../>"
        )
    return properties_from_element(root)


def properties_from_json(data: Mapping[str, object], origin: str) -> list[tuple[str, str]]:
    """Properties from an MRD JSON config (``{"parameters": {...}}``).

    Keys ``igrog.<property>`` or ``igrog_<property>`` are gadget properties (an unknown one is
    an error); other keys belong to the MRD host (``config``, ``customconfig``, ...) and are
    ignored. A list value of ``set`` gives several overrides.
    """
    parameters = data.get("parameters", data)
    if not isinstance(parameters, Mapping):
        raise ConfigError(f"{origin}: 'parameters' must be a JSON object, got {type(parameters).__name__}")
    found: list[tuple[str, str]] = []
    for key, value in parameters.items():
        for prefix in ("igrog.", "igrog_"):
            if str(key).startswith(prefix):
                name = str(key)[len(prefix) :]
                values = value if isinstance(value, list) else [value]
                found.extend((name, "" if v is None else str(v)) for v in values)
                break
    return found


def parse_json_text(text: str) -> dict | None:
    """The JSON object in ``text``, or None when it is not a JSON object."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None
