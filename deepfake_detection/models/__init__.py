"""Classifier registry, building blocks and builders."""
