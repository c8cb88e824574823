"""Workloads: gateways that `hivegate run` (or `vmcp serve -d`) started in the background, as `thv run` does.

A record per workload in the state directory (`record`, `store`), process checks without psutil (`process`), the
background start (`launch`) and log following (`logs`). The `hivegate list/logs/stop/restart/rm` commands are in
`hivegate.cli.workloads`.
"""

from hivegate.workloads.launch import SERVER_LOG_FLAG, StartFailed, child_command, launch, pin_port
from hivegate.workloads.logs import Follower, follow
from hivegate.workloads.process import alive, descendants, start_time, stop_group
from hivegate.workloads.record import (
    KINDS,
    LIVE,
    CorruptRecord,
    NameTaken,
    Status,
    WorkloadError,
    WorkloadRecord,
    check_name,
    utc_now,
)
from hivegate.workloads.store import WorkloadStore

__all__ = [
    "KINDS",
    "LIVE",
    "SERVER_LOG_FLAG",
    "CorruptRecord",
    "Follower",
    "NameTaken",
    "StartFailed",
    "Status",
    "WorkloadError",
    "WorkloadRecord",
    "WorkloadStore",
    "alive",
    "check_name",
    "child_command",
    "descendants",
    "follow",
    "launch",
    "pin_port",
    "start_time",
    "stop_group",
    "utc_now",
]
