"""Who sees which namespace, and who may do what with it and its contents.

Glance answers 404 for a namespace the caller may not see (it does not exist for them), and 403
for one they see but may not change. Its contents have no visibility of their own.
"""
from __future__ import annotations

from peewee import Expression

from imagedata.errors import Forbidden, NotFound
from imagedata.models import MetadefNamespace
from imagedata.policy import Caller
from imagedata.service import Services


class NamespaceNotFound(NotFound):
    """No namespace of that name is visible to the caller."""

    def __init__(self, name: str):
        super().__init__(f"Metadata definition namespace={name} was not found.")


class Protected(Forbidden):
    """The namespace is protected: neither it nor its contents can be deleted."""

    def __init__(self, kind: str, name: str):
        super().__init__(f"Metadata definition {kind} {name} is protected and cannot be deleted.")


def visible_condition(caller: Caller) -> Expression | None:
    """The SQL condition of the namespaces ``caller`` sees (None: all of them)."""
    if caller.is_admin:
        return None
    shown = (MetadefNamespace.visibility == "public") | MetadefNamespace.owner.is_null()
    if caller.project_id is not None:
        shown |= MetadefNamespace.owner == caller.project_id
    return shown


def is_shown(svc: Services, caller: Caller, namespace: MetadefNamespace) -> bool:
    """Whether ``caller`` may see ``namespace`` at all (visibility, then the get rule)."""
    return svc.policy.allows_metadef("get_metadef_namespace", caller, namespace)


def find_namespace(svc: Services, caller: Caller, name: str, rule: str = "get_metadef_namespace",
                   *rules: str) -> MetadefNamespace:
    """The namespace called ``name`` if ``caller`` passes ``rule`` (and ``rules``) for it.

    404 when it does not exist or the caller may not see it; 403 when they see it but fail a rule.
    """
    namespace = MetadefNamespace.get_or_none(MetadefNamespace.namespace == name)
    if namespace is None or not is_shown(svc, caller, namespace):
        raise NamespaceNotFound(name)
    for needed in (rule, *rules):
        enforce(svc, caller, needed, namespace)
    return namespace


def enforce(svc: Services, caller: Caller, rule: str, namespace: MetadefNamespace | None = None) -> None:
    """403 unless ``caller`` passes ``rule`` (for ``namespace``, or their own project)."""
    if not svc.policy.allows_metadef(rule, caller, namespace):
        raise Forbidden(f"You are not authorized to complete {rule} action.")


def refuse_if_protected(namespace: MetadefNamespace, kind: str = "namespace", name: str | None = None) -> None:
    """403 when ``namespace`` is protected: deleting it or any of its contents is refused."""
    if namespace.protected:
        raise Protected(kind, name if name is not None else namespace.namespace)
