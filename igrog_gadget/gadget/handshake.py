"""What a peer sends before its data, and the gadget properties it stands for.

The handshake is CONFIG_FILE (1) or CONFIG_TEXT (2), then HEADER (3). A CONFIG_FILE names a
configuration (``igrog``, ``igrog_<variant>``, ``<variant>``, or a name meaning the server's own
settings); a CONFIG_TEXT holds a Gadgetron ``<configuration>`` XML, a JSON object (MRD's
``configAdditional``) or a name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from igrog_gadget.errors import ConfigError
from igrog_gadget.gadget.settings import parse_json_text, properties_from_json, properties_from_xml

#: CONFIG_FILE names the gadget understands (besides these, ``igrog_<variant>`` and ``<variant>``).
#: Config names that mean the server's own settings (``igrog serve`` options): Siemens OpenRecon
#: always sends ``openrecon``.
GENERIC_CONFIG_NAMES = ("", "igrog", "igrog_gadget", "default", "openrecon")


@dataclass
class Handshake:
    """What the peer sent before its data."""

    config_name: str | None = None
    config_text: str | None = None
    header_xml: str = ""


def handshake_properties(handshake: Handshake, unknown_name: Callable[[str], None]) -> list[tuple[str, str]]:
    """The gadget properties ``(name, value)`` the handshake's configuration sets.
    ``unknown_name(name)`` is told of a configuration name the gadget does not know (its
    properties are then the server's own: none).

    Raises:
        ConfigError: a configuration text that is neither XML, JSON nor a name.
    """
    origin = "configuration"
    if handshake.config_name is not None:
        return properties_from_config_name(handshake.config_name, unknown_name)
    text = (handshake.config_text or "").strip()
    if text.startswith("<"):
        return properties_from_xml(text, origin)
    data = parse_json_text(text)
    if data is not None:
        return properties_from_json(data, origin)
    if text and len(text.split()) == 1:
        return properties_from_config_name(text, unknown_name)
    if not text:
        return []
    raise ConfigError(f"{origin}: neither a <configuration> XML, a JSON object nor a config name: {text[:80]!r}")


def properties_from_config_name(name: str, unknown_name: Callable[[str], None]) -> list[tuple[str, str]]:
    """``[("variant", v)]`` for ``igrog_<v>``, ``<v>`` (with an extension or not); nothing for the
    server's own settings (``GENERIC_CONFIG_NAMES``) and for an unknown name (``unknown_name``)."""
    from igrog_gadget.config import VARIANTS

    stem = name.strip()
    for suffix in (".xml", ".toml", ".json"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    if stem in GENERIC_CONFIG_NAMES:
        return []
    variant = stem[len("igrog_") :] if stem.startswith("igrog_") else stem
    if variant in VARIANTS:
        return [("variant", variant)]
    unknown_name(name)
    return []
