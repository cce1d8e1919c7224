"""Failure and deadline mails through an Airflow SMTP connection (the SMTP provider's notifier).

Kept as small top-level functions, importable by the worker, the triggerer and the DAG file
alike; the notifier (and the SMTP provider) is imported only when a mail is sent, so parsing the
DAG stays cheap. The connection id comes from the provider setting ``[sagemaker_retrain]
alert_conn_id``, else env ``SAGEMAKER_RETRAIN_ALERT_CONN_ID`` (default ``smtp_default``). Recipients
per model (``recipients``): the catalog entry's ``settings.alert_emails``, else Variable
``<variables_prefix>alert_emails`` (the model's own), else the deployment-wide
``sagemaker_retrain_alert_emails``, read when a mail is sent.
"""

from __future__ import annotations

import os

DEFAULT_VARIABLE = "sagemaker_retrain_alert_emails"
RECIPIENTS = "{{ var.value.get('" + DEFAULT_VARIABLE + "', 'ml-team@example.com') }}"


def recipients(emails: tuple[str, ...] | list[str] = (), variables_prefix: str | None = None) -> str:
    """A model's recipients, as the notifier's (templated) ``to``: the catalog's list, else the Variables at send time."""
    if emails:
        return ", ".join(emails)
    if not variables_prefix or variables_prefix + "alert_emails" == DEFAULT_VARIABLE:
        return RECIPIENTS
    own = f"var.value.get('{variables_prefix}alert_emails', None)"
    return "{{ " + own + " or " + RECIPIENTS.removeprefix("{{ ")


def _conn_id() -> str:
    """``[sagemaker_retrain] alert_conn_id`` (provider config), else env ``SAGEMAKER_RETRAIN_ALERT_CONN_ID``."""
    from airflow.sdk import conf

    return (conf.get("sagemaker_retrain", "alert_conn_id", fallback="")
            or os.environ.get("SAGEMAKER_RETRAIN_ALERT_CONN_ID", "smtp_default"))


def _configured() -> bool:
    """Is there an SMTP connection to mail through? (Without one, failures are only in the UI and logs.)"""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        Connection.get(_conn_id())
    except AirflowNotFoundException:
        return False
    return True


def _notifier(subject: str, body: str, to: str = RECIPIENTS):
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return SmtpNotifier(smtp_conn_id=_conn_id(), to=to, subject=subject, html_content=body)


def failure_callback(to: str = RECIPIENTS):
    """A model's ``on_failure_callback``: ``task_failed`` mailing ``to`` (``recipients(...)``)."""
    def task_failed_mail(context) -> None:
        task_failed(context, to)

    return task_failed_mail


def task_failed(context, to: str = RECIPIENTS) -> None:
    """``on_failure_callback``: mail the run id, the task and the reason."""
    if not _configured():
        return
    _notifier(
        "[{{ dag.dag_id }}] {{ ti.task_id }} failed in run {{ run_id }}",
        "<p>Run <b>{{ run_id }}</b> of <b>{{ dag.dag_id }}</b>: task <b>{{ ti.task_id }}</b> failed "
        "(try {{ ti.try_number }}).</p><p>Reason: {{ exception }}</p>",
        to,
    )(context)


async def deadline_missed(context, to: str = RECIPIENTS, **kwargs) -> None:
    """Deadline callback (run on the triggerer): the run is taking far longer than its usual time."""
    if not _configured():
        return
    notifier = _notifier(
        "[sagemaker_retrain] run {{ dag_run.run_id }} is far past its usual time",
        "<p>Run <b>{{ dag_run.run_id }}</b> has been running much longer than the average of its last runs "
        "(see its Deadline in the UI).</p>",
        to,
    )
    await notifier.async_notify(context)
