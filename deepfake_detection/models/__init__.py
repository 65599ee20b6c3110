"""Classifier registry, building blocks and builders.

Importing the package registers every builder (as timm's ``models/__init__.py`` does), so
``registry.create_model`` needs no import of its own. ``params.py`` checks builder names and
kwargs without importing this package (see ``deepfake_detection.model_specs``).
"""

from . import classifiers, gan_discriminators  # noqa: F401  (registers the builders)
