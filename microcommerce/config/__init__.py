"""Settings: command-line flags > environment variables > TOML file > defaults."""

from microcommerce.config.settings import (
    SERVICE_NAMES,
    ConfigError,
    Settings,
    load_settings,
)

__all__ = ["SERVICE_NAMES", "ConfigError", "Settings", "load_settings"]
