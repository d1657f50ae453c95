"""Analyses: gradient checks, receptive fields, sweep reports."""
