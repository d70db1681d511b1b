"""Error types that say what went wrong and where (file, config key, sample)."""


class PlugdetError(Exception):
    """Base class of every error plugdet raises on purpose."""


class ConfigError(PlugdetError, ValueError):
    """A config file, key or value is wrong; the message names the file or dotted key path."""


class PluginError(PlugdetError):
    """A plugin is broken: bad hook implementation, duplicate component name, crash on import."""


class DataError(PlugdetError, ValueError):
    """A dataset file or sample is unusable; the message names the file and the sample."""


class CheckpointError(PlugdetError):
    """A checkpoint cannot be written or does not fit the model it is loaded into."""


class ContractError(PluginError):
    """A component lacks a member of its stage's contract (:mod:`core.contracts`)."""
