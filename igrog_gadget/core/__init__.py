"""Pieces shared by the iGROG variants: frame inputs, training-pair synthesis, kernel application, training runs."""
