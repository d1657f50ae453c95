"""Placeholder: filled in by the convolution work (issue 3)."""
