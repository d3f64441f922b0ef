"""Sphinx configuration of imagedata's documentation (``sphinx-build -W -b html docs OUT``)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from imagedata import __version__  # noqa: E402

project = "imagedata"
author = "the imagedata authors"
copyright = "the imagedata authors; Apache-2.0"
version = release = __version__
root_doc = "index"
extensions = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"description": "Image data for the OpenStack Image API v2", "fixed_sidebar": True}
html_static_path = []
# Literal blocks are shell sessions and configuration files, not Python.
highlight_language = "none"
