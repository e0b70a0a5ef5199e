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


def test_words_and_booleans_parse_the_same_from_the_file_and_the_environment(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("flush_policy: Always\nlog_format: JSON\naccess_log: 'off'\n"
                    "default_assignor: RoundRobin\n")
    from_file = Config.from_env({"CONSUMER_API_CONFIG_FILE": str(path)})
    from_env = Config.from_env({"CONSUMER_API_FLUSH_POLICY": "Always",
                                "CONSUMER_API_LOG_FORMAT": "JSON",
                                "CONSUMER_API_ACCESS_LOG": "off",
                                "CONSUMER_API_DEFAULT_ASSIGNOR": "RoundRobin"})
    assert from_file == from_env
    assert (from_file.flush_policy, from_file.log_format, from_file.access_log,
            from_file.default_assignor) == ("always", "json", False, "roundrobin")


def test_yaml_typed_values_are_taken_as_they_are(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("access_log: false\nmax_sessions: 12\n")
    config = Config.from_env({"CONSUMER_API_CONFIG_FILE": str(path)})
    assert (config.access_log, config.max_sessions) == (False, 12)


@pytest.mark.parametrize("raw", ["maybe", "", "2", "nope"])
def test_an_unparseable_boolean_is_an_error_naming_the_setting(raw):
    with pytest.raises(ValueError, match="CONSUMER_API_ACCESS_LOG must be true or false"):
        Config.from_env({"CONSUMER_API_ACCESS_LOG": raw})


@pytest.mark.parametrize("text,message", [
    ("access_log: 3\n", "access_log must be true or false"),
    ("max_sessions: true\n", "max_sessions must be an integer"),
    ("data_dir: 7\n", "data_dir must be text"),
])
def test_a_value_of_the_wrong_type_in_the_file_names_the_setting(tmp_path, text, message):
    path = tmp_path / "c.yml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        Config.from_env({"CONSUMER_API_CONFIG_FILE": str(path)})


@pytest.mark.parametrize("name,value", [("CONSUMER_API_DEFAULT_ASSIGNOR", "cooperative"),
                                        ("CONSUMER_API_BACKEND", "kafka-ish"),
                                        ("CONSUMER_API_FLUSH_POLICY", "sometimes")])
def test_a_word_that_is_not_one_of_its_settings_words_names_the_setting(name, value):
    with pytest.raises(ValueError, match=name):
        Config.from_env({name: value})


def test_check_settings_reads_the_keys_file_and_proxies_too(tmp_path):
    from consumer_api.app import check_settings
    assert check_settings({"CONSUMER_API_DATA_DIR": str(tmp_path)}).data_dir == str(tmp_path)
    with pytest.raises(ValueError, match="CONSUMER_API_TRUSTED_PROXIES"):
        check_settings({"CONSUMER_API_TRUSTED_PROXIES": "10.0.0.300"})
    with pytest.raises(ValueError, match="keys"):
        check_settings({"CONSUMER_API_API_KEYS_FILE": str(tmp_path / "missing.yml")})


def test_the_kafka_store_needs_its_cluster_and_a_json_object_of_client_settings():
    from consumer_api.app import check_settings
    with pytest.raises(ValueError, match="CONSUMER_API_KAFKA_BOOTSTRAP_SERVERS"):
        Config.from_env({"CONSUMER_API_BACKEND": "kafka"})
    base = {"CONSUMER_API_BACKEND": "kafka", "CONSUMER_API_KAFKA_BOOTSTRAP_SERVERS": "k:9092"}
    for bad in ("{not json", "[1, 2]"):
        with pytest.raises(ValueError, match="CONSUMER_API_KAFKA_CONFIG"):
            check_settings({**base, "CONSUMER_API_KAFKA_CONFIG": bad})
    from consumer_api.backends import kafka_client_config, session_cap
    config = check_settings({**base, "CONSUMER_API_KAFKA_CONFIG": '{"client.rack": "r1"}'})
    assert kafka_client_config(config) == {"client.rack": "r1", "bootstrap.servers": "k:9092"}
    assert session_cap(config) == 200 and session_cap(Config()) == 10_000


@pytest.mark.parametrize("node", ["a.b", "x" * 33, "ä", "a/b"])
def test_a_node_id_is_a_short_name_that_cannot_hold_the_separator(node):
    with pytest.raises(ValueError, match="CONSUMER_API_NODE_ID"):
        Config.from_env({"CONSUMER_API_NODE_ID": node})
    assert Config.from_env({"CONSUMER_API_NODE_ID": "node-1_a"}).node_id == "node-1_a"


def test_where_sessions_are_saved_depends_on_the_store_and_the_node():
    from consumer_api.backends import sessions_path
    kafka = {"backend": "kafka", "kafka_bootstrap_servers": "k:9092"}
    assert sessions_path(Config(data_dir="/d")) == "/d/internal/sessions.jsonl"
    assert sessions_path(Config(data_dir="/d", node_id="n1")) == "/d/internal/sessions.n1.jsonl"
    assert sessions_path(Config(data_dir="/d", sessions_dir="/s")) == "/s/sessions.jsonl"
    assert sessions_path(Config(**kafka)) is None  # a Kafka node needs no directory
    assert sessions_path(Config(**kafka, sessions_dir="/s", node_id="n2")) == \
        "/s/sessions.n2.jsonl"
    assert sessions_path(Config(data_dir="/d", persist_sessions=False)) is None
    config = Config.from_env({"CONSUMER_API_PERSIST_SESSIONS": "off",
                              "CONSUMER_API_SESSIONS_SAVE_INTERVAL_MS": "250"})
    assert (config.persist_sessions, config.sessions_save_interval_ms) == (False, 250)
    with pytest.raises(ValueError, match="sessions_save_interval_ms"):
        Config(sessions_save_interval_ms=0)
