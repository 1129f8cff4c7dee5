import pytest

from podku import apps, health
from podku.errors import UsageError
from podku.host import paths


def test_a_new_app_has_default_checks_and_no_live_release():
    app = apps.App(name="web")
    assert app.live_release is None
    assert app.keep_images == apps.DEFAULT_KEEP_IMAGES
    assert app.health_checks == health.Checks()


def test_save_and_load_round_trip(home):
    app = apps.App(name="web", live_release=3, checks=health.Checks(attempts=2).to_dict())
    apps.save(app)
    assert apps.load("web") == app
    assert apps.load("web").health_checks.attempts == 2
    assert paths.AppPaths("web").record == paths.APPS / "web" / "app.json"


def test_exists(home):
    assert not apps.exists("web")
    apps.save(apps.App(name="web"))
    assert apps.exists("web")


def test_all_names_is_sorted_and_only_lists_apps_with_a_record(home):
    assert apps.all_names() == []
    for name in ("zeta", "alpha", "mid"):
        apps.save(apps.App(name=name))
    (paths.APPS / "half-created").mkdir()
    assert apps.all_names() == ["alpha", "mid", "zeta"]


def test_loading_a_missing_app_is_a_usage_error(home):
    with pytest.raises(UsageError, match="app web does not exist"):
        apps.load("web")


@pytest.mark.parametrize("name", ["../x", "a/b", "Bad"])
def test_load_validates_the_name_first(home, name):
    with pytest.raises(UsageError, match="invalid app name"):
        apps.load(name)


def test_config_of_an_app_without_config_is_empty(home):
    assert apps.config("web") == {}


def test_config_round_trip(home):
    apps.save_config("web", {"A": "1", "URL": "postgres://x/y?a=b"})
    assert apps.config("web") == {"A": "1", "URL": "postgres://x/y?a=b"}
    apps.save_config("web", {})
    assert apps.config("web") == {}


def test_updated_is_a_copy():
    app = apps.App(name="web")
    live = app.updated(live_release=2)
    assert (app.live_release, live.live_release) == (None, 2)
    assert live.name == "web"


def test_lock_holds_the_app_lock_file(home):
    apps.save(apps.App(name="web"))
    with apps.lock("web"):
        assert paths.AppPaths("web").lock.exists()


def test_locking_a_missing_app_is_refused_and_leaves_nothing(home):
    with pytest.raises(UsageError, match="does not exist"):
        with apps.lock("ghost"):
            pass
    assert not paths.AppPaths("ghost").root.exists()


def test_remove_state_forgets_record_repo_and_stable_socket(home):
    app = apps.App(name="web")
    apps.save(app)
    apps.save_config("web", {"A": "1"})
    app.paths.repo.mkdir(parents=True)
    paths.STABLE_SOCKETS.mkdir(parents=True)
    app.paths.stable_socket.symlink_to(app.paths.release_socket(1))
    apps.save(apps.App(name="other"))

    apps.remove_state("web")

    assert not app.paths.root.exists()
    assert not app.paths.repo.exists()
    assert not app.paths.stable_socket.is_symlink()
    assert apps.all_names() == ["other"]


def test_remove_state_of_a_missing_app_is_harmless(home):
    apps.remove_state("web")
