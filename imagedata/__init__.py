"""imagedata: an image-data service speaking the OpenStack Image API v2."""

__version__ = "0.1.0"
