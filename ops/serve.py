"""Run one process of Gatehouse: `python -m ops.serve identity|rbac|...|gateway`.

Services are eventlet programs and must monkey-patch before anything else is
imported; the gateway is a plain threaded WSGI server and must not.
"""
import sys

import kernel  # noqa: F401  (filters eventlet's import warning first)

if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] != "gateway":
    import eventlet

    eventlet.monkey_patch()

import faulthandler  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
from pathlib import Path  # noqa: E402

from kernel import SERVICES  # noqa: E402
from kernel.config import Config, ConfigError  # noqa: E402
from kernel.logs import configure as configure_logs  # noqa: E402

SERVICE_CLASSES = {
    "identity": "services.identity.service:IdentityService",
    "rbac": "services.rbac.service:RbacService",
    "tenancy": "services.tenancy.service:TenancyService",
    "audit": "services.audit.service:AuditService",
    "proxmox_sync": "services.proxmox_sync.service:ProxmoxSyncService",
}


def service_class(name: str):
    module, _, attr = SERVICE_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def all_service_classes():
    return [service_class(name) for name in SERVICES]


def serve_service(name: str) -> None:
    import eventlet
    from nameko.runners import ServiceRunner

    from kernel import topology
    from kernel.amqp.rpc_server import expire_reply_queues_after

    config = Config.from_env()
    configure_logs(name, config["GATEHOUSE_LOG_LEVEL"])
    # Every consumer queue exists before this process can publish anything.
    try:
        config.check()
        topology.declare(config.amqp_uri, all_service_classes(), config)
    except ConfigError as error:  # a wrong setting or queues of another type: say which, once
        sys.exit(f"{name}: {error}")
    expire_reply_queues_after(config.number("GATEHOUSE_REPLY_QUEUE_TTL"))
    runner = ServiceRunner(config.nameko())
    runner.add_service(service_class(name))

    def shutdown(signum, frame):
        eventlet.spawn_n(runner.stop)  # graceful: in-flight workers finish, outbox flushes

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGUSR1, _dump_green_stacks)
    faulthandler.register(signal.SIGUSR2, all_threads=True)  # the running stack, even when stuck in C
    runner.start()
    runner.wait()


def _dump_green_stacks(signum, frame) -> None:
    """SIGUSR1: every green thread's stack to stderr (where a stuck service waits)."""
    import gc
    import traceback

    import greenlet

    for thread in gc.get_objects():
        try:
            if isinstance(thread, greenlet.greenlet) and thread.gr_frame:
                print(f"--- {thread!r}\n{''.join(traceback.format_stack(thread.gr_frame))}", file=sys.stderr,
                      flush=True)
        except ReferenceError:  # a proxy whose object is gone
            continue


def json_server_errors() -> None:
    """gunicorn answers requests it cannot parse (URL or headers too long, bad request line)
    itself, as an HTML page; this gives those answers the API's one error shape instead."""
    import json

    from gunicorn import util

    from gateway.errors import HTTP_CODES
    from gateway.headers import SECURITY_HEADERS

    def write_error(sock, status_int, reason, mesg):
        body = json.dumps({"error": {"code": HTTP_CODES.get(status_int, "bad_request"), "message": f"{reason}: {mesg}",
                                     "details": {}}}).encode()
        head = [f"HTTP/1.1 {status_int} {reason}", "Connection: close", "Content-Type: application/json",
                f"Content-Length: {len(body)}", *(f"{name}: {value}" for name, value in SECURITY_HEADERS.items())]
        util.write_nonblock(sock, ("\r\n".join(head) + "\r\n\r\n").encode("latin1") + body)

    util.write_error = write_error


def prepare_metrics_folder(config: Config) -> Path:
    """For the gunicorn master, before any worker exists and before prometheus_client is
    imported (it picks its multiprocess mode at import): an empty folder where every worker
    writes its metric files, named in the environment the workers inherit. Emptied at each
    start (stale files would add to the counts); one per port, so gateways sharing a data
    folder keep theirs apart."""
    import shutil

    folder = config.data_dir / "metrics" / f"gateway-{config['GATEHOUSE_HTTP_PORT']}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder


def metrics_worker_exited(server, worker) -> None:
    """gunicorn's child_exit: the dead worker's live gauges (in flight) stop counting; its counters stay."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def serve_gateway() -> None:
    from gunicorn.app.base import BaseApplication

    config = Config.from_env()
    configure_logs("gateway", config["GATEHOUSE_LOG_LEVEL"])
    prepare_metrics_folder(config)

    class Gateway(BaseApplication):
        def load_config(self):
            for key, value in {
                "bind": f"{config['GATEHOUSE_HTTP_HOST']}:{config['GATEHOUSE_HTTP_PORT']}",
                "workers": config.integer("GATEHOUSE_GATEWAY_WORKERS"),
                "threads": config.integer("GATEHOUSE_GATEWAY_THREADS"),
                "worker_class": "gthread",
                "timeout": 60,
                "graceful_timeout": 20,
                "accesslog": None,
                "child_exit": metrics_worker_exited,
            }.items():
                self.cfg.set(key, value)

        def load(self):
            from gateway.app import create_app

            return create_app(config)

    json_server_errors()
    Gateway().run()


if __name__ == "__main__":
    target = sys.argv[1]
    if target == "gateway":
        serve_gateway()
    elif target in SERVICE_CLASSES:
        serve_service(target)
    else:
        sys.exit(f"unknown process {target!r}; one of: {', '.join(SERVICE_CLASSES)}, gateway")
