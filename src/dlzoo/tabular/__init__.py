"""Tabular regression pieces shared by training and prediction: column schema, per-fold preprocessing, models."""
