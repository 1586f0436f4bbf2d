"""Gridding building blocks: sample geometry, calibration data, coil compression, FFTs and NUFFTs."""
