"""Exceptions that carry a message meant for the user: the CLI prints them and exits non-zero."""


class EventIndexError(Exception):
    """Base of every error whose message is fit to show to a user as is."""


class MalformedDatasetName(EventIndexError, ValueError):
    """A dataset name does not follow the ATLAS nomenclature."""


class UnknownTrigger(EventIndexError, KeyError):
    """A trigger item or chain name is not in the menu."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ProducerError(EventIndexError):
    """A producer job refused its input; nothing was written or announced."""
