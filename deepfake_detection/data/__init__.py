"""Datasets: demo generator, download clients, layout adapters, manifest, prepared arrays."""
