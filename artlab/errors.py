"""Exceptions with messages a curator can act on. The CLI prints them as one line; pages show them with st.error."""


class ArtlabError(Exception):
    """Base class: a user-facing problem (bad input, missing file), never a bug."""


class ImageError(ArtlabError):
    """A file that is not a readable image, or one too large to open safely."""


class CollectionError(ArtlabError):
    """A collection folder or manifest that does not follow the contract."""


class RunError(ArtlabError):
    """A run folder that is missing, incomplete, or does not match its weights."""


class ConfigError(ArtlabError):
    """A configuration value that makes no sense (unknown backbone, bad ratio...)."""


class DownloadError(ArtlabError):
    """A remote source that could not be reached or answered badly after retries."""
