"""Schema version 4: the metadata-definition tables, frozen as that version created them.

A migration step must not use the live models (they may change in a later version, which then
has its own step), so the tables are described again here. tests/test_migrations.py checks that
an upgraded database ends with exactly the schema the models create.
"""
from __future__ import annotations

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, Model, TextField

from imagedata.db import database


def _stamps() -> dict:
    return {"created_at": DateTimeField(), "updated_at": DateTimeField()}


def _table(name: str, fields: dict, indexes: tuple = ()) -> type[Model]:
    """A model class for one table of version 4 (peewee's default name: the class name, lower case)."""
    meta = type("Meta", (), {"database": database, "indexes": indexes})
    return type(name, (Model,), {"__module__": __name__, "Meta": meta, **fields, **_stamps()})


def metadef_tables() -> list[type[Model]]:
    """The six tables of version 4, parents first."""
    namespace = _table("MetadefNamespace", {
        "namespace": CharField(max_length=80, unique=True), "display_name": CharField(max_length=80, null=True),
        "description": TextField(null=True), "visibility": CharField(max_length=16),
        "protected": BooleanField(), "owner": CharField(max_length=255, null=True, index=True)})
    resource_type = _table("MetadefResourceType", {"name": CharField(max_length=80, unique=True)})
    unique_name = ((("namespace", "name"), True),)
    return [
        namespace, resource_type,
        _table("MetadefAssociation", {
            "namespace": ForeignKeyField(namespace, on_delete="CASCADE"),
            "resource_type": ForeignKeyField(resource_type, index=True),
            "prefix": CharField(max_length=80, null=True), "properties_target": CharField(max_length=80, null=True)},
            ((("namespace", "resource_type"), True),)),
        _table("MetadefObject", {
            "namespace": ForeignKeyField(namespace, on_delete="CASCADE"), "name": CharField(max_length=80),
            "description": TextField(null=True), "required": TextField(), "properties": TextField()}, unique_name),
        _table("MetadefProperty", {
            "namespace": ForeignKeyField(namespace, on_delete="CASCADE"), "name": CharField(max_length=80),
            "definition": TextField()}, unique_name),
        _table("MetadefTag", {
            "namespace": ForeignKeyField(namespace, on_delete="CASCADE"), "name": CharField(max_length=80)},
            unique_name),
    ]


class CreateTables:
    """A migration operation that creates tables (playhouse.migrate runs anything with ``run``)."""

    def __init__(self, tables):
        self.tables = tables

    def run(self) -> None:
        """Create the tables and their indexes."""
        database.create_tables(self.tables)


def add_metadefs(migrator) -> list:
    """Version 4: the metadata-definition tables (namespaces and what they hold)."""
    return [CreateTables(metadef_tables())]
