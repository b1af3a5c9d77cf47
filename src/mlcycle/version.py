"""The version of mlcycle, apart so that any module can read it without importing the package.

Example:
    >>> from mlcycle.version import __version__
    >>> __version__
    '0.1.0'
"""

__version__ = "0.1.0"
