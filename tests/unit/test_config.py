"""Settings: flags > env > TOML > defaults, and one clear line naming a bad setting."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from microcommerce.config import ConfigError, Settings, load_settings

SECRET = "a-secret-of-32-characters-long!!"


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mc.toml"
    path.write_text(text)
    return path


def config_error(**kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)
    message = str(info.value)
    assert "\n" not in message, "a config error is one line"
    return message


# -- layering -----------------------------------------------------------------------------


def test_defaults_without_any_source():
    settings = load_settings(flags={}, env={})
    assert settings.rate_limit_max == 120
    assert settings.port_of("gateway") == 3000 and settings.port_of("audit") == 3009
    assert settings.password_hash_cost >= 10  # production-grade default cost
    assert settings.bus_url == "local"


def test_toml_overrides_defaults(tmp_path):
    path = write_toml(tmp_path, "rate_limit_max = 7\nworkers = 3\n")
    settings = load_settings(flags={}, env={}, config_file=path)
    assert (settings.rate_limit_max, settings.workers) == (7, 3)


def test_env_overrides_toml(tmp_path):
    path = write_toml(tmp_path, "rate_limit_max = 7\nworkers = 3\n")
    settings = load_settings(flags={}, env={"RATE_LIMIT_MAX": "9"}, config_file=path)
    assert settings.rate_limit_max == 9
    assert settings.workers == 3  # not in env: the file still counts


def test_flags_override_env_and_toml(tmp_path):
    path = write_toml(tmp_path, "rate_limit_max = 7\n")
    settings = load_settings(flags={"rate_limit_max": 11}, env={"RATE_LIMIT_MAX": "9"}, config_file=path)
    assert settings.rate_limit_max == 11


def test_a_flag_left_unset_does_not_hide_lower_layers():
    settings = load_settings(flags={"rate_limit_max": None, "host": None}, env={"RATE_LIMIT_MAX": "9"})
    assert settings.rate_limit_max == 9
    assert settings.host == "127.0.0.1"


def test_empty_env_value_counts_as_unset():
    assert load_settings(flags={}, env={"RATE_LIMIT_MAX": ""}).rate_limit_max == 120


def test_per_service_maps_merge_entry_by_entry(tmp_path):
    path = write_toml(tmp_path, "[ports]\ncart = 4002\nuser = 4001\n[timeouts_ms]\norder = 900\n")
    settings = load_settings(flags={"ports": {"user": 5001}}, env={"CART_PORT": "6002", "ORDER_PORT": "6003"},
                             config_file=path)
    assert settings.port_of("user") == 5001  # flag
    assert settings.port_of("cart") == 6002  # env beats file
    assert settings.port_of("order") == 6003  # env only
    assert settings.port_of("gateway") == 3000  # default
    assert settings.timeout_of("order") == 0.9
    assert settings.timeout_of("cart") == settings.request_timeout_ms / 1000


def test_service_urls_from_env_and_default_from_host_and_port():
    settings = load_settings(flags={}, env={"CART_SERVICE_URL": "http://cart:8080", "HOST": "0.0.0.0",
                                            "PROFILE": "production",
                                            "ORDER_PORT": "4003"})
    assert settings.url_of("cart") == "http://cart:8080"
    assert settings.url_of("order") == "http://0.0.0.0:4003"


def test_config_file_from_env_variable(tmp_path):
    path = write_toml(tmp_path, "workers = 5\n")
    assert load_settings(flags={}, env={"MICROCOMMERCE_CONFIG": str(path)}).workers == 5


def test_list_settings_from_comma_separated_env():
    settings = load_settings(flags={}, env={"NOTIFICATION_CHANNELS": "email, push",
                                            "CORS_ORIGINS": "https://a.example,https://b.example"})
    assert settings.notification_channels == ["email", "push"]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


def test_booleans_and_floats_from_env():
    settings = load_settings(flags={}, env={"EPHEMERAL": "true", "SUPERVISOR_WINDOW_S": "2.5",
                                            "ACCESS_LOG": "false"})
    assert settings.ephemeral is True and settings.access_log is False
    assert settings.supervisor_window_s == 2.5


def test_database_url_per_service():
    assert load_settings(flags={"database_url": "mysql://root@db:3306/mc_{service}"}, env={}) \
        .database_url_of("cart") == "mysql://root@db:3306/mc_cart"
    file_based = load_settings(flags={"data_dir": "/tmp/mc"}, env={}).database_url_of("user")
    assert file_based == "sqlite:////tmp/mc/user.db"
    memory = load_settings(flags={"ephemeral": True}, env={}).database_url_of("user")
    assert memory.startswith("sqlite://memory/user-")


def test_secrets_are_generated_when_not_configured_and_kept_when_given():
    a, b = load_settings(flags={}, env={}), load_settings(flags={}, env={})
    assert len(a.jwt_secret) >= 32 and a.jwt_secret != b.jwt_secret
    assert a.internal_token and a.internal_token != b.internal_token
    assert load_settings(flags={}, env={"JWT_SECRET": SECRET}).jwt_secret == SECRET


# -- bad values: one line naming the setting -----------------------------------------------


def test_non_numeric_rate_limit_names_the_env_variable():
    message = config_error(flags={}, env={"RATE_LIMIT_MAX": "abc"})
    assert message.startswith("RATE_LIMIT_MAX:")
    assert "int" in message


def test_bad_per_service_port_names_the_variable():
    message = config_error(flags={}, env={"CART_PORT": "x"})
    assert message.startswith("CART_PORT:")
    assert "'x'" in message


def test_out_of_range_port_is_refused():
    assert config_error(flags={}, env={"USER_PORT": "70000"}).startswith("USER_PORT:")


def test_unknown_toml_key_is_named(tmp_path):
    path = write_toml(tmp_path, "workers = 2\nrate_limit_maxx = 5\n")
    message = config_error(flags={}, env={}, config_file=path)
    assert "rate_limit_maxx" in message
    assert "unknown" in message


def test_unknown_service_in_a_toml_map_is_named(tmp_path):
    path = write_toml(tmp_path, "[ports]\nbasket = 4000\n")
    assert config_error(flags={}, env={}, config_file=path).startswith("BASKET:")


def test_wrong_type_in_toml_is_named(tmp_path):
    path = write_toml(tmp_path, 'workers = "many"\n')
    assert config_error(flags={}, env={}, config_file=path).startswith("WORKERS:")


def test_invalid_toml_and_missing_file(tmp_path):
    path = write_toml(tmp_path, "workers = = 2\n")
    assert "not valid TOML" in config_error(flags={}, env={}, config_file=path)
    assert "file not found" in config_error(flags={}, env={}, config_file=tmp_path / "absent.toml")


def test_short_jwt_secret_is_refused():
    message = config_error(flags={}, env={"JWT_SECRET": "too-short"})
    assert message == "JWT_SECRET: must be at least 16 characters"


@pytest.mark.parametrize(("env", "setting"), [
    ({"WORKERS": "0"}, "WORKERS"),
    ({"RATE_LIMIT_WINDOW_MS": "-1"}, "RATE_LIMIT_WINDOW_MS"),
    ({"PASSWORD_HASH_COST": "3"}, "PASSWORD_HASH_COST"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ({"NOTIFICATION_CHANNELS": "email,pigeon"}, "NOTIFICATION_CHANNELS"),
    ({"CART_SERVICE_URL": "cart:3002"}, "CART_SERVICE_URL"),
    ({"ORDER_TIMEOUT_MS": "soon"}, "ORDER_TIMEOUT_MS"),
    ({"SUPERVISOR_WINDOW_S": "long"}, "SUPERVISOR_WINDOW_S"),
])
def test_each_bad_value_names_its_setting(env, setting):
    assert config_error(flags={}, env=env).startswith(f"{setting}:")


def test_settings_struct_refuses_unknown_fields():
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"no_such_setting": 1}, Settings)


@pytest.mark.parametrize(("raw", "expected"), [("yes", True), ("ON", True), ("1", True), ("true", True),
                                               ("no", False), ("off", False), ("0", False), ("False", False)])
def test_boolean_env_vars_take_the_usual_words(raw, expected):
    assert load_settings(env={"EPHEMERAL": raw}).ephemeral is expected


def test_a_boolean_env_var_with_another_word_is_one_line_naming_it():
    with pytest.raises(ConfigError, match=r"^EPHEMERAL: expected bool"):
        load_settings(env={"EPHEMERAL": "maybe"})
