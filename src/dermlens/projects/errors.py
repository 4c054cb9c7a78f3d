"""What can go wrong with a project request, in words a person can act on.

The web layer maps each kind to a status code (404, 409, 422); the command line prints the message.
"""

from dermlens.errors import DermlensError


class ProjectError(DermlensError):
    """A request the project store refuses; ``code`` names the kind for API clients."""

    code = "invalid_request"


class NotFound(ProjectError):
    code = "not_found"


class Conflict(ProjectError):
    """The request clashes with the store's state (a duplicate name, a job still running...)."""

    code = "conflict"


class Invalid(ProjectError):
    """The request itself is wrong (an unknown tag, too few images to train, a bad archive...)."""

    code = "invalid_request"


class Unauthorized(ProjectError):
    """A prediction call without the project's key (or with a wrong one)."""

    code = "unauthorized"
