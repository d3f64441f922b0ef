"""OpenStack's own conformance suite: Tempest 47.0.0's image API tests against imagedata in Keystone mode.

imagedata runs behind the session's real Keystone (``cloud``) as a second image service of its
own (catalog type ``image-tempest``, so the other Keystone tests keep theirs); Tempest makes its
projects and users through Keystone (dynamic credentials) and talks to imagedata over loopback.

The outcome is pinned: every test must pass except those in ``EXPECTED_FAILURES`` (each with why),
and the skipped ones must be exactly ``EXPECTED_SKIPS``. A listed failure that passes fails this
test too, so the list only shrinks. Glance's metadata definition files are loaded first, as
DevStack loads them into Glance (three metadef tests need a resource type to exist).
"""
from __future__ import annotations

import pytest

from tests.e2e.server import Server
from tests.helpers import skip_or_fail
from tests.keystone.keystone_server import REGION
from tests.keystone.tempest_run import TempestSetupError, Workspace, ensure_tempest_venv, skips_by_class, summary
from tests.metadefs.glance_files import GlanceFilesUnavailable, glance_metadefs_dir

CATALOG_TYPE = "image-tempest"
SELECTION = r"^tempest\.api\.image\."
# One worker: with two, the test Keystone (SQLite) answered 500 now and then to the concurrent
# user creations and deletions of the dynamic credentials (measured: 160 s with two workers).
CONCURRENCY = 1
# web-download is left out: Tempest's test of it needs qcow2 among its disk formats, and its
# listing test then uploads random bytes as qcow2, which imagedata's format checks refuse.
TEMPEST_IMPORT_METHODS = "glance-direct,copy-image"

# Tests expected to fail, each with why (none: every Tempest image test that runs passes).
EXPECTED_FAILURES: dict[str, str] = {}
# Skipped by Tempest itself, by class (under tempest.api.image.v2.): how many tests and Tempest's reason.
# Locations, store weights, glance-download and web-download (see TEMPEST_IMPORT_METHODS) are not
# offered; Nova and a second region's image service (the remote cache test) are not in this cloud; the legacy
# import task test is skipped upstream. glance-direct, copy-image, all_stores and deleting a copy
# from a store run (ImportImagesTest, ImportCopyImagesTest, MultiStores*).
EXPECTED_SKIPS = {
    ("admin.test_image_caching.ImageCachingTest", 1, "No image_remote service to test against"),
    ("admin.test_image_task.ImageTaskCreate", 1, "Skipped until bug: https://launchpad.net/bugs/2030527 is resolved."),
    ("admin.test_images.ImageLocationsAdminTest", 1,
     "ImageLocationsAdminTest skipped as show_multiple_locations is not available"),
    ("test_images.HashCalculationRemoteDeletionTest", 1,
     "HashCalculationRemoteDeletionTest skipped as http store is disabled"),
    ("test_images.ImportImagesTest", 4, "Server does not support glance-download import method"),
    ("test_images.ImportImagesTest", 1, "Server does not support web-download import method"),
    ("test_images.ImportImagesTest", 2, "No image_remote service to test against"),
    ("test_images_negative.ImportImagesNegativeTest", 1, "Server does not support web-download import method"),
    ("test_images.ImageLocationsTest", 7, "ImageLocationsTest skipped as show_multiple_locations is not available"),
    ("test_images.LocationImportTest", 2, "LocationImportTest skipped as Glance does not support v2.17"),
    ("test_images.MultistoreLocationImportTest", 2, "MultistoreLocationImportTest skipped as Glance does not support v2.17"),
    ("test_images.StoreWeightTest", 1, "StoreWeightTest skipped as store weight is not configured"),
    ("test_images_dependency.ImageDependencyTests", 2, "Nova is not available"),
    ("test_images_formats.ImagesFormatTest", 4, "Nova is not available"),
}


@pytest.fixture(scope="module")
def tempest_venv():
    try:
        return ensure_tempest_venv()
    except TempestSetupError as exc:
        skip_or_fail(f"the Tempest virtualenv cannot be built here: {exc}")


@pytest.fixture(scope="module")
def image_service(cloud, seaweedfs, tmp_path_factory):
    """A second imagedata behind the session's Keystone, in its catalog as ``image-tempest``.

    Its default store, ``s3``, is a SeaweedFS bucket with this host's image cache in front, as
    a cloud that caches runs it: Tempest's cache test queues an image and waits for its copy
    (the cache keeps copies of images in remote stores only). ``local`` and ``slow`` are the
    file stores the multi-store tests also copy into."""
    server = Server(tmp_path_factory.mktemp("imagedata-tempest"), IMAGEDATA_AUTH="keystone",
                    IMAGEDATA_KEYSTONE_CONFIG=cloud.config_path, GUNICORN_CMD_ARGS="--workers 2",
                    IMAGEDATA_IMPORT_METHODS=TEMPEST_IMPORT_METHODS, **seaweedfs.env())
    remote = seaweedfs.store_url(seaweedfs.make_bucket("tempest-images"), "images")
    # Tempest waits for an image's `stores` to equal the sorted list of the stores it asked for;
    # `stores` lists the copies in the order they were made (as Glance lists its locations),
    # and an all-stores import copies in the configured order: so the order is alphabetical.
    server.env.update(IMAGEDATA_STORES=f"local=file://{server.root}/stores/local,s3={remote},"
                                       f"slow=file://{server.root}/stores/slow",
                      IMAGEDATA_DEFAULT_STORE="s3", IMAGEDATA_CACHE_DIR=f"{server.root}/cache",
                      IMAGEDATA_CACHE_MAX_BYTES="1G")
    server.start()
    try:
        try:
            definitions = glance_metadefs_dir()
        except GlanceFilesUnavailable as exc:
            skip_or_fail(f"Glance's metadata definition files cannot be fetched here: {exc}")
        loaded = server.run_cli("metadefs", "load", definitions)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        cloud.identity.register_image_service(server.url, REGION, service_type=CATALOG_TYPE)
        yield server
    finally:
        server.stop()


def test_tempest_image_api(cloud, image_service, tempest_venv, tmp_path):
    workspace = Workspace(tmp_path, tempest_venv, cloud.keystone.auth_url, cloud.identity.admin_password, REGION,
                          CATALOG_TYPE, caching=True).write()
    results, elapsed = workspace.run(SELECTION, CONCURRENCY)
    print("\n" + summary(results, elapsed))
    assert len(results) > 90, f"Tempest ran {len(results)} tests; see {workspace.log()}"
    failed = {test_id for test_id, result in results.items() if result.status not in ("success", "skip")}
    unexpected = sorted(failed - set(EXPECTED_FAILURES))
    assert not unexpected, "Tempest tests failed:\n" + "\n\n".join(
        f"{test_id}:\n{results[test_id].details}" for test_id in unexpected) + f"\nKeystone:\n{cloud.keystone.log()}"
    passing = sorted(test_id for test_id in EXPECTED_FAILURES if results.get(test_id, None) is not None
                     and results[test_id].status == "success")
    assert not passing, f"these now pass: remove them from EXPECTED_FAILURES: {passing}"
    missing = sorted(set(EXPECTED_FAILURES) - set(results))
    assert not missing, f"EXPECTED_FAILURES names tests Tempest did not run: {missing}"
    assert skips_by_class(results) == EXPECTED_SKIPS
