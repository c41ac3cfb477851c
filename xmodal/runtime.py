"""Starting or joining Ray, quietly.

Inside ``ray job submit`` (or with ``RAY_ADDRESS`` set) the existing cluster is joined; otherwise a
local Ray starts with ``num_cpus`` logical CPUs. Logical CPUs may exceed physical cores: trials,
Train workers and Ray Data tasks each reserve logical CPUs, and Ray Data must keep at least one
free or its reads wait forever behind trial placement groups.
"""

from __future__ import annotations

import logging
import os
import warnings


# Measured on a 2-core machine (see README "Performance notes"):
# - Ray Data's V2 Parquet reader starts 32 FooterReader actors per read: 30-40 s for a 200-row read
#   there, against about 1 s for the V1 reader. xmodal's shards are few, large files: V1 it is.
# - Ray Train's controller polls workers every 2 s; 0.25 s takes a trivial 1-worker TorchTrainer
#   run from about 25 s to about 14 s, which is most of a short trial's overhead.
RAY_ENV = {
    "RAY_DATA_USE_DATASOURCE_V2": "0",
    "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS": "2",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
    # A task the memory monitor kills is retried this often, not without end (Ray's default: -1).
    "RAY_task_oom_retries": "2",
    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
}


def quiet() -> None:
    """Keep the console to xmodal's own lines: no progress bars, no info logs from Ray."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("ray", "ray.data", "ray.train", "ray.tune", "ray.util", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    # "Token authentication is enabled for this Ray cluster": Ray's default for a local cluster, kept,
    # announced as a warning at every start.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)


def local_worker_pool(num_cpus: int | None) -> None:
    """Worker-process settings for a local, single-node Ray (set before it starts; the user's win).

    xmodal oversubscribes logical CPUs on purpose: each Train run holds a controller and helper actors
    besides its workers, and Ray Data needs CPUs of its own. With more logical CPUs than cores:

    - idle worker processes are kept up to twice the logical CPUs (Ray's default: as many as logical
      CPUs, counting the actors), so Ray Data's read tasks reuse them instead of starting and importing
      new ones: the end-to-end chain test's three chain runs started 43 worker processes instead of
      65-66 and took 95-97 s instead of 133-141 s (alternating runs, otherwise idle 2-core machine);
    - the raylet may start twice the logical CPUs' worker processes at once (Ray caps it at the core
      count). Ray prints "N PYTHON worker processes have been started ... 4x the maximum expected
      startup concurrency" to the console whenever the live worker processes pass 4, 5, 6... times
      that cap (plus 8 I/O workers): at the logical CPU count, a smoke search (two trials, each a Train
      run with its helper actors, next to the idle pool above) still passed 4x = 32; at twice it, 56.

    Ray Train's preemption watcher (one more actor per Train run) is off: a single node is not drained.
    """
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    cores = os.cpu_count() or 1
    if num_cpus and num_cpus > cores:
        os.environ.setdefault("RAY_worker_maximum_startup_concurrency", str(2 * num_cpus))
        os.environ.setdefault("RAY_num_workers_soft_limit", str(2 * num_cpus))


def oversubscribed() -> bool:
    """Whether Ray is this one machine, holding more logical CPUs than the machine has cores (xmodal's
    local default, see :func:`local_worker_pool`): work placed "side by side" there shares the cores."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) != 1 or nodes[0].get("NodeManagerAddress") != ray.util.get_node_ip_address():
        return False
    return nodes[0].get("Resources", {}).get("CPU", 0.0) > (os.cpu_count() or 1)


def ensure_ray(num_cpus: int | None = None, *, num_gpus: int | None = None) -> dict:
    """Start or join Ray; return the cluster's resources."""
    import ray
    import ray.data

    quiet()
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    env = {"env_vars": {k: os.environ[k] for k in RAY_ENV}}
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS") or os.environ.get("RAY_JOB_ID"):
            ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), logging_level=logging.WARNING,
                     log_to_driver=False, runtime_env=env)
        else:
            local_worker_pool(num_cpus)
            # The dashboard serves the state API, which Ray Train's PlacementGroupCleaner asks whether a
            # trainer's controller is still alive. Without it, a trial stopped by ASHA (its actor killed
            # mid-fit) keeps its Train workers' CPUs forever and later Ray Data reads wait on them.
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=True, dashboard_host="127.0.0.1",
                     logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
    ctx = ray.data.DataContext.get_current()
    ctx.use_datasource_v2 = False
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.verbose_stats_logs = False
    return ray.cluster_resources()
