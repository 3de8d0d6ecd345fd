"""The variables each engine reads to join several processes, checked before
the engine reads them, so that a wrong one is one line naming it (exit 2)
instead of an engine's traceback.

jax reads `KERAS_DISTRIBUTION_*` (`keras.distribution.initialize`),
tensorflow `TF_CONFIG` (`MultiWorkerMirroredStrategy`), torch the variables
torchrun sets (`WORLD_SIZE`, `RANK`, `LOCAL_RANK`, `MASTER_ADDR`,
`MASTER_PORT`).
"""

import json
import os

from contrastive.errors import SpecError


def _integer(name, low, high=None, environ=None):
    """The variable `name` as an integer in `low .. high`, or None unset."""
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SpecError(f"expected an integer, received {raw!r}", file=name) from None
    if value < low or (high is not None and value > high):
        bound = f"{low} .. {high}" if high is not None else f">= {low}"
        raise SpecError(f"expected an integer in {bound}, received {value}", file=name)
    return value


def _address(name, raw):
    host, _, port = raw.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(f"expected host:port addresses, received {raw!r}", file=name)


def check_jax(environ=None):
    """`KERAS_DISTRIBUTION_NUM_PROCESSES`, `..._PROCESS_ID` and
    `..._JOB_ADDRESSES` (the coordinator first)."""
    environ = os.environ if environ is None else environ
    processes = _integer("KERAS_DISTRIBUTION_NUM_PROCESSES", 1, environ=environ)
    if processes is None or processes == 1:
        return
    index = _integer("KERAS_DISTRIBUTION_PROCESS_ID", 0, processes - 1, environ)
    if index is None:
        raise SpecError(f"expected this process' index in 0 .. {processes - 1} "
                        f"(KERAS_DISTRIBUTION_NUM_PROCESSES={processes}), received none",
                        file="KERAS_DISTRIBUTION_PROCESS_ID")
    addresses = environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "").strip()
    if not addresses:
        raise SpecError("expected the coordinator's host:port (the first process'), "
                        "received none", file="KERAS_DISTRIBUTION_JOB_ADDRESSES")
    for address in addresses.split(","):
        _address("KERAS_DISTRIBUTION_JOB_ADDRESSES", address)


def check_tensorflow(environ=None):
    """`TF_CONFIG`: a JSON object with a `cluster` of `chief`/`worker`
    address lists and this process' `task` (`type`, `index`)."""
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG")
    if raw is None or raw.strip() == "":
        return
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise SpecError(f"expected JSON, received {raw[:60]!r} ({exc})", file="TF_CONFIG") from None
    if not isinstance(config, dict):
        raise SpecError(f"expected a JSON object, received {type(config).__name__}",
                        file="TF_CONFIG")
    cluster = config.get("cluster")
    if not isinstance(cluster, dict) or not cluster:
        raise SpecError(f"expected a mapping of task types to address lists, received {cluster!r}",
                        "cluster", "TF_CONFIG")
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise SpecError(f"expected a list of host:port addresses, received {addresses!r}",
                            f"cluster.{kind}", "TF_CONFIG")
        for address in addresses:
            if not isinstance(address, str):
                raise SpecError(f"expected host:port addresses, received {address!r}",
                                f"cluster.{kind}", "TF_CONFIG")
            try:
                _address("TF_CONFIG", address)
            except SpecError as exc:
                raise exc.under(f"cluster.{kind}") from None
    task = config.get("task")
    if not isinstance(task, dict):
        raise SpecError(f"expected {{\"type\": ..., \"index\": ...}}, received {task!r}",
                        "task", "TF_CONFIG")
    kind = task.get("type")
    if kind not in cluster:
        raise SpecError(f"expected one of the cluster's task types "
                        f"{', '.join(sorted(cluster))}, received {kind!r}", "task.type",
                        "TF_CONFIG")
    index = task.get("index", 0)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
        raise SpecError(f"expected an index in 0 .. {len(cluster[kind]) - 1} (the cluster's "
                        f"{len(cluster[kind])} {kind} address(es)), received {index!r}",
                        "task.index", "TF_CONFIG")


def check_torch(environ=None):
    """torchrun's `WORLD_SIZE`, `RANK`, `LOCAL_RANK`, `MASTER_ADDR` and
    `MASTER_PORT`."""
    environ = os.environ if environ is None else environ
    world = _integer("WORLD_SIZE", 1, environ=environ)
    if world is None or world == 1:
        return
    if _integer("RANK", 0, world - 1, environ) is None:
        raise SpecError(f"expected this process' rank in 0 .. {world - 1} "
                        f"(WORLD_SIZE={world}), received none; start with torchrun", file="RANK")
    _integer("LOCAL_RANK", 0, world - 1, environ)
    if not environ.get("MASTER_ADDR", "").strip():
        raise SpecError("expected the rendezvous host (torchrun sets it), received none",
                        file="MASTER_ADDR")
    _integer("MASTER_PORT", 1, 65535, environ)


def check_environment(backend, environ=None):
    """Raises SpecError naming the variable when `backend`'s engine would
    fail on its multi-process variables."""
    {"jax": check_jax, "tensorflow": check_tensorflow, "torch": check_torch}[backend](environ)
