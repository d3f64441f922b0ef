"""Finding Glance through Keystone: credentials as every OpenStack tool takes them, the image
endpoint from the catalog (openstacksdk's configuration, keystoneauth's session)."""
from __future__ import annotations

from imagedata.service.migrate.source import GlanceSource, SourceError


def image_endpoint(session, interface: str | None = None, region: str | None = None) -> str:
    """The catalog's image endpoint for ``interface`` (public by default) and ``region``."""
    try:
        url = session.get_endpoint(service_type="image", interface=interface or "public", region_name=region)
    except Exception as exc:  # keystoneauth's errors: no catalog, refused credentials, unreachable
        raise SourceError(f"could not read the image endpoint from the Keystone catalog: {exc}") from None
    if not url:
        raise SourceError(f"the Keystone catalog has no {interface or 'public'} image endpoint"
                          + (f" in region {region}" if region else ""))
    return url


def source_from_keystone(cloud: str | None, chunk_size: int = 1 << 20) -> GlanceSource:
    """A GlanceSource for ``--os-cloud NAME`` (clouds.yaml) or, with None, the OS_* environment."""
    try:
        import openstack.config
    except ImportError:
        raise SourceError("Keystone credentials need openstacksdk: pip install 'imagedata[glance-migrate]', "
                          "or pass --glance-url and --glance-token") from None
    try:
        config = openstack.config.OpenStackConfig().get_one(cloud=cloud)
        session = config.get_session()
        override = config.get_endpoint("image")
        url = override or image_endpoint(session, config.get_interface("image"), config.get_region_name("image"))
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"the OpenStack credentials ({'cloud ' + cloud if cloud else 'OS_* environment'}) "
                          f"could not be used: {exc}") from None
    return GlanceSource(url, session.get_token, chunk_size)
