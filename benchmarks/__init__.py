"""Measured runs, not tests: Studio's paths against the raw library calls, in the same run."""
