"""Exceptions raised by stepd: one tree, rooted at StepdError.

    StepdError                        root: everything stepd raises on purpose
    ├── ConfigError                   the config file is missing, malformed or invalid
    ├── DefinitionError               a state machine definition cannot be loaded
    │   └── DuplicateKeyError         a JSON object names a key twice (the loader says where)
    ├── StateError                    a state cannot complete; `error` is the ASL error name
    │   ├── StatesRuntimeError        States.Runtime: never retried, never caught
    │   │   ├── PathError             a path has no results
    │   │   ├── IntrinsicError        an intrinsic function failed (AWS reports States.Runtime)
    │   │   └── ParseError            the definition holds something the parsers refuse
    │   ├── ResultPathMatchError      States.ResultPathMatchFailure: ResultPath cannot be applied
    │   ├── InvalidPayload            a lambda:invoke Payload string that is not JSON text
    │   └── QueryEvaluationError      States.QueryEvaluationError: a JSONata expression failed
    ├── InvalidTimestampError         a value is not an RFC 3339 timestamp
    │   └── TimestampRangeError       RFC 3339, but outside the years 0001 to 9999 in UTC
    ├── TransportError                a Task call got no answer; `kind` names the failure
    │   ├── TransportTimeout          connecting or reading took longer than allowed
    │   └── UnsupportedUrl            the URL cannot be called at all (not http or https)
    ├── StoreError                    the database cannot be opened, read or written
    │   ├── StoreLocked               another process holds the database
    │   ├── StoreNotFound             there is no store at the path (nothing to back up)
    │   ├── StoreTooNew               the store was written by a newer stepd
    │   ├── RecordError               a stored record cannot be read
    │   └── WriteGroupFailed          a write of a group failed; the group was rolled back
    ├── ControlError                  the daemon's control socket cannot be used
    ├── InputError                    a command line argument names input that cannot be read
    ├── ApiClientError                the API refused a client's request; `aws_type` says why
    ├── SignInError                   a browser's sign-in to the web pages is refused
    │   ├── SessionRefused            a session cookie is malformed, forged, expired or revoked
    │   └── SignInRefused             a sign-in form is refused; `status` and `reason` say why
    └── ApiError                      a control API request is refused (AWS error shape)
        ├── ExecutionAlreadyExists
        ├── ExecutionDoesNotExist
        ├── ExecutionNotRedrivable    RedriveExecution of an execution AWS would not redrive
        ├── ExecutionNotRunning       Stepd.UpdateExecution of an execution that has closed
        ├── StateMachineDoesNotExist
        ├── InvalidName
        ├── InvalidArn
        ├── InvalidExecutionInput
        ├── InvalidToken              a paging token, or a task token, that stepd did not make
        ├── InvalidOutput             SendTaskSuccess: the output is not JSON (or too large)
        ├── TaskDoesNotExist          a task token's execution is not there
        ├── TaskTimedOut              a task token's task already closed (or timed out)
        ├── InvalidDefinition         TestState: the definition cannot be run
        ├── ResourceNotFound          an alias, map run or tagged resource that is not there
        ├── TooManyTags               TagResource would leave a resource over 50 tags
        ├── ActivityDoesNotExist      no activity of that ARN (CreateActivity makes one)
        ├── StateMachineTypeNotSupported  StartSyncExecution of a STANDARD machine
        ├── ValidationException
        ├── UnknownOperationException
        ├── SerializationException    the request body is not JSON
        ├── ServiceUnavailable        the store cannot accept work right now (HTTP 503)
        └── AuthError                 the request is not authenticated (Signature Version 4)
            ├── MissingAuthenticationTokenException  no Authorization header (HTTP 403)
            ├── IncompleteSignatureException         not SigV4, or a part of it is malformed
            ├── UnrecognizedClientException          an access key id not configured
            ├── InvalidSignatureException            the signature, scope or date is wrong
            └── AccessDeniedException                refused on loopback (HTTP 403)

Each class's docstring is its default message. A StateError's message is the `Cause` the
execution reports. Errors of other libraries are wrapped where stepd meets them, with
``raise ... from``.
"""

from __future__ import annotations

from typing import Final

from stepd.asl.failures import (
    STATES_QUERY_EVALUATION_ERROR,
    STATES_RESULT_PATH_MATCH_FAILURE,
    STATES_RUNTIME,
)

INVALID_DEFINITION: Final = "The definition is invalid: "  # how the cause of a ParseError begins


class StepdError(Exception):
    """stepd failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(StepdError):
    """The configuration is invalid."""

    def __init__(self, message: str | None = None, *, where: str = "") -> None:
        super().__init__(message)
        self.where = where  # the file or environment variable at fault, when the message omits it

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


# -- definitions and states ----------------------------------------------------------------


class DefinitionError(StepdError):
    """The state machine definition cannot be loaded."""

    def __init__(self, message: str | None = None, *, where: str = "") -> None:
        super().__init__(message)
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class DuplicateKeyError(DefinitionError):
    """A JSON object names a key more than once."""

    def __init__(self, key: str, *, is_state: bool) -> None:
        super().__init__(f'duplicate key "{key}"')
        self.key = key
        self.is_state = is_state  # both values look like states: a duplicate state name


class StateError(StepdError):
    """The state failed."""

    error = STATES_RUNTIME


class InvalidPayload(StateError):
    """The Payload of a lambda:invoke Task is a string that is not JSON text (AWS Lambda
    refuses it)."""

    error = "Lambda.InvalidRequestContentException"


class StatesRuntimeError(StateError):
    """The state machine could not run the state."""

    error = STATES_RUNTIME


class MapRunNotStarted(StatesRuntimeError):
    """A DISTRIBUTED Map state's run could not start (its tolerated failures could not be
    read): AWS records the state's MapStateStarted, of `items` items, before the failure."""

    def __init__(self, message: str, items: int) -> None:
        super().__init__(message)
        self.items = items


class PathError(StatesRuntimeError):
    """A path has no results."""


class IntrinsicError(StatesRuntimeError):
    """An intrinsic function failed."""


class ParseError(StatesRuntimeError):
    """A path, intrinsic call, timestamp or Choice operand in the definition cannot be parsed.

    `stepd check` calls the same parsers, so only a definition that skipped it fails this way.
    `problem` says what is wrong (check reports it as is); the message, which becomes the
    execution's cause, starts with INVALID_DEFINITION.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(INVALID_DEFINITION + problem)
        self.problem = problem


class ItemReaderNotRun(StateError):
    """A Map state reads its items with an ItemReader (an S3 object or listing), which stepd
    does not run."""

    error = "States.ItemReaderFailed"


class ResultPathMatchError(StateError):
    """The ResultPath cannot be applied to the state's input."""

    error = STATES_RESULT_PATH_MATCH_FAILURE


class QueryEvaluationError(StateError):
    """A JSONata expression failed, or its value cannot be used where it is written."""

    error = STATES_QUERY_EVALUATION_ERROR


class InvalidTimestampError(StepdError):
    """The value is not an RFC 3339 timestamp."""


class TimestampRangeError(InvalidTimestampError):
    """The timestamp is RFC 3339 but outside the years 0001 to 9999 in UTC."""


# -- task calls ----------------------------------------------------------------------------


class TransportError(StepdError):
    """The call got no answer. `kind` names the failure (ConnectError, ReadError, ...)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class TransportTimeout(TransportError):
    """Connecting or reading took longer than allowed."""


class UnsupportedUrl(TransportError):
    """The URL cannot be called at all (not http or https)."""


class HttpTaskError(StepdError):
    """An HTTP Task's Parameters do not make a request (a forbidden header, an unknown
    Method, a ConnectionArn no connection is configured for): the task fails with
    States.Runtime and this message as its cause."""


# -- the store -----------------------------------------------------------------------------


class StoreError(StepdError):
    """The database cannot be used."""


class StoreLocked(StoreError):
    """The database is in use by another stepd process."""


class StoreNotFound(StoreError):
    """There is no store at the path."""


class StoreTooNew(StoreError):
    """The store was written by a newer stepd."""


class StoreUnreachable(StoreError):
    """The database cannot be reached right now (down, starting up, its network): worth
    waiting for."""


class StoppedBeforeReady(StepdError):
    """The daemon was told to stop while it waited for its store at start: not a failure."""


class StoreDamaged(ConfigError):
    """The store's file is not a database stepd can read (damaged, or another file): starting
    again cannot mend it; a person restores it from a backup."""


class StoreRefused(ConfigError):
    """The database server refused this node (its password, role or database, or the
    server's access rules): retrying cannot mend it, a person must."""


class ConnectionLost(StoreError):
    """The connection to the database broke while it was in use (the database restarted, or
    the network dropped it): what was sent may or may not have been applied."""


class ClaimLost(StoreError):
    """A node's write was refused: another node holds the execution, or this node's lease
    ran out (it was cut off from the database, and others may have taken its work)."""


class NotLeased(StepdError):
    """A node whose lease was not renewed recently sends nothing: another node may take its
    work at any moment."""


class RecordError(StoreError):
    """A stored record cannot be read."""


class WriteGroupFailed(StoreError):
    """A write of a group failed; the group was rolled back.

    Raised and caught inside the SQLite store's writer thread, which then runs the group's
    writes again one by one, so that only the failed write fails.
    """


# -- the daemon's control socket and the API's client --------------------------------------


class ControlError(StepdError):
    """The daemon's control socket cannot be used."""


class InputError(StepdError):
    """The input named on the command line cannot be read."""


class ApiClientError(StepdError):
    """The API refused the request."""

    def __init__(self, aws_type: str, message: str) -> None:
        super().__init__(f"{aws_type}: {message}")
        self.aws_type = aws_type


# -- browsers signed in to the web pages ---------------------------------------------------


class SignInError(StepdError):
    """The sign-in is refused."""


class SessionRefused(SignInError):
    """The session is not valid."""


class SignInRefused(SignInError):
    """The sign-in is refused.

    `status` is the HTTP status of the answer and `reason` a stable word for the log
    (cross-site, csrf, wrong-key-pair, throttled); the message is shown to the person.
    """

    def __init__(
        self, message: str | None = None, *, status: int, reason: str, retry_after: int = 0
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after  # seconds, for a throttled sign-in


# -- the API's refusals, as AWS shapes them ------------------------------------------------


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


class ExecutionNotRedrivable(ApiError):
    """Execution is not redrivable."""


class ExecutionNotRunning(ApiError):
    """Execution is not running."""


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


class InvalidOutput(ApiError):
    """Invalid Output."""


class TaskDoesNotExist(ApiError):
    """Task Does Not Exist."""


class TaskTimedOut(ApiError):
    """Task Timed Out."""


class InvalidDefinition(ApiError):
    """Invalid State Machine Definition."""


class ResourceNotFound(ApiError):
    """Resource not found."""


class TooManyTags(ApiError):
    """Too many tags."""


class ActivityDoesNotExist(ApiError):
    """Activity Does Not Exist."""


class StateMachineTypeNotSupported(ApiError):
    """State machine type is not supported."""


class ValidationException(ApiError):
    """The request is invalid."""


class UnknownOperationException(ApiError):
    """The operation is not supported."""


class SerializationException(ApiError):
    """The request body is not valid JSON."""


class ServiceUnavailable(ApiError):
    """The service cannot accept work right now."""

    status = 503


class AuthError(ApiError):
    """The request is not authenticated."""


class MissingAuthenticationTokenException(AuthError):
    """Request is missing Authentication Token"""

    status = 403


class IncompleteSignatureException(AuthError):
    """The request signature does not conform to AWS standards."""


class UnrecognizedClientException(AuthError):
    """The security token included in the request is invalid."""


class InvalidSignatureException(AuthError):
    """The request signature we calculated does not match the signature you provided. Check your
    AWS Secret Access Key and signing method. Consult the service documentation for details."""


class AccessDeniedException(AuthError):
    """Access is denied."""

    status = 403
