"""A person approves (or rejects) the promotion of a model that passed the gate.

Airflow 3's human-in-the-loop branch operator from the standard provider: the task writes a
request (subject, body with both scores, the gate's reason and the plot, an optional comment
field) and parks in ``awaiting_input``: no worker slot, no trigger. The UI's *Required actions*
form (or ``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/approve/-1/hitlDetails``) answers
it; the scheduler's timeout sweep answers ``Reject`` (the default) once the timeout passes.

Approve: the package becomes ``Approved`` (``ApprovalDescription`` names the approver) and the run
goes on to ``deploy``. Reject or timeout: the package becomes ``Rejected`` with who/why, and the
run goes to ``rejected`` (records the decision; nothing is deployed; the run succeeds).

When the run's policy needs no approval (``gate`` resolved it: Param ``require_approval`` or
Variable ``sagemaker_retrain_require_approval``) the step does not wait: the package is approved
with the reason "policy: no approval required" and the run goes straight to ``deploy``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from airflow.providers.standard.exceptions import HITLTriggerEventError
from airflow.providers.standard.operators.hitl import HITLBranchOperator, HITLOperator
from airflow.sdk import Param

APPROVE, REJECT = "Approve", "Reject"


def _score(scores: dict | None, metric: str) -> str:
    from sagemaker_retrain.scoring import ROW_METRIC

    value = (scores or {}).get(ROW_METRIC.get(metric, metric))
    return f"{value:.4f}" if isinstance(value, int | float) else "–"


def request_body(evidence: dict, policy: dict) -> str:
    """The Markdown the approver reads: both scores on the same rows, the gate's reason, the plot."""
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
    ])


class ModelApprovalOperator(HITLBranchOperator):
    """
    Wait for a person to approve the promotion, unless the run's policy needs no approval.

    :param gate_task_id: the gate task; its XComs ``evidence`` (scores, packages, artifacts) and
        ``approval_policy`` (``{"required", "reason", "timeout_hours", "record"}``) drive this step.
    :param plan_task_id: the task whose XCom is the run's plan (settings for the SageMaker client).
    :param approve_task_id: the branch taken on approval; ``reject_task_id`` on rejection or timeout.
    """

    template_fields = ()  # the request is built from the gate's XCom at run time
    ui_color = "#fbe6a8"

    def __init__(self, *, gate_task_id: str = "gate", plan_task_id: str = "prepare",
                 approve_task_id: str = "deploy", reject_task_id: str = "rejected", **kwargs):
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
        self.gate_task_id = gate_task_id
        self.plan_task_id = plan_task_id
        self.approve_task_id = approve_task_id
        self.reject_task_id = reject_task_id

    def _inputs(self, context) -> tuple[dict, dict, dict]:
        ti = context["ti"]
        return (ti.xcom_pull(task_ids=self.plan_task_id), ti.xcom_pull(task_ids=self.gate_task_id, key="evidence"),
                ti.xcom_pull(task_ids=self.gate_task_id, key="approval_policy"))

    def execute(self, context) -> Any:
        from sagemaker_retrain import pipeline

        plan, evidence, policy = self._inputs(context)
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
        version = (package or {}).get("version", "?")
        self.subject = f"Promote model version {version} to {plan['names']['endpoint']}?"
        self.body = request_body(evidence, policy)
        self.log.info("Waiting up to %s h for a person to approve package %s.", policy["timeout_hours"],
                      (package or {}).get("arn"))
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        from sagemaker_retrain import pipeline

        plan, evidence, policy = self._inputs(context)
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
        if timed_out:
            who = "timeout"
            description = f"timeout: no answer within {policy['timeout_hours']} h (treated as reject)"
        else:
            who = (user or {}).get("name") or (user or {}).get("id") or "unknown"
            description = f"{'approved' if approved else 'rejected'} by {who}"
            if (user or {}).get("id") and (user or {}).get("id") != who:
                description += f" (id {user['id']})"
            if comment:
                description += f": {comment}"
        approval = pipeline.decide_approval(plan, evidence.get("package"), approved, description, approver=who,
                                            comment=comment or None)
        context["ti"].xcom_push(key="approval", value=approval)
        self.log.info("Approval: %s.", description)
        return self.do_branch(context, [self.approve_task_id if approved else self.reject_task_id])
