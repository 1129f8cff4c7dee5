import subprocess

import pytest

from podku import apps, deploy, releases
from podku.errors import UsageError
from podku.host import podman as podman_module
from podku.releases import FAILED, LIVE, PENDING, RETIRED, Release


@pytest.fixture
def images(monkeypatch):
    """Which images `podman image exists` finds; no podman is run."""
    present = set()

    def fake_run(argv, check=True, **kwargs):
        assert argv[:3] == ["podman", "image", "exists"]
        return subprocess.CompletedProcess(argv, 0 if argv[3] in present else 1, "")

    monkeypatch.setattr(podman_module, "run", fake_run)
    return present


def save_releases(*outcomes):
    for number, outcome in enumerate(outcomes, start=1):
        releases.save(Release(app="web", id=number, rev=f"rev{number}",
                              image=f"localhost/podku/web:r{number}", description="d", outcome=outcome))


def test_default_target_is_the_newest_earlier_release_that_served(home, images):
    save_releases(RETIRED, FAILED, RETIRED, FAILED, LIVE)
    images.update({"localhost/podku/web:r1", "localhost/podku/web:r3"})
    target = deploy.rollback_target(apps.App(name="web", live_release=5), None)
    assert target.id == 3


def test_a_named_release_is_the_target(home, images):
    save_releases(RETIRED, RETIRED, LIVE)
    images.add("localhost/podku/web:r1")
    assert deploy.rollback_target(apps.App(name="web", live_release=3), 1).id == 1


def test_an_app_never_deployed_cannot_roll_back(home, images):
    with pytest.raises(UsageError, match="has not been deployed yet"):
        deploy.rollback_target(apps.App(name="web"), None)


def test_without_an_earlier_served_release_there_is_no_target(home, images):
    save_releases(FAILED, PENDING, LIVE)
    with pytest.raises(UsageError, match="no earlier release"):
        deploy.rollback_target(apps.App(name="web", live_release=3), None)


def test_a_release_that_never_served_is_refused(home, images):
    save_releases(FAILED, LIVE)
    with pytest.raises(UsageError, match=r"release 1 of web never served \(failed\)"):
        deploy.rollback_target(apps.App(name="web", live_release=2), 1)


def test_the_live_release_is_refused(home, images):
    save_releases(RETIRED, LIVE)
    with pytest.raises(UsageError, match="release 2 is already live"):
        deploy.rollback_target(apps.App(name="web", live_release=2), 2)


def test_a_missing_release_is_refused(home, images):
    save_releases(LIVE)
    with pytest.raises(UsageError, match="release 7 of web does not exist"):
        deploy.rollback_target(apps.App(name="web", live_release=1), 7)


def test_a_pruned_image_is_refused(home, images):
    save_releases(RETIRED, LIVE)
    with pytest.raises(UsageError, match="image of release 1 was pruned"):
        deploy.rollback_target(apps.App(name="web", live_release=2), None)
