import pytest

from podku.host import unixhttp


def test_get_returns_status_and_body(http_socket):
    server = http_socket(status=200, body=b"hello\n")
    assert unixhttp.request(str(server.path), "GET", "/x?y=1") == (200, b"hello\n")
    request = server.requests[0]
    assert (request["method"], request["path"]) == ("GET", "/x?y=1")


def test_default_host_is_localhost_and_the_connection_is_closed(http_socket):
    server = http_socket()
    unixhttp.request(str(server.path), "GET", "/")
    headers = server.requests[0]["headers"]
    assert headers["Host"] == "localhost"
    assert headers["Connection"] == "close"


def test_host_header_is_sent(http_socket):
    server = http_socket()
    unixhttp.request(str(server.path), "GET", "/", host="my-app.example.com")
    assert server.requests[0]["headers"]["Host"] == "my-app.example.com"


def test_post_sends_body_and_headers(http_socket):
    server = http_socket(status=200, body=b"")
    status, body = unixhttp.request(str(server.path), "POST", "/load", body=b'{"a": 1}',
                                    headers={"Content-Type": "application/json"})
    assert (status, body) == (200, b"")
    request = server.requests[0]
    assert request["method"] == "POST"
    assert request["body"] == b'{"a": 1}'
    assert request["headers"]["Content-Type"] == "application/json"


@pytest.mark.parametrize("status", [404, 500, 503])
def test_error_statuses_are_returned_not_raised(http_socket, status):
    server = http_socket(status=status, body=b"nope")
    assert unixhttp.request(str(server.path), "GET", "/") == (status, b"nope")


def test_missing_socket_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        unixhttp.request(str(tmp_path / "nothing.sock"), "GET", "/", timeout=1)


def test_each_request_uses_a_new_connection(http_socket):
    server = http_socket()
    for _ in range(3):
        assert unixhttp.request(str(server.path), "GET", "/")[0] == 200
    assert len(server.requests) == 3


def test_a_huge_body_is_read_only_up_to_the_limit(http_socket):
    server = http_socket(status=200, body=b"x" * (unixhttp.MAX_BODY_BYTES * 4))
    status, body = unixhttp.request(str(server.path), "GET", "/")
    assert status == 200 and len(body) == unixhttp.MAX_BODY_BYTES
