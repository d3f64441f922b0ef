"""The `imagedata` command line."""
