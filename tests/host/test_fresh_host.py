"""Tests that need a pristine host of their own: install from nothing, reboot."""

import testhost

HELLO = "hello.podku.localhost"


def test_install_deploys_the_example_and_apps_come_back_after_a_reboot(fresh_host, tmp_path):
    installed = fresh_host.install("--example")
    assert "Deploying the example app" in installed.stdout
    assert fresh_host.http_get(HELLO) == (200, "Hello from podku (release 1)\n")

    port_app = testhost.AppRepo(tmp_path / "portapp", fresh_host, "portapp")
    port_app.deploy("port-before-reboot", expose=8000)
    assert fresh_host.http_get("portapp.podku.localhost") == (200, "port-before-reboot r1")

    fresh_host.reboot()
    assert fresh_host.http_get(HELLO) == (200, "Hello from podku (release 1)\n")
    assert fresh_host.http_get("portapp.podku.localhost") == (200, "port-before-reboot r1")
    status = fresh_host.as_deploy_user("systemctl --user is-active hello.service podku-caddy.service").stdout
    assert status.split() == ["active", "active"]
