"""alphaforge: causal features, leakage-safe models, over a REST API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("alphaforge")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
