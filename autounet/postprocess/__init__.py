"""Metrics, connected-component postprocessing, and choosing the configuration and the
postprocessing on the cross-validation."""
