"""``airflow dags test`` with run_after pinned to the logical date: ``drive_run.py DAG_ID DATE CONF_JSON``.

``airflow dags test`` stamps each run with ``run_after = now``; the pipeline names its resources
from the run (run id + run_after), so a second ``dags test`` of the same logical date would be a
different run to it. Pinning run_after makes a re-run after the process was killed the *same*
run (same run id, same names), as a task retry on a real worker is: what the re-attach scenario needs.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    dag_id, date, conf = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    from airflow.cli.commands.dag_command import get_bagged_dag
    from airflow.sdk import timezone
    from airflow.utils.state import DagRunState

    when = timezone.parse(date)
    dag = get_bagged_dag(bundle_names=None, dag_id=dag_id)
    run = dag.test(logical_date=when, run_after=when, run_conf=conf)
    return 0 if run and run.state == DagRunState.SUCCESS else 1


if __name__ == "__main__":
    sys.exit(main())
