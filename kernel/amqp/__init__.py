"""Every place Gatehouse speaks AMQP itself instead of through plain nameko, and why.

Services are nameko services: their RPCs and events go through nameko's entrypoints and
proxies, on the queues and exchanges kernel/topology.py names. Six pieces go further,
each for a reason measured or seen failing (benchmarks in bench/, figures in README.md's
"Performance"; tests in tests/unit and tests/integration):

rpc_client.py, the gateway's RPC client (used through gateway/rpc.py)
    nameko's standalone proxy is not thread-safe and costs a publisher, a kombu connection
    object and a confirm round trip per call, plus a reply queue per proxy. Here every
    thread of a gunicorn worker shares one connection with one reply queue: a call is one
    publish and a wait for the reply with its correlation id (a bare RPC's CPU halved, from
    2.3 to 0.83 ms in all processes). Same wire protocol, so services see nameko's calls.

rpc_server.py, the services' RPC entrypoint (kernel.service's `@rpc`)
    nameko's Rpc entrypoint, with its queue of the configured type (quorum on a cluster);
    a request the broker delivers again is answered 503 request_interrupted, not run twice
    (a broker restart doubled logins); replies serialized once, on a pooled producer,
    transient and unconfirmed; an answer lost with the broker is dropped instead of
    stopping the service (nameko took it for a crash).

consumer.py, the event consumers' entrypoint (kernel.consumer's `@on_event`)
    nameko's Consumer, which can only ack or requeue a failed message, and kombu acks (drops)
    a body it cannot decode. Here, on kernel.topology's durable queue with its dead-letter
    exchange, a transient failure is requeued after a pause and anything else rejected, so
    the broker moves it into `<queue>.dead`; outcomes are counted in the metrics.

publisher.py, the outbox relay's publisher (kernel/outbox.py)
    nameko's event dispatcher publishes when the worker calls it, not once the database
    has committed: a crash loses the event, a rollback leaves it announcing nothing. The
    relay publishes what was committed, with publisher confirms (the row is marked sent
    only once the broker has it), mandatory (an event no queue would take is refused, not
    confirmed into the void) and broker timeouts on every read and write.

listener.py, the gateway's session cache listener (gateway/session_cache.py)
    nameko has no consumer for a process outside a nameko container, nor for a queue that
    must live and die with one process: each gateway process binds its own exclusive
    queue, and knows when it is not consuming (the cache is then not used: a cache that
    may have missed an event must not answer).

batch.py, audit's ingest (services/audit/ingest.py)
    nameko's entrypoints hand one message to one worker: audit stored one event per
    transaction (~850/s). This consumer gathers batches and settles each with one
    multiple-ack after its commit (5,975 events/s, the same as a raw kombu loop).

The shared policy (connection.py):
- one way to open a connection: `open_connection` (URL from kernel.config or the nameko
  config; connect timeout CONNECT_TIMEOUT; the piece's heartbeat; broker I/O timeouts for
  a publisher; a connection name the broker shows), opened by `connect` (an attempt and
  one retry, then it raises);
- heartbeats: 60 s for the RPC client, 10 s for the listener (a silently dead connection
  would leave the cache trusting itself), 30 s for audit's ingest; none for the outbox
  publisher, whose reads and writes time out after BROKER_TIMEOUT (15 s) instead; the
  nameko entrypoints keep nameko's (60 s);
- retry: no piece retries inside a library call; its own loop pauses as `Backoff` says
  (doubling from `first` up to `maximum`, reset once the piece works again): the outbox
  relay 0.5 s up to 30 s, audit's ingest 1 s up to 30 s, the listener every 1 s; the RPC
  client fails the call (503/504) and opens a new connection at the next call; the nameko
  entrypoints reconnect as nameko does, and the RPC replies keep nameko's publish retries;
- nothing is acked before it is done: a lost connection returns every unacked message to
  its queue.

kernel.amqp imports only kernel and libraries (never services, gateway or contracts).
"""
