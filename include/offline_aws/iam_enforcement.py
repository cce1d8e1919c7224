"""IAM enforcement for the offline AWS (opt-in: ``enforce_iam=True``, ``--enforce-iam`` or
``OFFLINE_AWS_ENFORCE_IAM=1``): every request is signed by a known IAM identity and allowed by its
policies, or refused with AWS's AccessDenied message.

Who decides:

- moto's own access control (``moto.core.authorization``) for what moto serves and we do not
  describe (IAM, STS, CloudFormation, …): switched on for the whole process while an enforcing
  emulator runs (moto's switch is process-wide).
- This module for SageMaker and SageMaker Runtime (ours), and for S3, CloudWatch and CloudWatch
  Logs, which moto serves but authorizes too loosely for a least-privilege proof: moto passes
  ``*`` as the resource of CloudWatch and Logs calls, names HeadBucket ``s3:HeadBucket`` (AWS
  authorizes it as ``s3:ListBucket``), evaluates no condition but StringEquals, without context
  values, and treats an Allow statement whose condition fails as an explicit Deny. Requests decided
  here are not decided again by moto.

Reused from moto: the access key → IAM user / assumed role lookup and its attached, inline and
group policies (``create_access_key``, ``collect_policies``), the SigV4 signature check
(``IAMRequest`` / ``S3IAMRequest``) and policy documents (``IAMPolicy``). Ours, as the IAM
documentation states them (moto matches wildcards as regular expressions and actions
case-sensitively): the Action/Resource matching (``*`` and ``?`` the only wildcards, every other
character literal; action names case-insensitive, resources case-sensitive, an ARN matched per
colon-separated component), the condition operators and context keys (``aws:RequestTag/…``,
``aws:ResourceTag/…``, ``aws:TagKeys``, ``iam:PassedToService``, ``s3:prefix``, …) and the evaluation
order (explicit Deny, then any Allow, else implicit deny). Not evaluated: resource-based policies
(bucket policies such as the template's ``aws:SecureTransport`` deny), permission boundaries, SCPs
and session policies; only identity-based policies decide here.

The emulator's own calls (our SageMaker reading S3, writing logs) are signed by a service
identity created at start with an allow-all policy; ``Emulator.env()`` hands out the same
identity, so the operator can set up users and stacks, and a test gives Airflow another user's keys.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from werkzeug.datastructures import EnvironHeaders

ENFORCE_IAM_ENV = "OFFLINE_AWS_ENFORCE_IAM"
SERVICE_USER = "offline-aws-service"
ALLOW_ALL = json.dumps({"Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})

Context = dict[str, "str | list[str]"]


@dataclass(frozen=True)
class AuthRequest:
    """One authorization a request needs: an IAM action on a resource ARN, with its condition context."""

    action: str
    resource: str
    context: Context = field(default_factory=dict)
    role: str | None = None  # evaluated against this IAM role's policies (a service acting as it), not the caller's


class AccessDenied(Exception):
    """A request its caller's policies do not allow; the message is AWS's."""

    def __init__(self, principal: str, request: AuthRequest | None, reason: str = ""):
        self.principal, self.request = principal, request
        if request is None:
            message = reason
        else:
            why = reason or f"because no identity-based policy allows the {request.action} action"
            message = (f"User: {principal} is not authorized to perform: {request.action} "
                       f"on resource: {request.resource} {why}")
        super().__init__(message)
        self.message = message


def enabled_by_env(environ: dict[str, str]) -> bool:
    return environ.get(ENFORCE_IAM_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# --- condition evaluation ---------------------------------------------------------------------------


def _values(value) -> list[str]:
    if value is None:
        return []
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in (value if isinstance(value, list) else [value])]


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's matching: ``*`` any run of characters, ``?`` one character, every other character literal."""
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


def arn_match(pattern: str, arn: str) -> bool:
    """An ARN pattern (Resource element, ArnLike): each of the six colon-separated components matched
    on its own, so a wildcard does not reach across ``arn:partition:service:region:account:``."""
    if pattern == "*":
        return True
    want, have = pattern.split(":", 5), arn.split(":", 5)
    if len(want) != 6 or len(have) != 6:
        return wildcard_match(pattern, arn)
    return all(wildcard_match(w, h) for w, h in zip(want, have, strict=True))


def action_match(pattern: str, action: str) -> bool:
    """Action names are case-insensitive in IAM (``S3:getobject`` is ``s3:GetObject``)."""
    return wildcard_match(pattern, action, ignore_case=True)


_NUMERIC = {"NumericEquals": float.__eq__, "NumericNotEquals": float.__eq__, "NumericLessThan": float.__lt__,
            "NumericLessThanEquals": float.__le__, "NumericGreaterThan": float.__gt__,
            "NumericGreaterThanEquals": float.__ge__}


def _match_one(base: str, have: str, want: str) -> bool:
    if base in ("StringEquals", "StringNotEquals", "ArnEquals", "ArnNotEquals"):
        return have == want
    if base == "Bool":
        return have.lower() == want.lower()
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return have.lower() == want.lower()
    if base in ("StringLike", "StringNotLike"):
        return wildcard_match(want, have)
    if base in ("ArnLike", "ArnNotLike"):
        return arn_match(want, have)
    if base in _NUMERIC:
        try:
            return _NUMERIC[base](float(have), float(want))
        except ValueError:  # not a number: no match
            return False
    raise ValueError(f"condition operator {base} is not supported by the offline emulator")


def _condition_holds(operator: str, key: str, wanted, context: Context) -> bool:
    """One ``{operator: {key: values}}`` entry of a statement's Condition, as IAM evaluates it."""
    present = {k.lower(): v for k, v in context.items()}
    have = _values(present.get(key.lower())) if key.lower() in present else None
    wanted = _values(wanted)
    qualifier, _, base = operator.rpartition(":")
    if base == "Null":
        return (have is None) == (wanted[0].lower() == "true")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    negated = "Not" in base
    if have is None:
        return if_exists or (negated and qualifier != "ForAnyValue") or qualifier == "ForAllValues"
    # A negated operator holds for a request value that matches none of the wanted values.
    hits = [any(_match_one(base, h, w) for w in wanted) != negated for h in have]
    if qualifier == "ForAllValues":
        return all(hits)
    return any(hits)


def conditions_hold(condition: dict | None, context: Context) -> bool:
    return all(_condition_holds(op, key, wanted, context)
               for op, entries in (condition or {}).items() for key, wanted in entries.items())


# --- policies -------------------------------------------------------------------------------------


def _element(statement: dict, name: str) -> list[str]:
    value = statement.get(name, [])
    return [value] if isinstance(value, str) else list(value)


def _statement_applies(statement: dict, request: AuthRequest) -> bool:
    if "NotAction" in statement:
        if any(action_match(p, request.action) for p in _element(statement, "NotAction")):
            return False
    elif not any(action_match(p, request.action) for p in _element(statement, "Action")):
        return False
    if "NotResource" in statement:
        if any(arn_match(p, request.resource) for p in _element(statement, "NotResource")):
            return False
    elif not any(arn_match(p, request.resource) for p in _element(statement, "Resource")):
        return False
    return conditions_hold(statement.get("Condition"), request.context)


def statements(policies: list) -> list[dict]:
    """The statements of moto's policy objects (managed, inline user/group/role policies)."""
    from moto.iam.access_control import IAMPolicy

    out = []
    for policy in policies:
        if isinstance(policy, dict) and "policy_document" not in policy:  # a role's inline document
            policy = json.dumps(policy)
        if isinstance(policy, str):  # moto keeps a role's inline policy from CloudFormation as repr(dict)
            try:
                json.loads(policy)
            except ValueError:
                policy = json.dumps(ast.literal_eval(policy))
        document = IAMPolicy(policy)._policy_json
        found = document["Statement"]
        out += found if isinstance(found, list) else [found]
    return out


def decide(policy_statements: list[dict], request: AuthRequest) -> tuple[bool, list[str]]:
    """(allowed, Sids of the Allow statements that allow it); an explicit Deny wins."""
    allowing = []
    for statement in policy_statements:
        if not _statement_applies(statement, request):
            continue
        if statement.get("Effect") == "Deny":
            return False, []
        allowing.append(statement.get("Sid", ""))
    return bool(allowing), allowing


# --- identities -----------------------------------------------------------------------------------


@dataclass
class Caller:
    arn: str
    statements: list[dict]


class IamEnforcer:
    """Authenticates a request (moto's key lookup and signature check) and authorizes its AuthRequests."""

    def __init__(self, account_id: str, partition: str = "aws"):
        self.account_id, self.partition = account_id, partition
        self.decisions: list[dict] = []  # (caller, action, resource, allowed, Sids), for tests and the admin state
        self._lock = threading.Lock()
        self.service_keys = self._service_identity()

    def _service_identity(self) -> tuple[str, str]:
        from moto.iam.models import iam_backends

        iam = iam_backends[self.account_id][self.partition]
        if SERVICE_USER not in iam.users:
            iam.create_user("global", SERVICE_USER)
            iam.put_user_policy(SERVICE_USER, "allow-all", ALLOW_ALL)
        keys = [k for k in iam.users[SERVICE_USER].access_keys if k.status == "Active"]
        key = keys[0] if keys else iam.create_access_key(SERVICE_USER)
        return key.access_key_id, key.secret_access_key

    def caller(self, environ: dict, body: bytes, service: str) -> Caller:
        """Who signed this request, after checking the signature; AccessDenied otherwise."""
        from moto.core.exceptions import ServiceException
        from moto.iam.access_control import IAMRequest, S3IAMRequest
        from werkzeug.exceptions import HTTPException

        headers = EnvironHeaders(environ)
        if "Credential=" not in headers.get("Authorization", ""):
            raise AccessDenied("anonymous", None, "Request is missing Authentication Token")
        path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        cls = S3IAMRequest if service == "s3" else IAMRequest
        try:
            signed = cls(account_id=self.account_id, method=environ.get("REQUEST_METHOD", "GET"), path=path,
                         data={}, body=body, headers=headers, action="Authenticate")
            signed.check_signature()
        except (HTTPException, ServiceException) as exc:
            raise AccessDenied("unknown", None, _moto_message(exc)) from None
        access_key = signed._access_key
        return Caller(access_key.arn, statements(access_key.collect_policies()))

    def role(self, arn: str) -> Caller:
        """A role as its own principal (inline and attached policies); no policies if it does not exist."""
        from moto.iam.access_control import AssumedRoleAccessKey
        from moto.iam.models import iam_backends

        backend = iam_backends[self.account_id][self.partition]
        try:
            name = backend.get_role_by_arn(arn).name
        except Exception:  # NoSuchEntity: nothing allows it
            return Caller(arn, [])
        holder = AssumedRoleAccessKey.__new__(AssumedRoleAccessKey)  # moto's policy collection for a role
        holder.account_id, holder.partition, holder._owner_role_name = self.account_id, self.partition, name
        return Caller(arn, statements(holder.collect_policies()))

    def authorize(self, caller: Caller, requests: list[AuthRequest]) -> None:
        """Raise AccessDenied for the first request the caller's (or its named role's) policies do not allow."""
        for request in requests:
            principal = caller if request.role is None else self.role(request.role)
            allowed, sids = decide(principal.statements, request)
            with self._lock:
                self.decisions.append({"caller": principal.arn, "on_behalf_of": caller.arn, "action": request.action,
                                       "resource": request.resource, "allowed": allowed, "sids": sids})
            if not allowed:
                raise AccessDenied(principal.arn, request)


def _moto_message(exc: Exception) -> str:
    for attribute in ("message", "description"):
        text = getattr(exc, attribute, None)
        if isinstance(text, str) and text:
            if "<Message>" in text:
                return text.split("<Message>", 1)[1].split("</Message>", 1)[0]
            return text
    return str(exc)


# --- moto's own access control, for what this module does not decide --------------------------------

_decided = threading.local()
_switch_lock = threading.Lock()
_enforcing = 0
_saved: dict = {}


@contextmanager
def decided_here() -> Iterator[None]:
    """Within: moto does not authorize the request again (this module already did)."""
    _decided.flag = True
    try:
        yield
    finally:
        _decided.flag = False


def moto_access_control_on() -> None:
    """Switch moto's access control on (process-wide; counted, so emulators may nest)."""
    global _enforcing
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    with _switch_lock:
        _enforcing += 1
        if _enforcing > 1:
            return
        original = ActionAuthenticatorMixin._authenticate_and_authorize_action

        def authorize_unless_decided(self, iam_request_cls, resource="*"):
            if getattr(_decided, "flag", False):
                return None
            return original(self, iam_request_cls, resource)

        _saved.update(count=settings.INITIAL_NO_AUTH_ACTION_COUNT, method=original)
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize_unless_decided


def moto_access_control_off() -> None:
    global _enforcing
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    with _switch_lock:
        if _enforcing == 0:
            return
        _enforcing -= 1
        if _enforcing:
            return
        settings.INITIAL_NO_AUTH_ACTION_COUNT = _saved["count"]
        ActionAuthenticatorMixin._authenticate_and_authorize_action = _saved["method"]
