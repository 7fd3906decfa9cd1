"""One exception type for every mistake a user can fix, so entry points can print it cleanly."""


class PromptRecError(Exception):
    """A problem with the user's input (config, data, model path): the message names the fix."""


class ConfigError(PromptRecError):
    """A config value is wrong; the message names the field, the bad value and what is allowed."""


class DataError(PromptRecError):
    """A data file is missing or malformed; the message names the file and the fix."""
