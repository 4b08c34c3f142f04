"""What the host offers every plugin besides HTTP: config, secrets, the time, logging."""

import json

from ._wit import host as _host
from ._wit import types

_LEVELS = {
    "trace": types.Level.TRACE,
    "debug": types.Level.DEBUG,
    "info": types.Level.INFO,
    "warn": types.Level.WARN,
    "error": types.Level.ERROR,
}


class ConfigError(ValueError):
    """The plugin's config or secrets are not what it needs. Raised out of a channel's
    `deliver` it fails the delivery with this message; out of a transform it is a
    transform error that is not retried."""


def config():
    """This plugin's `config` from the routes file, parsed into a dict (`{}` when none)."""
    try:
        value = json.loads(_host.config())
    except ValueError as e:
        raise ConfigError(f"invalid plugin config: {e}") from None
    return value


def config_value(name, default=...):
    """One key of the config; a ConfigError naming it when it is missing and there is no
    default."""
    value = config().get(name, default)
    if value is ...:
        raise ConfigError(f"invalid plugin config: `{name}` is required")
    return value


def secret(name):
    """The value of a secret the routes file grants this plugin, or None when it is not
    granted or not set."""
    return _host.secret(name)


def require_secret(name):
    """The value of a secret; a ConfigError naming it when it is not granted or not set."""
    value = _host.secret(name)
    if value is None:
        raise ConfigError(f"secret {name} is not set")
    return value


def now_ms():
    """The host's current time, in milliseconds since the Unix epoch."""
    return _host.now()


def now_secs():
    """The host's current time, in whole seconds since the Unix epoch."""
    return _host.now() // 1000


def log(level, message, *args):
    """Writes a line to the host's log at `level` ("trace", "debug", "info", "warn" or
    "error"); the host tags it with the plugin's name. `message % args` when args are given,
    as the logging module does."""
    if args:
        message = message % args
    _host.log(_LEVELS[level] if isinstance(level, str) else level, str(message))


def trace(message, *args):
    """Logs at trace level."""
    log(types.Level.TRACE, message, *args)


def debug(message, *args):
    """Logs at debug level."""
    log(types.Level.DEBUG, message, *args)


def info(message, *args):
    """Logs at info level."""
    log(types.Level.INFO, message, *args)


def warn(message, *args):
    """Logs at warn level."""
    log(types.Level.WARN, message, *args)


warning = warn


def error(message, *args):
    """Logs at error level."""
    log(types.Level.ERROR, message, *args)
