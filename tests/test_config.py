"""Configuration: environment variables over an optional config file."""
import pytest

from consumer_api.config import Config


def test_environment_variables_with_units_in_their_names():
    config = Config.from_env({"CONSUMER_API_DATA_DIR": "/srv/d",
                              "CONSUMER_API_SEGMENT_BYTES": "1_048_576",
                              "CONSUMER_API_ACCESS_LOG": "false",
                              "CONSUMER_API_FLUSH_POLICY": "ALWAYS"})
    assert (config.data_dir, config.segment_bytes, config.access_log,
            config.flush_policy) == ("/srv/d", 1048576, False, "always")


def test_a_config_file_adds_settings_and_the_environment_wins(tmp_path):
    path = tmp_path / "consumer-api.yml"
    path.write_text("data_dir: /from/file\nretention_ms: 1000\nmax_sessions: 7\n")
    config = Config.from_env({"CONSUMER_API_CONFIG_FILE": str(path),
                              "CONSUMER_API_MAX_SESSIONS": "9"})
    assert (config.data_dir, config.retention_ms, config.max_sessions) == ("/from/file", 1000, 9)


@pytest.mark.parametrize("text,message", [
    ("colour: red\n", "unknown setting"),
    ("- a list\n", "expected a mapping"),
    ("segment_bytes: lots\n", "must be an integer"),
    ("log_format: xml\n", "log_format"),
])
def test_a_bad_config_file_is_refused_with_a_clear_message(tmp_path, text, message):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        Config.from_env({"CONSUMER_API_CONFIG_FILE": str(path)})


def test_a_bad_variable_names_itself():
    with pytest.raises(ValueError, match="CONSUMER_API_SEGMENT_BYTES"):
        Config.from_env({"CONSUMER_API_SEGMENT_BYTES": "big"})
