"""The iGROG core the variants share: frame inputs and trajectories, the datamodule contract,
training pairs, the closed-form and network kernel fits, the gridding plan and its application,
the centre fill, the error estimate and the per-frame report."""
