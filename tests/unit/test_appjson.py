"""app.json as pushed: every shape a pusher can send is parsed or refused in one line."""

import pytest

from podku import appjson
from podku.appjson import AppJsonInvalid


def test_a_normal_app_json_is_parsed():
    text = '{"name": "x", "healthchecks": {"web": [{"path": "/up", "attempts": 2}]}}'
    assert appjson.parse(text)["healthchecks"]["web"][0]["path"] == "/up"


@pytest.mark.parametrize("text, message", [
    ("[1]", "must be a JSON object, not list"),
    ('"x"', "must be a JSON object, not str"),
    ("null", "must be a JSON object, not NoneType"),
    ("{", "is not valid JSON"),
    ('{"healthchecks": {"web": {}}}', "healthchecks.web must be a list of objects"),
    ('{"healthchecks": {"web": [1]}}', "healthchecks.web must be a list of objects"),
    ('{"healthchecks": []}', "healthchecks must be an object"),
    ('{"healthchecks": {"web": [{"attempts": "5"}]}}', "attempts must be a whole number"),
    ('{"healthchecks": {"web": [{"path": 7}]}}', "path must be printable text"),
    ("[" * 100000 + "]" * 100000, "nested deeper than"),
    ('{"a":' * 50 + "1" + "}" * 50, "nested deeper than 20 levels"),
    ('{"a": "' + "x" * (2 * 1024 * 1024) + '"}', "larger than 1024 KiB"),
])
def test_app_json_of_the_wrong_shape_is_one_line(text, message):
    with pytest.raises(AppJsonInvalid, match=message) as error:
        appjson.parse(text)
    assert "\n" not in str(error.value)
