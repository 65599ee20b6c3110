"""Deepfake-image detection pipeline library."""
