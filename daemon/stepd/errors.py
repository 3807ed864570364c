"""Exceptions raised by stepd.

    StepdError                    root: everything stepd raises on purpose
    ├── ConfigError               the config file is missing, malformed or invalid
    ├── DefinitionError           a state machine definition cannot be loaded
    ├── StoreError                the database cannot be opened, read or written
    │   ├── StoreLocked           another process holds the database
    │   ├── StoreTooNew           the store was written by a newer stepd
    │   └── RecordError           a stored record cannot be read
    └── ApiError                  a control API request is refused (AWS error shape)
        ├── ExecutionAlreadyExists
        ├── ExecutionDoesNotExist
        ├── StateMachineDoesNotExist
        ├── InvalidName
        ├── InvalidArn
        ├── InvalidExecutionInput
        ├── InvalidToken
        ├── ValidationException
        ├── UnknownOperationException
        ├── SerializationException  the request body is not JSON
        └── ServiceUnavailable    the store cannot accept work right now (HTTP 503)

Each class's docstring is its default message.
"""

from __future__ import annotations


class StepdError(Exception):
    """stepd failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(StepdError):
    """The configuration is invalid."""


class DefinitionError(StepdError):
    """The state machine definition cannot be loaded."""

    def __init__(self, message: str | None = None, *, where: str = "") -> None:
        super().__init__(message)
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class StoreError(StepdError):
    """The database cannot be used."""


class StoreLocked(StoreError):
    """The database is in use by another stepd process."""


class StoreTooNew(StoreError):
    """The store was written by a newer stepd."""


class RecordError(StoreError):
    """A stored record cannot be read."""


class ApiError(StepdError):
    """The request was refused."""

    status = 400

    @property
    def aws_type(self) -> str:
        return type(self).__name__


class ExecutionAlreadyExists(ApiError):
    """Execution Already Exists."""


class ExecutionDoesNotExist(ApiError):
    """Execution Does Not Exist."""


class StateMachineDoesNotExist(ApiError):
    """State Machine Does Not Exist."""


class InvalidName(ApiError):
    """Invalid Name."""


class InvalidArn(ApiError):
    """Invalid Arn."""


class InvalidExecutionInput(ApiError):
    """Invalid execution input."""


class InvalidToken(ApiError):
    """Invalid Token."""


class ValidationException(ApiError):
    """The request is invalid."""


class UnknownOperationException(ApiError):
    """The operation is not supported."""


class SerializationException(ApiError):
    """The request body is not valid JSON."""


class ServiceUnavailable(ApiError):
    """The service cannot accept work right now."""

    status = 503
