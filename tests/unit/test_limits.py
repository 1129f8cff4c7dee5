import pytest

from podku.host import paths
from podku.image import limits


def test_defaults_fit_a_small_host(home):
    loaded = limits.load()
    assert (loaded.build_timeout, loaded.build_memory, loaded.build_tasks) == (1800, "768M", 512)
    assert loaded.push_max_bytes == 512 * 1024 * 1024


def test_the_limits_file_overrides_some(home):
    paths.CONFIG.mkdir(parents=True)
    (paths.CONFIG / "limits.json").write_text('{"build_timeout": 20, "build_memory": "1G"}')
    loaded = limits.load()
    assert (loaded.build_timeout, loaded.build_memory, loaded.build_tasks) == (20, "1G", 512)


@pytest.mark.parametrize("text", ['{"build_timeout": -1}', '{"build_timeout": "10"}', '{"bogus": 1}',
                                  '{"build_memory": "lots"}', "[1]", "{not json"])
def test_a_bad_limits_file_is_a_one_line_error(home, text):
    paths.CONFIG.mkdir(parents=True)
    (paths.CONFIG / "limits.json").write_text(text)
    with pytest.raises(limits.LimitsError) as refused:
        limits.load()
    assert "\n" not in str(refused.value)
