"""Our own PostgreSQL and Redis (what the native deployment starts where the machine has none).

Started from the wheels of the dev lock on free ports, used as the deployment uses them (a
database created and written, a Redis key set), then stopped: no process left, no file left.
"""

from __future__ import annotations

import os

import local_services
import psutil
import psycopg2
import redis


def test_own_postgres_and_redis_start_serve_and_leave_nothing():
    services = local_services.start(own=True)
    pids, tmp = [p.pid for p in services.procs.values()], services.tmp
    try:
        assert services.own == ["postgres", "redis"]
        assert (services.pg_port, services.redis_port) != (5432, 6379)
        children = [c.pid for p in pids for c in psutil.Process(p).children(recursive=True)]
        conn = psycopg2.connect(services.pg_dsn)
        conn.autocommit = True
        conn.cursor().execute('CREATE DATABASE "own_services_check"')
        conn.close()
        conn = psycopg2.connect(services.pg_dsn.replace("dbname=postgres", "dbname=own_services_check"))
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (42); SELECT x FROM t")
            assert cur.fetchone() == (42,)
        conn.close()
        client = redis.Redis(services.redis_host, services.redis_port, db=3)
        assert client.set("k", "v", nx=True) and client.get("k") == b"v"
        client.close()
    finally:
        services.stop()
    assert children, "postgres runs its auxiliary processes as children"
    left = [pid for pid in pids + children if psutil.pid_exists(pid)
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"processes left after stop(): {left}"
    assert tmp is not None and not os.path.exists(tmp)
    assert services.procs == {} and services.tmp is None
