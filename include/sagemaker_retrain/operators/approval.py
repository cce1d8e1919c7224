"""A person approves (or rejects) the promotion of a model that passed the gate.

Airflow 3's human-in-the-loop branch operator from the standard provider: the task writes a
request (subject, body with both scores, the gate's reason and the plot, an optional comment
field) and parks in ``awaiting_input``: no worker slot, no trigger. The UI's *Required actions*
form (or ``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/approve/-1/hitlDetails``) answers
it; the scheduler's timeout sweep answers ``Reject`` (the default) once the timeout passes.

Approve: the package becomes ``Approved`` (``ApprovalDescription`` "Approved by USER: comment")
and the run goes on to ``deploy``. Reject or timeout: the package becomes ``Rejected`` with who/why
("Rejected by USER: comment", "Rejected: no answer within N h (timeout)"), and the run goes to
``rejected`` (records the decision; nothing is deployed; the run succeeds). The same words are the
``description`` of the ``approval`` XCom, which the history record and the run's outcome show.

Who may answer (separation of duties):

* The model's approvers (argument ``approvers``: the catalog entry's ``approval.approvers``) or, when
  it names none, Variable ``sagemaker_retrain_approvers`` (read when the request is written, and again
  when the answer comes): user ids as the auth manager knows them, each optionally
  ``ID:NAME`` (Simple auth manager, Keycloak: the username; FAB: the numeric id, with ``:username``
  so that the person who triggered the run is recognised). They become the HITL request's
  ``assigned_users``: Airflow's API answers anyone else with 403, and the request stays pending
  for the assigned approvers.
* The person who triggered the run (``dag_run.triggering_user_name``) is left out of the assigned
  users, so Airflow refuses their answer (403) and the request stays pending for the others. If
  no one else is left, the step fails: the admins must name another approver.
* The answer is checked again when it comes (a second line: an auth manager that lets everyone
  answer, such as the Simple auth manager's ``all_admins`` mode, or no Variable set): an *Approve*
  by the person who triggered the run, or by someone not in the Variable, is treated as a
  rejection with that reason ("Rejected: USER triggered this run and may not approve it"). It
  cannot stay pending: Airflow accepts one answer per request and has already resumed the task.
  A rejection by anyone allowed to answer stands.

Without the Variable any user who may edit the DAG's runs may answer (Airflow's default), except
the person who triggered the run.

When the run's policy needs no approval (resolved here, at run time, with ``pipeline.approval_policy``:
Variable ``sagemaker_retrain_require_approval``, which the model's ``approval.required`` and Param
``require_approval`` may only make stricter) the step does not wait: the package is approved with the reason "policy: no approval
required" and the run goes straight to ``deploy``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from airflow.providers.standard.exceptions import HITLTriggerEventError
from airflow.providers.standard.operators.hitl import HITLBranchOperator, HITLOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

APPROVE, REJECT = "Approve", "Reject"
APPROVERS_VARIABLE = "sagemaker_retrain_approvers"
MAX_APPROVERS = 100


def parse_approvers(raw: str | None) -> list[dict[str, str]]:
    """Variable ``sagemaker_retrain_approvers`` as HITL users: ``"alice, 7:bob"`` ->
    ``[{"id": "alice", "name": "alice"}, {"id": "7", "name": "bob"}]`` (empty when unset)."""
    users: list[dict[str, str]] = []
    for entry in str(raw or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        user_id, _, name = entry.partition(":")
        user = {"id": user_id.strip(), "name": name.strip() or user_id.strip()}
        if not user["id"]:
            raise ValueError(f"Variable {APPROVERS_VARIABLE}: entry {entry!r} has no user id")
        if user not in users:
            users.append(user)
    if len(users) > MAX_APPROVERS:
        raise ValueError(f"Variable {APPROVERS_VARIABLE} names more than {MAX_APPROVERS} users")
    return users


def read_approvers() -> list[dict[str, str]]:
    """The admins' approvers, read now (Variables need the Op role to change; XComs do not)."""
    from airflow.sdk import Variable

    return parse_approvers(Variable.get(APPROVERS_VARIABLE, default=None))


def model_approvers(named: str | list[str] | tuple[str, ...] | None) -> tuple[list[dict[str, str]], str]:
    """The approvers of this model and where they come from: its own (the catalog's), else the Variable's."""
    raw = ", ".join(named) if isinstance(named, list | tuple) else named
    if raw and str(raw).strip(" ,"):
        try:
            return parse_approvers(raw), "the model's catalog entry"
        except ValueError as err:
            raise ValueError(str(err).replace(f"Variable {APPROVERS_VARIABLE}", "approvers")) from None
    return read_approvers(), f"Variable {APPROVERS_VARIABLE}"


def is_user(user: dict | None, name: str | None) -> bool:
    """Is ``user`` (a HITL user: id and name) the person called ``name`` (the run's triggering user)?"""
    return bool(user and name) and name in (user.get("name"), user.get("id"))


def triggering_user(context) -> str | None:
    """Who pressed Trigger (None when no person did: a scheduled or asset-triggered run)."""
    return getattr(context.get("dag_run"), "triggering_user_name", None) or None


def refusal(user: dict | None, triggered_by: str | None, approvers: list[dict[str, str]],
            source: str = f"Variable {APPROVERS_VARIABLE}") -> str | None:
    """Why this person's *Approve* does not count (a rejection with this reason), or None."""
    who = (user or {}).get("name") or (user or {}).get("id") or "unknown"
    if is_user(user, triggered_by):
        return f"{who} triggered this run and may not approve it"
    if approvers and not any(a["id"] == (user or {}).get("id") for a in approvers):
        return f"{who} is not an assigned approver ({source})"
    return None


def _score(scores: dict | None, metric: str) -> str:
    from sagemaker_retrain.scoring import ROW_METRIC

    value = (scores or {}).get(ROW_METRIC.get(metric, metric))
    return f"{value:.4f}" if isinstance(value, int | float) else "–"


def request_body(evidence: dict, policy: dict, approvers: list[dict] | None = None,
                 triggered_by: str | None = None) -> str:
    """The Markdown the approver reads: both scores on the same rows, the gate's reason, the plot, who may answer."""
    decision, scores = evidence["decision"], evidence["scores"]
    package, champion = evidence.get("package") or {}, evidence.get("champion_package") or {}
    metric = decision["metric"]
    plot = (evidence.get("artifacts") or {}).get("plot")
    plot_link = f"[predicted vs actual](/model-history/plot?{urlencode({'uri': plot})})" if plot else "–"
    champion_name = (f"version {champion.get('version')}" if champion else (decision.get("champion_model")
                                                                             or "none serving"))
    return "\n".join([
        f"**Challenger**: model package version {package.get('version', '?')} of group "
        f"`{package.get('group', '?')}`  ",
        f"**Champion** (serving): {champion_name}",
        "",
        f"| {metric} on {evidence['rows']['count']} test rows | challenger | champion |",
        "|---|---|---|",
        f"| score | {_score(scores.get('challenger'), metric)} | {_score(scores.get('champion'), metric)} |",
        f"| threshold | {decision['threshold']} | |",
        "",
        f"**Gate**: {decision['reason']}",
        "",
        f"**Plot**: {plot_link} (`{plot}`)  ",
        f"**Metrics**: `{(evidence.get('artifacts') or {}).get('metrics')}`",
        "",
        f"Approve to deploy it (blue/green, with rollback alarms); Reject to keep the champion. "
        f"No answer within {policy['timeout_hours']} h counts as a rejection.",
        "",
        "**Who may answer**: " + (", ".join(f"`{a['name']}`" for a in approvers) if approvers
                                  else "any user who may edit this DAG's runs")
        + (f", not `{triggered_by}`, who triggered this run." if triggered_by else "."),
    ])


class ModelApprovalOperator(HITLBranchOperator):
    """
    Wait for a person to approve the promotion, unless the run's policy needs no approval.

    Every input is an argument (templated where it comes from another task): the operator reads no
    XCom by task id. The policy is resolved at run time from the run's Params, the model's
    requirement and the admins' Variable (``pipeline.approval_policy``), never from an XCom a User
    role could edit.

    :param plan: the run's plan (templated; the DAG passes ``prepare``'s output): ``settings`` reach the
        SageMaker client, ``names.endpoint`` names the endpoint in the request.
    :param evidence: the gate's evidence (templated; the DAG passes ``XComArg(gate, key="evidence")``):
        the decision, both scores, the packages and the evaluation artifacts.
    :param approvers: the model's approvers (templated; the catalog entry's ``approval.approvers``),
        user ids, each optionally ``ID:NAME``, as a list or a comma-separated string. Empty or None:
        Variable ``sagemaker_retrain_approvers``, read when the request is written and when the answer comes.
    :param require_approval: the model's own requirement (the catalog entry's ``approval.required``):
        True makes every persistent run of the model wait; False leaves it to the admins' Variable and
        the Param (it cannot waive an approval the Variable requires).
    :param approve_task_id: the branch taken on approval (default ``deploy``).
    :param reject_task_id: the branch taken on rejection or timeout (default ``rejected``).
    """

    template_fields = ("plan", "evidence", "approvers")
    ui_color = "#fbe6a8"

    def __init__(self, *, plan: dict | Any, evidence: dict | Any, approvers: list[str] | str | None = None,
                 require_approval: bool = False, approve_task_id: str = "deploy",
                 reject_task_id: str = "rejected", **kwargs):
        kwargs.setdefault("subject", "Promote the retrained model?")
        kwargs.setdefault("response_timeout", timedelta(hours=24))  # replaced by the run's Param
        # Bounds each execution phase (before the wait, after the answer); the wait is response_timeout.
        kwargs.setdefault("execution_timeout", timedelta(minutes=15))
        kwargs.pop("params", None)  # the DAG's params: the form shows only this step's own field
        super().__init__(
            options=[APPROVE, REJECT], defaults=[REJECT], multiple=False,
            options_mapping={APPROVE: approve_task_id, REJECT: reject_task_id},
            params={"comment": Param("", type="string", maxLength=500, title="Comment",
                                     description="Why (recorded in the model package and the history).")},
            **kwargs,
        )
        self.plan = plan
        self.evidence = evidence
        self.approvers = approvers
        self.require_approval = bool(require_approval)
        self.approve_task_id = approve_task_id
        self.reject_task_id = reject_task_id

    def _policy(self, context) -> dict:
        """The approval policy, resolved now from the run's Params, this model's requirement and the Variable."""
        from sagemaker_retrain import pipeline

        params = context.get("params")
        if not params or "mode" not in params:
            raise AirflowFailException("ModelApprovalOperator needs the run's Params (mode, require_approval, "
                                       "approval_timeout_hours) to resolve the approval policy")
        return pipeline.approval_policy(dict(params), model_requires=self.require_approval)

    def execute(self, context) -> Any:
        from sagemaker_retrain import pipeline

        plan, evidence, policy = self.plan, self.evidence, self._policy(context)
        package = evidence.get("package")
        if not policy["required"]:
            self.log.info("No approval needed: %s.", policy["reason"])
            approval = {"status": "Approved", "description": policy["reason"], "approver": "policy"}
            if policy.get("record", True):
                approval = pipeline.decide_approval(plan, package, True, pipeline.NO_APPROVAL_REASON,
                                                    approver="policy")
            context["ti"].xcom_push(key="approval", value=approval)
            return self.do_branch(context, [self.approve_task_id])
        self.response_timeout = timedelta(hours=int(policy["timeout_hours"]))
        triggered_by = triggering_user(context)
        approvers, source = model_approvers(self.approvers)
        assigned = [a for a in approvers if not is_user(a, triggered_by)]
        if approvers and not assigned:
            # An empty assigned_users would let anyone answer: fail instead, visibly.
            raise AirflowFailException(
                f"Approval required, but {source} names no one but {triggered_by}, who "
                "triggered this run and may not approve it. Ask an admin to add another approver, then clear "
                "this task.")
        self.assigned_users = assigned or None
        version = (package or {}).get("version", "?")
        self.subject = f"Promote model version {version} to {plan['names']['endpoint']}?"
        self.body = request_body(evidence, policy, assigned, triggered_by)
        self.log.info("Waiting up to %s h for a person to approve package %s (assigned: %s, from %s; triggered by "
                      "%s).", policy["timeout_hours"], (package or {}).get("arn"),
                      ", ".join(a["name"] for a in assigned) or "anyone who may edit the run", source,
                      triggered_by or "-")
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        from sagemaker_retrain import pipeline

        plan, evidence, policy = self.plan, self.evidence, self._policy(context)
        timed_out = bool(event.get("timedout"))
        if "error" in event:
            if event.get("error_type") != "timeout":
                raise HITLTriggerEventError(event)
            timed_out, chosen, user, comment = True, REJECT, None, ""
        else:
            answer = HITLOperator.execute_complete(self, context=context, event=event)
            chosen = answer["chosen_options"][0]
            user = answer["responded_by_user"]
            comment = str((answer["params_input"] or {}).get("comment") or "").strip()
        approved = chosen == APPROVE and not timed_out
        refused = None
        if timed_out:
            who = "timeout"
            description = f"Rejected: no answer within {policy['timeout_hours']} h (timeout)"
        else:
            who = (user or {}).get("name") or (user or {}).get("id") or "unknown"
            refused = refusal(user, triggering_user(context), *model_approvers(self.approvers)) if approved else None
            if refused:
                approved = False
                description = f"Rejected: {refused}"
                self.log.warning("Approve by %s refused: %s; recorded as a rejection.", who, refused)
            else:
                description = f"{'Approved' if approved else 'Rejected'} by {who}"
                if comment:
                    description += f": {comment}"
        facts = {"approver": who, "comment": comment or None}
        if (user or {}).get("id") and user["id"] != who:
            facts["approver_id"] = user["id"]
        if refused:
            facts["refused"] = refused
        approval = pipeline.decide_approval(plan, evidence.get("package"), approved, description, **facts)
        context["ti"].xcom_push(key="approval", value=approval)
        self.log.info("Approval: %s.", description)
        return self.do_branch(context, [self.approve_task_id if approved else self.reject_task_id])
