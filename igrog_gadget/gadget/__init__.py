"""The iGROG streaming gadget: Gadgetron external protocol (active and passive) and MRD server.

- :mod:`.wire`: what both ends agree on (message ids, fixed fields, errors, limits)
- :mod:`.protocol`: the connection (reading and writing whole messages, timeouts), implemented here
- :mod:`.recondata`: ``IsmrmrdReconData`` (message 1023) for Gadgetron's Cartesian gadgets
- :mod:`.images`: RSS magnitude images for MRD clients
- :mod:`.settings`: the ``<property>`` settings every connection can carry
- :mod:`.session`: one connection through the shared gridding pipeline
- :mod:`.server`: ``igrog serve`` (many concurrent connections)
- :mod:`.external`: the ``<execute>`` target for Gadgetron's active mode

See ``docs/gadget.md`` for chains, properties and behaviour.
"""

from igrog_gadget.gadget.settings import OUTPUT_MODES, PROPERTIES, GadgetSettings

__all__ = ["OUTPUT_MODES", "PROPERTIES", "GadgetSettings"]
