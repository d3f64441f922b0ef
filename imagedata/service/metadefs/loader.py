"""Loading definition files (Glance's format: one namespace per JSON file) into the database.

Every file is read and checked before anything is written, and all of them are written in one
transaction: a bad file changes nothing. Loading again updates: a namespace named by a file gets
the file's attributes, and each association, object, property and tag in the file is created or
replaced. With ``replace``, what the namespace holds that the file does not name is removed, so the
namespace ends exactly as the file describes it.
"""
from __future__ import annotations

import dataclasses
import json
import os

from imagedata.db import write_transaction
from imagedata.errors import ImageDataError
from imagedata.models import MetadefAssociation, MetadefNamespace, MetadefObject, MetadefProperty, MetadefTag, utcnow
from imagedata.service.metadefs import contents
from imagedata.service.metadefs.validate import check_body, check_name, property_definition
from imagedata.storable import check_json

DEFAULT_OWNER = "admin"  # Glance's loader gives this owner to files that name none
MAX_FILE = 4 << 20


class LoadError(Exception):
    """A definition file cannot be loaded (the message names it)."""


@dataclasses.dataclass
class Loaded:
    """What loading one file did."""

    namespace: str
    created: bool
    counts: dict
    removed: int = 0


def read_definitions(folder: str) -> list[tuple[str, dict]]:
    """(path, namespace body) of every ``*.json`` file in ``folder``, by name, all checked."""
    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(".json"))
    except OSError as exc:
        raise LoadError(f"{folder}: {exc.strerror}") from None
    found, seen = [], {}
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        body = _read(path)
        if body["namespace"] in seen:
            raise LoadError(f"{path}: namespace {body['namespace']!r} is also defined by {seen[body['namespace']]}")
        seen[body["namespace"]] = path
        found.append((path, body))
    if not found:
        raise LoadError(f"{folder}: no definition files (*.json) found")
    return found


def _read(path: str) -> dict:
    """One file's namespace body, checked as the API checks a POST of it."""
    try:
        if os.path.getsize(path) > MAX_FILE:
            raise LoadError(f"{path}: larger than {MAX_FILE} bytes")
        with open(path, encoding="utf-8") as handle:
            body = json.load(handle)
    except (OSError, ValueError, RecursionError) as exc:
        raise LoadError(f"{path}: not a readable JSON file: {exc}") from None
    try:
        check_json(body)
        check_name("namespace", check_body("namespace", body)["namespace"])
        contents.check_contents(body)
    except ImageDataError as exc:
        raise LoadError(f"{path}: {exc.message}") from None
    for key, what in (("resource_type_associations", "resource type"), ("objects", "object"), ("tags", "tag")):
        names = [item["name"] for item in body.get(key) or ()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise LoadError(f"{path}: {what} {twice[0]!r} is listed twice")
    return body


def load_definitions(folder: str, owner: str = DEFAULT_OWNER, replace: bool = False) -> list[Loaded]:
    """Load every file of ``folder`` (see the module's docstring); LoadError names a bad file."""
    bodies = read_definitions(folder)
    with write_transaction():
        done = []
        for path, body in bodies:
            try:
                done.append(_load(body, owner, replace))
            except ImageDataError as exc:  # a name the database refuses: nothing is kept
                raise LoadError(f"{path}: {exc.message}") from None
        return done


def _load(body: dict, owner: str, replace: bool) -> Loaded:
    values = {"display_name": body.get("display_name"), "description": body.get("description"),
              "visibility": body.get("visibility") or "private", "protected": bool(body.get("protected")),
              "owner": body.get("owner") or owner}
    counts = {key: len(body.get(key) or ()) for key in ("resource_type_associations", "objects", "properties",
                                                        "tags")}
    namespace = MetadefNamespace.get_or_none(MetadefNamespace.namespace == body["namespace"])
    if namespace is None:
        contents.write_contents(MetadefNamespace.create(namespace=body["namespace"], **values), body)
        return Loaded(body["namespace"], True, counts)
    MetadefNamespace.update(**values, updated_at=utcnow()).where(MetadefNamespace.id == namespace.id).execute()
    removed = _merge(namespace, body, replace)
    return Loaded(body["namespace"], False, counts, removed)


def _merge(namespace: MetadefNamespace, body: dict, replace: bool) -> int:
    """Create or replace each item of ``body`` in ``namespace``; with ``replace``, remove the others."""
    now = utcnow()
    kept_types = []
    for item in body.get("resource_type_associations") or ():
        resource_type = contents.resource_type_named(item["name"])
        kept_types.append(resource_type.id)
        fields = {"prefix": item.get("prefix"), "properties_target": item.get("properties_target")}
        if not MetadefAssociation.update(**fields, updated_at=now).where(
                (MetadefAssociation.namespace == namespace.id)
                & (MetadefAssociation.resource_type == resource_type.id)).execute():
            MetadefAssociation.create(namespace=namespace, resource_type=resource_type, **fields)
    for item in body.get("objects") or ():
        fields = contents.object_fields(item)
        if not MetadefObject.update(**fields, updated_at=now).where(
                (MetadefObject.namespace == namespace.id) & (MetadefObject.name == item["name"])).execute():
            MetadefObject.create(namespace=namespace, **fields)
    for name, definition in (body.get("properties") or {}).items():
        text = json.dumps(property_definition(definition, nested=False))
        if not MetadefProperty.update(definition=text, updated_at=now).where(
                (MetadefProperty.namespace == namespace.id) & (MetadefProperty.name == name)).execute():
            MetadefProperty.create(namespace=namespace, name=name, definition=text)
    tags = [item["name"] for item in body.get("tags") or ()]
    have = {tag.name for tag in MetadefTag.select(MetadefTag.name).where(MetadefTag.namespace == namespace.id)}
    contents.add_tags(namespace, [name for name in tags if name not in have])
    if not replace:
        return 0
    return sum(model.delete().where((model.namespace == namespace.id) & condition).execute()
               for model, condition in (
                   (MetadefAssociation, MetadefAssociation.resource_type.not_in(kept_types)),
                   (MetadefObject, MetadefObject.name.not_in([item["name"] for item in body.get("objects") or ()])),
                   (MetadefProperty, MetadefProperty.name.not_in(list(body.get("properties") or {}))),
                   (MetadefTag, MetadefTag.name.not_in(tags))))
