"""The metadata definitions API (/v2/metadefs/...) and its schema documents (/v2/schemas/metadefs/...)."""
from __future__ import annotations

from imagedata.api.metadefs import contents, namespaces, schemas, tags

BLUEPRINTS = (schemas.bp, namespaces.bp, contents.bp, tags.bp)
