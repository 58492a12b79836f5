"""Errors the workflow reports to users as one clear message (no traceback)."""


class ConfigError(ValueError):
    """Bad user input: names the config key, file or value at fault."""


class DataError(ValueError):
    """A dataset file is missing, malformed or does not match its checksum."""
