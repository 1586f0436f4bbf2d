"""igrog-gadget: implicit GROG gridding of non-Cartesian MRI data as a streaming gadget."""
__version__ = "0.1.0"
