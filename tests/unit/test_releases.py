import pytest

from podku import releases
from podku.errors import UsageError
from podku.host import paths
from podku.releases import Release


def make(app="web", **overrides):
    values = dict(rev="a" * 40, image=f"localhost/podku/{app}:r1", description="Deploy aaaaaaa",
                  config={"A": "1"})
    values.update(overrides)
    return releases.new(app, **values)


def test_first_release_is_1_and_pending(home):
    release = make()
    assert release.id == 1
    assert release.outcome == releases.PENDING
    assert paths.AppPaths("web").release_record(1).exists()


def test_ids_count_up(home):
    assert [make().id for _ in range(3)] == [1, 2, 3]
    assert releases.next_id("web") == 4


def test_next_id_of_an_app_without_releases_is_1(home):
    assert releases.next_id("web") == 1


def test_next_id_follows_the_highest_id_not_the_count(home):
    release = make()
    releases.save(Release(app="web", id=9, rev="b", image="localhost/podku/web:r1", description="d"))
    assert release.id == 1
    assert releases.next_id("web") == 10


def test_all_of_lists_newest_first_numerically(home):
    for number in (1, 2, 10, 3):
        releases.save(Release(app="web", id=number, rev="r", image="localhost/podku/web:r1", description=f"v{number}"))
    assert [r.id for r in releases.all_of("web")] == [10, 3, 2, 1]


def test_all_of_ignores_other_files(home):
    make()
    directory = paths.AppPaths("web").releases
    (directory / "1.env").write_text("A=1\n")
    (directory / "notes.json").write_text("{}")
    assert [r.id for r in releases.all_of("web")] == [1]


def test_all_of_an_app_without_releases_is_empty(home):
    assert releases.all_of("web") == []


def test_apps_have_separate_numbering(home):
    make("one")
    make("one")
    assert make("two").id == 1


def test_load_round_trips_every_field(home):
    release = make(config={"A": "1", "B": "two words"}, app_json={"healthchecks": {"web": []}})
    assert releases.load("web", 1) == release


def test_new_copies_config_and_app_json(home):
    config = {"A": "1"}
    release = make(config=config)
    config["A"] = "changed"
    assert release.config == {"A": "1"}
    assert release.app_json == {}


def test_loading_a_missing_release_is_a_usage_error(home):
    with pytest.raises(UsageError, match="release 4 of web does not exist"):
        releases.load("web", 4)


def test_unit_and_container_names():
    release = Release(app="my-app", id=12, rev="r", image="localhost/podku/web:r1", description="d")
    assert release.unit == "my-app-r12"
    assert release.container == "podku-my-app-r12"


def test_image_tag():
    assert releases.image_tag("my-app", 3) == "localhost/podku/my-app:r3"


def test_with_outcome_is_a_copy(home):
    release = make()
    live = release.with_outcome(releases.LIVE)
    assert (release.outcome, live.outcome) == (releases.PENDING, releases.LIVE)
    releases.save(live)
    assert releases.load("web", 1).outcome == releases.LIVE


@pytest.mark.parametrize("outcome, served", [(releases.PENDING, False), (releases.FAILED, False),
                                             (releases.LIVE, True), (releases.DRAINING, True),
                                             (releases.RETIRED, True)])
def test_was_live(outcome, served):
    release = Release(app="a", id=1, rev="r", image="localhost/podku/web:r1", description="d", outcome=outcome)
    assert releases.was_live(release) is served


def test_a_socket_app_release_has_a_socket_and_a_service():
    release = Release(app="web", id=2, rev="r", image="localhost/podku/web:r1", description="d")
    assert release.port is None
    assert release.units == ["web-r2.socket", "web-r2.service"]
    assert release.app_unit == "web-r2.service"


def test_a_port_app_release_also_has_an_app_unit():
    release = Release(app="web", id=2, rev="r", image="localhost/podku/web:r1", description="d", port=8080)
    assert release.units == ["web-r2.socket", "web-r2.service", "web-r2-app.service"]
    assert release.app_unit == "web-r2-app.service"


def test_the_port_is_kept_in_the_record(home):
    release = make(port=5000)
    assert releases.load("web", release.id).port == 5000


def test_environment_file_has_the_config_and_who_the_release_is(home):
    release = releases.Release(app="web", id=3, rev="abc", image="localhost/podku/web:r1", description="d",
                               config={"B": "2", "A": "x y"})
    assert release.environment_file() == "A=x y\nB=2\nPODKU_APP=web\nPODKU_RELEASE=3\n"
    assert release.units == ["web-r3.socket", "web-r3.service"]
    bridged = releases.Release(app="web", id=3, rev="abc", image="localhost/podku/web:r1", description="d", port=8000)
    assert bridged.units[-1] == "web-r3-app.service"
