"""The emulator's identity-policy evaluation against cases whose answer the IAM documentation states.

Each row: statements, a request (action, resource, context), AWS's answer and where the IAM User
Guide says so (policy elements reference: Action, NotAction, Resource, NotResource, Condition;
condition operators; "Single-valued vs. multivalued context keys"; "Policy evaluation logic").
A row whose evaluation differs fails here. The table is also written to docs/security.md
(section "IAM evaluation: the emulator against AWS's documented answers").
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from offline_aws.iam_enforcement import AuthRequest, decide

PROJECT = Path(__file__).resolve().parents[3]
ARN = "arn:aws:s3:::"
EP = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/"


def allow(action="*", resource="*", condition=None, effect="Allow", **extra) -> dict:
    statement = {"Effect": effect, **extra}
    if "NotAction" not in extra:
        statement["Action"] = action
    if "NotResource" not in extra:
        statement["Resource"] = resource
    if condition:
        statement["Condition"] = condition
    return statement


TAGS = {"aws:TagKeys": ["team", "cost"]}
# (case, statements, action, resource, context, AWS allows, the documented rule)
CASES = [
    ("`.` in a pattern is a literal dot", [allow("s3:GetObject", f"{ARN}my.data.bucket/*")],
     "s3:GetObject", f"{ARN}myXdataXbucket/k", {}, False, "Resource: only `*` and `?` are wildcards"),
    ("`(a|c)` is not an alternation", [allow("s3:GetObject", f"{ARN}(a|c)/*")],
     "s3:GetObject", f"{ARN}a/k", {}, False, "Resource: only `*` and `?` are wildcards"),
    ("`?` is exactly one character", [allow("s3:GetObject", f"{ARN}b/file?.csv")],
     "s3:GetObject", f"{ARN}b/file12.csv", {}, False, "Resource: `?` matches one character"),
    ("`?` matches one character", [allow("s3:GetObject", f"{ARN}b/file?.csv")],
     "s3:GetObject", f"{ARN}b/file1.csv", {}, True, "Resource: `?` matches one character"),
    ("`*` in the resource path spans `/`", [allow("s3:GetObject", f"{ARN}b/*")],
     "s3:GetObject", f"{ARN}b/x/y.csv", {}, True, "Resource: `*` matches any run of characters"),
    ("action names ignore case", [allow("S3:getobject", f"{ARN}b/*")],
     "s3:GetObject", f"{ARN}b/k", {}, True, "Action: action names are case-insensitive"),
    ("`s3:Get*` covers GetObjectVersion", [allow("s3:Get*", f"{ARN}b/*")],
     "s3:GetObjectVersion", f"{ARN}b/k", {}, True, "Action: `*` in an action name"),
    ("resources are case-sensitive", [allow("s3:GetObject", f"{ARN}Bucket/*")],
     "s3:GetObject", f"{ARN}bucket/k", {}, False, "Resource: ARNs are case-sensitive"),
    ("no statement applies", [allow("s3:GetObject", f"{ARN}b/*")],
     "s3:PutObject", f"{ARN}b/k", {}, False, "Evaluation logic: implicit deny"),
    ("explicit deny beats an allow", [allow("s3:*", "*"), allow("s3:GetObject", f"{ARN}b/*", effect="Deny")],
     "s3:GetObject", f"{ARN}b/k", {}, False, "Evaluation logic: an explicit Deny overrides any Allow"),
    ("an allow whose condition fails is no deny", [
        allow("sagemaker:AddTags", "*", {"StringEquals": {"aws:RequestTag/team": "ops"}}),
        allow("sagemaker:AddTags", "*")],
     "sagemaker:AddTags", f"{EP}e", {"aws:RequestTag/team": "ml"}, True, "Evaluation logic: any applicable Allow"),
    ("NotAction allows every other action", [allow(NotAction="iam:*")],
     "s3:GetObject", f"{ARN}b/k", {}, True, "NotAction: matches everything except the listed actions"),
    ("NotAction does not allow the listed action", [allow(NotAction="iam:*")],
     "iam:CreateUser", "arn:aws:iam::123456789012:user/x", {}, False, "NotAction"),
    ("Deny with NotResource denies other resources", [allow("s3:*", "*"),
                                                      allow("s3:*", effect="Deny", NotResource=f"{ARN}b/*")],
     "s3:GetObject", f"{ARN}other/k", {}, False, "NotResource: matches every resource except the listed ones"),
    ("Deny with NotResource spares the listed ones", [allow("s3:*", "*"),
                                                      allow("s3:*", effect="Deny", NotResource=f"{ARN}b/*")],
     "s3:GetObject", f"{ARN}b/k", {}, True, "NotResource"),
    ("condition key names ignore case", [allow("sagemaker:AddTags", "*",
                                               {"StringEquals": {"AWS:requesttag/team": "ml"}})],
     "sagemaker:AddTags", f"{EP}e", {"aws:RequestTag/team": "ml"}, True, "Condition: key names are case-insensitive"),
    ("StringEquals compares values with case", [allow("sagemaker:AddTags", "*",
                                                      {"StringEquals": {"aws:RequestTag/team": "ML"}})],
     "sagemaker:AddTags", f"{EP}e", {"aws:RequestTag/team": "ml"}, False, "String operators: case-sensitive"),
    ("StringEqualsIgnoreCase does not", [allow("sagemaker:AddTags", "*",
                                               {"StringEqualsIgnoreCase": {"aws:RequestTag/team": "ML"}})],
     "sagemaker:AddTags", f"{EP}e", {"aws:RequestTag/team": "ml"}, True, "String operators"),
    ("StringLike `[ab]` is literal", [allow("sagemaker:AddTags", "*",
                                             {"StringLike": {"aws:RequestTag/team": "team-[ab]"}})],
     "sagemaker:AddTags", f"{EP}e", {"aws:RequestTag/team": "team-a"}, False,
     "StringLike: `*` and `?` only"),
    ("StringLike `*`", [allow("sagemaker:AddTags", "*", {"StringLike": {"aws:RequestTag/team": "m*"}})],
     "sagemaker:AddTags", f"{EP}e", {"aws:RequestTag/team": "ml"}, True, "StringLike"),
    ("a missing key fails StringEquals", [allow("sagemaker:DeleteEndpoint", "*",
                                                {"StringEquals": {"aws:ResourceTag/team": "ml"}})],
     "sagemaker:DeleteEndpoint", f"{EP}e", {}, False, "Condition: a missing key evaluates to false"),
    ("…IfExists passes a missing key", [allow("sagemaker:DeleteEndpoint", "*",
                                             {"StringEqualsIfExists": {"aws:ResourceTag/team": "ml"}})],
     "sagemaker:DeleteEndpoint", f"{EP}e", {}, True, "…IfExists: true when the key is not present"),
    ("…IfExists still checks a present key", [allow("sagemaker:DeleteEndpoint", "*",
                                                   {"StringEqualsIfExists": {"aws:ResourceTag/team": "ml"}})],
     "sagemaker:DeleteEndpoint", f"{EP}e", {"aws:ResourceTag/team": "ops"}, False, "…IfExists"),
    ("a negated operator passes a missing key", [allow("sagemaker:DeleteEndpoint", "*",
                                                       {"StringNotEquals": {"aws:ResourceTag/team": "ops"}})],
     "sagemaker:DeleteEndpoint", f"{EP}e", {}, True, "Negated operators: true when the key is missing"),
    ("Null true: the key is absent", [allow("sagemaker:DeleteEndpoint", "*",
                                            {"Null": {"aws:ResourceTag/team": "true"}})],
     "sagemaker:DeleteEndpoint", f"{EP}e", {}, True, "Null condition operator"),
    ("Null false: the key is present", [allow("sagemaker:DeleteEndpoint", "*",
                                              {"Null": {"aws:ResourceTag/team": "false"}})],
     "sagemaker:DeleteEndpoint", f"{EP}e", {}, False, "Null condition operator"),
    ("ForAllValues: every request value listed", [allow("sagemaker:AddTags", "*",
                                                        {"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}})],
     "sagemaker:AddTags", f"{EP}e", TAGS, False, "Multivalued keys: ForAllValues"),
    ("ForAllValues with the key missing", [allow("sagemaker:AddTags", "*",
                                                 {"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}})],
     "sagemaker:AddTags", f"{EP}e", {}, True, "Multivalued keys: ForAllValues is true for a missing key"),
    ("ForAnyValue: one request value listed", [allow("sagemaker:AddTags", "*",
                                                     {"ForAnyValue:StringEquals": {"aws:TagKeys": ["cost"]}})],
     "sagemaker:AddTags", f"{EP}e", TAGS, True, "Multivalued keys: ForAnyValue"),
    ("ForAnyValue with the key missing", [allow("sagemaker:AddTags", "*",
                                                {"ForAnyValue:StringEquals": {"aws:TagKeys": ["cost"]}})],
     "sagemaker:AddTags", f"{EP}e", {}, False, "Multivalued keys: ForAnyValue is false for a missing key"),
    ("ForAnyValue:StringNotEquals: one value outside", [
        allow("sagemaker:AddTags", "*", {"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["team"]}})],
     "sagemaker:AddTags", f"{EP}e", TAGS, True, "Multivalued keys with a negated operator"),
    ("ForAllValues:StringNotEquals: a value listed", [
        allow("sagemaker:AddTags", "*", {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["team"]}})],
     "sagemaker:AddTags", f"{EP}e", TAGS, False, "Multivalued keys with a negated operator"),
    ("NumericLessThanEquals over the cap", [allow("sagemaker:CreateTrainingJob", "*", {
        "NumericLessThanEquals": {"sagemaker:MaxRuntimeInSeconds": "14400"}})],
     "sagemaker:CreateTrainingJob", f"{EP}e", {"sagemaker:MaxRuntimeInSeconds": "86400"}, False, "Numeric operators"),
    ("NumericLessThanEquals within the cap", [allow("sagemaker:CreateTrainingJob", "*", {
        "NumericLessThanEquals": {"sagemaker:MaxRuntimeInSeconds": "14400"}})],
     "sagemaker:CreateTrainingJob", f"{EP}e", {"sagemaker:MaxRuntimeInSeconds": "3600"}, True, "Numeric operators"),
    ("ArnLike matches per component", [allow("iam:PassRole", "*", {
        "ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:*:123456789012:*"}})],
     "iam:PassRole", "arn:aws:iam::123456789012:role/r", {"aws:SourceArn": f"{EP}e"}, True, "ARN operators"),
    ("ArnLike: a `*` stays in its component", [allow("iam:PassRole", "*", {
        "ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:*:123456789012"}})],
     "iam:PassRole", "arn:aws:iam::123456789012:role/r", {"aws:SourceArn": f"{EP}e"}, False, "ARN operators"),
]


@pytest.mark.parametrize(("case", "statements", "action", "resource", "context", "allowed", "rule"), CASES,
                         ids=[c[0] for c in CASES])
def test_the_evaluation_gives_the_documented_answer(case, statements, action, resource, context, allowed, rule):
    assert decide(statements, AuthRequest(action, resource, context))[0] is allowed, (case, rule)


def test_write_the_table_into_the_security_doc():
    for case, statements, action, resource, context, allowed, _rule in CASES:  # all hold (above), or nothing is written
        assert decide(statements, AuthRequest(action, resource, context))[0] is allowed, case
    spec = importlib.util.spec_from_file_location("doc_sections", PROJECT / "tests" / "security" / "doc_sections.py")
    doc_sections = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(doc_sections)

    def cell(value) -> str:
        import json

        return f"`{json.dumps(value)}`".replace("|", "\\|")

    lines = [
        "Written by `tests/unit/emulator/test_emu_iam_policy_evaluation.py`: the emulator's identity-policy",
        "evaluation (`offline_aws.iam_enforcement.decide`, used by `--enforce-iam` and the least-privilege",
        "proof above) on cases whose answer the IAM User Guide states. Only identity-based policies are",
        "evaluated: the bucket policy (the template's `aws:SecureTransport` deny), permission boundaries and",
        "SCPs are not, so the proof says nothing about them. S3 requests are judged on the bucket they are",
        "served from (virtual-hosted `Host: BUCKET.…` included) and a call on an object version as its",
        "`…Version` action (`tests/unit/emulator/test_emu_iam_enforcement.py`).",
        "",
        "| Case | Statements | Request (action, resource, context) | AWS's answer | Rule |",
        "|---|---|---|---|---|",
    ]
    for case, statements, action, resource, context, allowed, rule in CASES:
        lines.append(f"| {case} | {cell(statements)} | `{action}` on `{resource}`"
                     f"{' with ' + cell(context) if context else ''} | {'**allow**' if allowed else 'deny'} | {rule} |")
    doc_sections.write_sections({"IAM evaluation: the emulator against AWS's documented answers": lines})
