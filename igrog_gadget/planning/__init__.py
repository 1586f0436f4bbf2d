"""From an assembled frame to its gridded k-space: the training service (a model per calibration
key), the plan cache (a ``GriddingPlan`` per model version and trajectory) and the frame gridder
that applies a plan to a frame's samples (``FrameGridder``)."""
