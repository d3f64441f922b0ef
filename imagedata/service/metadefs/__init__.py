"""Metadata definitions ("metadefs"): namespaces of property definitions, objects and tags that
describe what metadata a resource type (an image, a flavor, a volume) may carry. User interfaces
such as Horizon's "Update Metadata" dialog build their forms from them.

``documents`` holds the JSON-schema documents (served and used for validation); ``access`` decides
who sees and changes what; one module per kind of thing; ``loader`` reads definition files.
"""
