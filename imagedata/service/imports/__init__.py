"""Interoperable import: staging, import tasks and the copies they make."""
