"""Every name podku gives a thing on the host parses back to what made it, and a parser
never takes another app's name, a foreign image or a crafted string for one of podku's."""

import pytest

from podku import naming


def test_containers_and_images_round_trip():
    assert naming.parse_container(naming.container("shop", 12)) == ("shop", 12)
    assert naming.parse_image(naming.image("shop", 12)) == ("shop", 12)
    assert naming.image("shop", 12) == "localhost/podku/shop:r12"
    assert naming.container("shop", 12) == "podku-shop-r12"


@pytest.mark.parametrize("tag", ["localhost/x:1", "localhost/podku/python:3.11", "localhost/podku/../x:r1",
                                 "localhost/podku/shop:r12\n", "docker.io/podku/shop:r1", "localhost/podku/Shop:r1",
                                 "localhost/podku/shop:r", "localhost/podku/-shop:r1"])
def test_foreign_or_crafted_images_are_not_releases(tag):
    assert naming.parse_image(tag) is None


@pytest.mark.parametrize("name", ["podku-shop", "podku-shop-rx", "shop-r1", "podku-shop-r1;id", "podku--r1",
                                  "podku-shop-run-abcd1234", "podku-shop-cron-1"])
def test_only_release_containers_parse(name):
    assert naming.parse_container(name) is None


def test_unit_patterns_match_their_own_app_only():
    assert naming.process_unit_pattern("web").fullmatch(naming.process_unit("web", 3, "worker", 2)).groups() == \
        ("3", "worker", "2")
    assert not naming.process_unit_pattern("web").fullmatch(naming.process_unit("web-x", 3, "worker", 2))
    assert naming.cron_unit_pattern("web").fullmatch(naming.cron_unit("web", 4, "timer"))
    assert not naming.cron_unit_pattern("web").fullmatch(naming.cron_unit("web-cron", 4, "timer"))
    assert naming.release_socket_pattern("web").fullmatch(naming.release_unit("web", 7) + ".socket")
    assert not naming.release_socket_pattern("web").fullmatch(naming.release_unit("webx", 7) + ".socket")


def test_stable_sockets_name_their_app():
    assert naming.parse_stable_socket_file(naming.stable_socket_file("shop")) == "shop"
    assert naming.parse_stable_socket_file("../shop.sock") is None
    assert naming.parse_stable_socket_file("shop.sock.new") is None
