"""The one error type for bad or missing input data."""


class DataError(ValueError):
    """Bad or missing input data; the message names the file at fault."""
