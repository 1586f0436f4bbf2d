"""The image_based and fieldcorr tests share ``variants_helpers``."""
