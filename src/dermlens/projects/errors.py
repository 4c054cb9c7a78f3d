"""What can go wrong with a project request, in words a person can act on.

Each kind names its HTTP status for the web layer; the command line prints the message.
"""

from dermlens.errors import DermlensError


class ProjectError(DermlensError):
    """A request the project store refuses; ``code`` names the kind for API clients, ``status`` the
    HTTP status the web layer answers with."""

    code = "invalid_request"
    status = 422


class NotFound(ProjectError):
    code = "not_found"
    status = 404


class Conflict(ProjectError):
    """The request clashes with the store's state (a duplicate name, a job still running...)."""

    code = "conflict"
    status = 409


class Invalid(ProjectError):
    """The request itself is wrong (an unknown tag, too few images to train, a bad archive...)."""

    code = "invalid_request"


class Unauthorized(ProjectError):
    """A prediction call without the project's key (or with a wrong one)."""

    code = "unauthorized"
    status = 401
