"""Singer tap for the Avicenna Research (formerly Ethica Data) Data Export API."""

from importlib.metadata import version

# pyproject.toml holds the version; this is the installed distribution's (as --about's).
__version__ = version("tap-avicenna")
