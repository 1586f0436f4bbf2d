"""The streaming pipeline shared by replay and the gadget: route → buffer → grid → emit."""
