"""This host's bounded image cache (IMAGEDATA_CACHE_DIR, IMAGEDATA_CACHE_MAX_BYTES).

``core.ImageCache`` is what the download layer and the cache API use; ``layout`` is the
folder on disk, ``index`` the shared SQLite index, ``fill`` the copying of one image,
``readers`` what downloads read, ``manage`` the cache API's service functions and
``upkeep`` what the maintenance loop and ``imagedata verify --cache`` do.
"""
from imagedata.service.cache.core import PLACE, ImageCache, Source
from imagedata.service.cache.fill import ImageFacts

__all__ = ["PLACE", "ImageCache", "ImageFacts", "Source"]
