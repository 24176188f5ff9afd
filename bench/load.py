"""Load generators, run in their own process so they do not share the GIL of what they measure.

    python -m bench.load http --url http://127.0.0.1:8080 --path /api/v1/me --header 'Authorization: Bearer …'
        (--path is repeatable: each thread goes round the paths)
    python -m bench.load rpc --amqp amqp://… --service identity --method health
    python -m bench.load publish --amqp amqp://… --exchange identity.events --count 20000 --rate 5000

Each prints one JSON object on stdout: throughput, latency percentiles, errors.
Closed loop: every thread sends its next request when the previous one answered.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

import kernel  # noqa: F401  (filters eventlet's import warning before nameko is imported)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]  # nearest rank


def summary(latencies: list[float], seconds: float, errors: int, **extra) -> dict:
    """Throughput and latency percentiles (milliseconds) of the successful calls."""
    return {
        "count": len(latencies), "errors": errors, "seconds": round(seconds, 3),
        "per_second": len(latencies) / seconds if seconds else 0.0,
        **{f"p{p}_ms": (v * 1000 if (v := percentile(latencies, p)) is not None else None) for p in (50, 95, 99)},
        **extra,
    }


def closed_loop(threads: int, duration: float, warmup: float, make_call) -> dict:
    """Run `threads` threads, each calling its own make_call() result in a loop.

    Only calls that start after the warm-up and end before the deadline count.
    """
    start = time.monotonic()
    window = (start + warmup, start + warmup + duration)
    latencies, errors, lock = [], [0], threading.Lock()
    first_error: list[str] = []

    def run():
        call = make_call()
        mine, failed = [], 0
        while (began := time.monotonic()) < window[1]:
            try:
                call()
                ok = True
            except Exception as error:  # counted, reported, the loop goes on
                ok = False
                if not first_error:
                    first_error.append(f"{type(error).__name__}: {error}"[:300])
            ended = time.monotonic()
            if began >= window[0] and ended <= window[1]:
                if ok:
                    mine.append(ended - began)
                else:
                    failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(max(0.0, window[0] - time.monotonic()))
    cpu_at_window = time.process_time()  # this client's own CPU share of the window
    for worker in workers:
        worker.join()
    return summary(latencies, duration, errors[0], threads=threads, first_error=first_error[0] if first_error else None,
                   cpu_seconds=time.process_time() - cpu_at_window)


def http_call_factory(url: str, method: str, paths: list[str], body: str | None, headers: dict, expect: int):
    """Each thread goes round `paths` (several queries of one endpoint), one keep-alive connection each."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json", **headers} if body else headers

    def make_call():
        state = {"conn": None, "n": 0}

        def call():
            if state["conn"] is None:
                state["conn"] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            path = paths[state["n"] % len(paths)]
            state["n"] += 1
            try:
                state["conn"].request(method, path, body=body, headers=headers)
                response = state["conn"].getresponse()
                data = response.read()
            except Exception:
                state["conn"].close()
                state["conn"] = None  # reconnect on the next call
                raise
            if response.status != expect:
                raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")

        return call

    return make_call


def rpc_call_factory(amqp_uri: str, service: str, method: str, threads: int, timeout: float, call_args=()):
    from gateway.rpc import RpcPool

    pool = RpcPool({"AMQP_URI": amqp_uri, "serializer": "json"}, size=threads, timeout=timeout)

    def make_call():
        def call():
            with pool.client() as rpc:
                getattr(getattr(rpc, service), method)(*call_args)

        return call

    return pool, make_call


def publish(amqp_uri: str, exchange: str, routing_key: str, count: int, rate: float) -> dict:
    """Publish `count` audit-valid event envelopes, paced at `rate`/s (0: as fast as possible).

    Every body is an Event(...).to_dict() with a unique id, serialized before the clock
    starts with a gap where occurred_at goes: occurred_at is each event's publish time,
    and the generator reaches ~10k/s here (building the envelope per message would cap
    it near 2.5k/s, below the goal it must test). Persistent messages, as the outbox
    relay sends them; no publisher confirms (the caller checks that every event arrived).
    """
    import amqp
    from kombu import Connection, Exchange

    from kernel.envelope import Actor, Event, Resource, utc_now_iso

    run, mark = uuid.uuid4().hex[:8], "OCCURRED-AT-GOES-HERE"
    prepared = []
    for i in range(count):
        event = Event(type="identity.bench_ingested", source="identity", category="system", occurred_at=mark,
                      actor=Actor(username="bench"), resource=Resource("bench", f"{run}-{i}"), data={"n": i})
        head, tail = json.dumps(event.to_dict(), separators=(",", ":")).split(mark)
        prepared.append((event.id, head, tail))
    with Connection(amqp_uri, connect_timeout=10) as conn:
        channel = conn.default_channel
        if exchange:
            Exchange(exchange, "topic", durable=True)(channel).declare()
        started, cpu_started = time.time(), time.process_time()
        for i, (event_id, head, tail) in enumerate(prepared):
            if rate and (ahead := started + i / rate - time.time()) > 0:
                time.sleep(ahead)
            channel.basic_publish(amqp.Message(head + utc_now_iso() + tail, content_type="application/json",
                                               content_encoding="utf-8", delivery_mode=2, message_id=event_id),
                                  exchange=exchange, routing_key=routing_key)
        ended = time.time()
    return {"published": count, "first_ts": started, "last_ts": ended, "seconds": round(ended - started, 3),
            "per_second": count / (ended - started) if ended > started else 0.0,
            "cpu_seconds": time.process_time() - cpu_started}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    modes = parser.add_subparsers(dest="mode", required=True)
    for name in ("http", "rpc"):
        mode = modes.add_parser(name)
        mode.add_argument("--threads", type=int, default=8)
        mode.add_argument("--duration", type=float, default=15)
        mode.add_argument("--warmup", type=float, default=2)
    http_mode = modes.choices["http"]
    http_mode.add_argument("--url", required=True)
    http_mode.add_argument("--method", default="GET")
    http_mode.add_argument("--path", required=True, action="append", help="repeatable: threads go round them")
    http_mode.add_argument("--body", default=None, help="JSON request body")
    http_mode.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    http_mode.add_argument("--expect", type=int, default=200)
    rpc_mode = modes.choices["rpc"]
    rpc_mode.add_argument("--amqp", required=True)
    rpc_mode.add_argument("--service", default="identity")
    rpc_mode.add_argument("--method", default="health")
    rpc_mode.add_argument("--timeout", type=float, default=10)
    rpc_mode.add_argument("--args", default="[]", help="JSON list of the call's arguments")
    pub = modes.add_parser("publish")
    pub.add_argument("--amqp", required=True)
    pub.add_argument("--exchange", default="", help="topic exchange; empty: the default exchange")
    pub.add_argument("--routing-key", required=True)
    pub.add_argument("--count", type=int, required=True)
    pub.add_argument("--rate", type=float, default=0, help="events/s; 0: unpaced")
    args = parser.parse_args(argv)

    if args.mode == "http":
        headers = dict(h.split(": ", 1) for h in args.header)
        factory = http_call_factory(args.url, args.method, args.path, args.body, headers, args.expect)
        result = closed_loop(args.threads, args.duration, args.warmup, factory)
    elif args.mode == "rpc":
        pool, factory = rpc_call_factory(args.amqp, args.service, args.method, args.threads, args.timeout,
                                         json.loads(args.args))
        try:
            result = closed_loop(args.threads, args.duration, args.warmup, factory)
        finally:
            pool.close()
    else:
        result = publish(args.amqp, args.exchange, args.routing_key, args.count, args.rate)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
