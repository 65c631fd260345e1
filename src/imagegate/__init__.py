"""imagegate: a self-hostable image-generation API gateway, and its Python client.

The package's top level is the client (``from imagegate import Client``); the server's parts
live in their own subpackages and are not imported here.
"""

__version__ = "0.1.0"

# The version is set first: the SDK's User-Agent reads it while this module is importing.
from imagegate.sdk import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncClient,
    AsyncTask,
    AuthenticationError,
    Client,
    ConflictError,
    ExpiredError,
    GoneError,
    ImagegateError,
    InsufficientCreditsError,
    Model,
    NotFoundError,
    RateLimitError,
    Task,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
)

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncTask",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "ExpiredError",
    "GoneError",
    "ImagegateError",
    "InsufficientCreditsError",
    "Model",
    "NotFoundError",
    "RateLimitError",
    "Task",
    "TaskFailedError",
    "TaskTimeoutError",
    "ValidationError",
    "__version__",
]
