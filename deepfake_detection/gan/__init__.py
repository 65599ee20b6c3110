"""GAN zoo: generator/discriminator builders (``nets``) and their losses (``losses``).

Importing the package registers every builder, as ``deepfake_detection.models`` does.
"""

from . import nets  # noqa: F401  (registers the builders)
