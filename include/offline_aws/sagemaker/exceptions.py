"""SageMaker errors as AWS names them, carrying the HTTP status the wire layer must answer."""

from __future__ import annotations


class SageMakerError(Exception):
    """An AWS error: ``code`` becomes ``__type`` on the wire, ``message`` the message."""

    code = "InternalFailure"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class ValidationException(SageMakerError):
    code = "ValidationException"
    status = 400


class ResourceNotFound(SageMakerError):
    code = "ResourceNotFound"
    status = 400


class ResourceLimitExceeded(SageMakerError):
    code = "ResourceLimitExceeded"
    status = 400


class SerializationException(SageMakerError):
    code = "SerializationException"
    status = 400


class UnknownOperationException(SageMakerError):
    code = "UnknownOperationException"
    status = 400
