"""The Ray Data engine: ``map_batches`` over an actor pool, one backbone per actor.

The driver keeps the journal; actors write the images, so on a multi-node
cluster OUTDIR and the inputs must be on storage every node sees.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from spl_sdk.errors import SplError
from spl_sdk.harmonizing import HarmonizerChoice
from spl_sdk.jobs.local import needs_model
from spl_sdk.jobs.worker import Job, RowWorker


class RayRowWorker:
    """Actor-pool callable: loads the backbone once per actor, one record per job."""

    def __init__(self, load_config: dict[str, Any], preload: bool = True,
                 harmonizer: HarmonizerChoice | None = None, allow_pickle: bool = False) -> None:
        # the harmonizer's options (a key among them) reach the actor in memory, never in a job
        self.worker = RowWorker(load_config, harmonizer, allow_pickle)
        if preload:
            _ = self.worker.editor

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch of JSON jobs -> a batch of JSON records."""
        import numpy as np

        records = [json.dumps(self.worker.process(json.loads(str(job))), default=str)
                   for job in batch["job"]]
        return {"record": np.array(records, dtype=object)}


def import_ray() -> Any:
    """The ray module, or a one-line error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise SplError("--engine ray needs Ray Data; install it with: pip install 'spl-sdk[ray]'") from None
    return ray


CONNECT_TIMEOUT = 30.0  # seconds to join --ray-address (SPL_RAY_CONNECT_TIMEOUT overrides)


def connect_timeout() -> float:
    """Seconds allowed to reach and join a cluster given by --ray-address."""
    try:
        return float(os.environ.get("SPL_RAY_CONNECT_TIMEOUT") or CONNECT_TIMEOUT)
    except ValueError:
        raise SplError("SPL_RAY_CONNECT_TIMEOUT must be a number of seconds.") from None


def check_reachable(address: str | None) -> None:
    """Refuse a cluster address that does not accept a connection within CONNECT_TIMEOUT.

    ``ray.init`` retries an unreachable address for minutes; a TCP connection to its
    host and port answers in at most the timeout. 'auto', 'local' and addresses
    without a port are left to Ray.
    """
    if not address or "://" in address and not address.startswith("ray://"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    timeout = connect_timeout()
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise SplError(f"cannot reach the Ray cluster at '{address}' within {timeout:g} s ({reason}); "
                       f"check --ray-address and that the cluster is running.") from None


class _Mute(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def quiet_ray_console(verbose: bool = False) -> Iterator[None]:
    """Keep Ray's console log lines and Python warnings (a worker's traceback among them) off the terminal.

    Ray Data logs a failed actor's traceback to stderr before raising; spl prints
    its own one-line error instead. Ray's log files keep everything; ``verbose``
    (``spl batch --verbose``) or SPL_SHOW_WARNINGS=1 shows the console lines again.
    """
    if verbose or os.environ.get("SPL_SHOW_WARNINGS", "").strip().lower() in ("1", "true", "yes", "on"):
        yield
        return
    mute, muted = _Mute(), []
    for name in ("ray", "ray.data"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and "File" not in type(handler).__name__:
                handler.addFilter(mute)
                muted.append(handler)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"ray(\.|$)")  # Ray's own deprecation notes
            yield
    finally:
        for handler in muted:
            handler.removeFilter(mute)


def check_fits(resources: dict[str, float], num_gpus: float, num_cpus: float) -> None:
    """Refuse workers that a local Ray can never place (Ray Data would wait for them for good)."""
    for name, flag, wanted in (("GPU", "--num-gpus-per-worker", num_gpus),
                               ("CPU", "--num-cpus-per-worker", num_cpus)):
        have = float(resources.get(name, 0.0))
        if wanted > have:
            raise SplError(f"each Ray worker asks for {wanted:g} {name}s ({flag}) but the local Ray "
                           f"started for this run has {have:g}; lower {flag}, or give --ray-address "
                           f"of a cluster that has them.")


def _init(ray: Any, address: str | None) -> None:
    """``ray.init``; joining an existing cluster is bounded by :func:`connect_timeout`.

    Ray retries a cluster that accepts connections but never answers as Ray (or whose
    address it rewrites to one that does not answer) for good, so the call runs in a
    daemon thread and is given up on at the bound; the process can still exit.
    """
    kwargs = {"address": address, "include_dashboard": False, "log_to_driver": False}
    if address is None:  # a local Ray started for this run: its start-up time is Ray's own
        ray.init(**kwargs)
        return
    failed: list[BaseException] = []

    def join() -> None:
        try:
            ray.init(**kwargs)
        except BaseException as exc:  # handed to the main thread below
            failed.append(exc)

    thread = threading.Thread(target=join, name="spl-ray-init", daemon=True)
    thread.start()
    thread.join(connect_timeout())
    if thread.is_alive():
        raise SplError(f"the Ray cluster at '{address}' did not answer within {connect_timeout():g} s; "
                       f"check --ray-address and that the cluster is running (SPL_RAY_CONNECT_TIMEOUT "
                       f"sets the bound).")
    if failed:
        raise failed[0]


def run_ray(jobs: Sequence[Job], load_config: dict[str, Any],
            on_record: Callable[[dict[str, Any]], None], *, address: str | None = None,
            concurrency: int = 1, num_gpus: float = 0.0, num_cpus: float = 1.0,
            verbose: bool = False, harmonizer: HarmonizerChoice | None = None,
            allow_pickle: bool = False) -> None:
    """Process ``jobs`` on Ray Data; records reach ``on_record`` in the driver as rows finish.

    ``concurrency`` actors form a fixed pool (``ActorPoolStrategy(size=...)``, the
    ``compute`` argument that replaced Ray's deprecated ``concurrency=``).
    """
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        check_reachable(address)
    with quiet_ray_console(verbose):
        if started:
            try:
                _init(ray, address)
            except ConnectionError as exc:
                raise SplError(f"cannot reach the Ray cluster at '{address}' ({exc}); check "
                               f"--ray-address.") from None
        try:
            if started and address is None:  # a Ray of this machine never grows: check it can run
                check_fits(ray.cluster_resources(), num_gpus, num_cpus)
            ray.data.DataContext.get_current().enable_progress_bars = False
            ds = ray.data.from_items([{"job": json.dumps(j, default=str)} for j in jobs],
                                     override_num_blocks=max(1, len(jobs)))
            ds = ds.map_batches(RayRowWorker, batch_size=1, batch_format="numpy",
                                fn_constructor_kwargs={"load_config": load_config,
                                                       "preload": needs_model(jobs),
                                                       "harmonizer": harmonizer,
                                                       "allow_pickle": allow_pickle},
                                compute=ray.data.ActorPoolStrategy(size=concurrency), num_cpus=num_cpus,
                                num_gpus=num_gpus if num_gpus else None)
            for item in ds.iter_rows():
                on_record(json.loads(item["record"]))
        except ray.exceptions.RayError as exc:
            last = [line.strip() for line in str(exc).splitlines() if line.strip()]
            # the worker's own one-line error, without the class path Ray puts before it
            reason = re.sub(r"^spl_sdk\.errors\.\w+: ", "", last[-1]) if last else type(exc).__name__
            raise SplError(f"the Ray workers failed: {reason}") from None
        finally:
            if started and ray.is_initialized():
                ray.shutdown()
