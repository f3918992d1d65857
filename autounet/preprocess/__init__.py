"""Preprocessing: crop to the non-zero region, normalize, resample, write memory-mappable arrays."""
