"""Where the upload path imports the inspector from; the code lives in ``service/formats``."""
from imagedata.service.formats import FormatSniffer, check_format

__all__ = ["FormatSniffer", "check_format"]
