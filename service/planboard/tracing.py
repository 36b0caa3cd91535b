"""OpenTelemetry tracing: off unless the standard ``OTEL_*`` variables turn it on.

Tracing is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
or ``OTEL_TRACES_EXPORTER`` is set, ``OTEL_TRACES_EXPORTER`` is not ``none`` and
``OTEL_SDK_DISABLED`` is not ``true`` (docs/observability.md). Off, nothing is
instrumented and this module imports nothing of OpenTelemetry: every helper below starts
with one ``_state is None`` test.

On, ``configure()`` installs an SDK ``TracerProvider`` (resource from ``OTEL_SERVICE_NAME``
/ ``OTEL_RESOURCE_ATTRIBUTES``, sampler from ``OTEL_TRACES_SAMPLER``, batch export over
OTLP/HTTP) and instruments:

- the aiohttp server (the official middleware, outermost on the API app),
- the aiohttp client (webhook deliveries and any other outgoing call),
- PyMongo (the official ``CommandListener``; it works for ``AsyncMongoClient`` too, for
  clients created after ``configure()``), inside traces only (no one-span traces of the
  background polling),
- Kafka by hand (the official aiokafka instrumentation would inject the relay's own
  context, not the API request's stored with the outbox event): the API request's W3C
  context is stored with each outbox event (``current_carrier()``), the relay sends it as
  the ``traceparent``/``tracestate`` headers of a "publish <type>" PRODUCER span
  (``publish_span()``), and the consumer runner wraps the handler in a "process <type>"
  CONSUMER span whose parent is that context (``process_span()``).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from planboard.config import SettingsError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

TRACE_HEADERS = ("traceparent", "tracestate")
EXPORTERS = ("otlp", "console", "none")
# Probes and scrapes are not worth a trace each; OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS
# (or OTEL_PYTHON_EXCLUDED_URLS) replaces this default.
DEFAULT_EXCLUDED_URLS = "^/healthz$,^/readyz$,^/metrics$"


@dataclass
class _State:
    provider: TracerProvider
    tracer: Tracer
    server_middleware: Middleware
    instrumentors: list[Any] = field(default_factory=list)


_state: _State | None = None


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _exporters(env: Mapping[str, str]) -> list[str]:
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    names = [part.strip() for part in raw.split(",") if part.strip()] or ["otlp"]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise SettingsError(
            f"OTEL_TRACES_EXPORTER: unsupported exporter(s) {unknown}; use otlp, console or none"
        )
    return [name for name in names if name != "none"]


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment turns tracing on (the rule in the module docstring)."""
    env = _environ(environ)
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    configured = any(
        env.get(name, "").strip()
        for name in (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_TRACES_EXPORTER",
        )
    )
    return configured and bool(_exporters(env))


def is_enabled() -> bool:
    return _state is not None


def configure(
    service_name: str,
    *,
    environ: Mapping[str, str] | None = None,
    span_processors: Sequence[SpanProcessor] = (),
) -> bool:
    """Install tracing for this process if the environment asks for it; True when on.

    ``span_processors`` (tests) are used instead of the exporters of the environment and
    turn tracing on regardless of it (``OTEL_SDK_DISABLED=true`` still wins). Call it once,
    before the process creates its MongoDB clients and its API app; again is a no-op.
    """
    global _state
    if _state is not None:
        return True
    env = _environ(environ)
    if span_processors:
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return False
    elif not requested(env):
        return False

    from opentelemetry import trace
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.aiohttp_server import (
        AioHttpServerInstrumentor,
        create_aiohttp_middleware,
    )
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    resource = Resource.create({} if named else {SERVICE_NAME: service_name})
    processors = list(span_processors) or [BatchSpanProcessor(e) for e in _build_exporters(env)]
    provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER
    # MongoDB commands outside any trace (the relay's and workers' polling, lease renewals,
    # readiness pings) would each be a trace of one span, several per second: PyMongo's
    # spans come from a provider that records them only inside a sampled trace.
    mongo_provider = TracerProvider(
        resource=resource, sampler=ParentBased(root=ALWAYS_OFF), shutdown_on_exit=False
    )
    for processor in processors:
        provider.add_span_processor(processor)
        mongo_provider.add_span_processor(processor)
    # The global provider is for third-party code; ours is passed explicitly. It can be set
    # only once per process (the SDK refuses a second one with a warning).
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)

    if not (
        env.get("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS") or env.get("OTEL_PYTHON_EXCLUDED_URLS")
    ):
        os.environ["OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS"] = DEFAULT_EXCLUDED_URLS
    # The server instrumentor replaces web.Application by a subclass that adds its
    # middleware; we only want its set-up (excluded URLs, instruments), and add the
    # middleware to the API app ourselves (instrument_app), so the relay's and the
    # workers' /metrics apps stay untraced.
    server = AioHttpServerInstrumentor()
    with warnings.catch_warnings():  # aiohttp frowns on the subclass we do not use
        warnings.simplefilter("ignore", DeprecationWarning)
        server.instrument(tracer_provider=provider)
    server.uninstrument()
    client = AioHttpClientInstrumentor()
    client.instrument(tracer_provider=provider)
    mongo = PymongoInstrumentor()
    mongo.instrument(tracer_provider=mongo_provider)
    _state = _State(
        provider=provider,
        tracer=provider.get_tracer("planboard"),
        server_middleware=create_aiohttp_middleware(tracer_provider=provider),
        instrumentors=[client, mongo],
    )
    log.info("tracing on", extra={"service_name": resource.attributes.get(SERVICE_NAME)})
    return True


def _build_exporters(env: Mapping[str, str]) -> list[Any]:
    names = _exporters(env)
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or ""
    ).strip()
    if "otlp" in names and protocol not in ("", "http/protobuf"):
        raise SettingsError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is supported"
        )
    exporters: list[Any] = []
    if "otlp" in names:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())
    if "console" in names:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporters.append(ConsoleSpanExporter())
    return exporters


def shutdown() -> None:
    """Flush and stop: remove the instrumentation (tests) and export what is buffered."""
    global _state
    state, _state = _state, None
    if state is None:
        return
    for instrumentor in state.instrumentors:
        instrumentor.uninstrument()
    state.provider.shutdown()


def instrument_app(app: web.Application) -> None:
    """Put the server-span middleware first (outermost) on the API app, when tracing is on."""
    if _state is not None:
        app.middlewares.insert(0, _state.server_middleware)


# -- context carried through the outbox and Kafka ------------------------------------------


def current_carrier() -> dict[str, str] | None:
    """The current span's W3C ``traceparent``/``tracestate``, or None (tracing off/no span)."""
    if _state is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier or None


def current_trace_id() -> str | None:
    """The current trace id (32 hex digits), or None."""
    if _state is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _only_trace_headers(carrier: Mapping[str, Any] | None) -> dict[str, str]:
    return {k: str(v) for k, v in (carrier or {}).items() if k in TRACE_HEADERS and v}


@contextmanager
def publish_span(
    event_type: str, event_id: str, topic: str, carrier: Mapping[str, Any] | None
) -> Iterator[list[tuple[str, bytes]]]:
    """A PRODUCER span, child of the stored ``carrier``; yields the Kafka trace headers.

    With tracing off the stored context is forwarded as it is, so a worker that traces
    still joins the API request's trace.
    """
    stored = _only_trace_headers(carrier)
    if _state is None:
        yield [(k, v.encode()) for k, v in stored.items()]
        return
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    span = _state.tracer.start_span(
        f"publish {event_type}",
        context=propagator.extract(stored),
        kind=SpanKind.PRODUCER,
        attributes=_messaging_attributes("send", topic, event_type, event_id),
    )
    headers: dict[str, str] = {}
    propagator.inject(headers, context=trace.set_span_in_context(span))
    try:
        yield [(k, v.encode()) for k, v in headers.items()]
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        span.end()


@contextmanager
def process_span(
    group: str,
    event_type: str,
    event_id: str,
    topic: str,
    headers: Sequence[tuple[str, bytes]] | None,
    attempt: int = 0,
) -> Iterator[None]:
    """A CONSUMER span around a handler, child of the record's ``traceparent`` header."""
    if _state is None:
        yield
        return
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {k: bytes(v).decode("latin-1") for k, v in headers or () if k in TRACE_HEADERS}
    attributes = _messaging_attributes("process", topic, event_type, event_id)
    attributes.update({"messaging.consumer.group.name": group, "planboard.attempt": attempt})
    with _state.tracer.start_as_current_span(
        f"process {event_type}",
        context=TraceContextTextMapPropagator().extract(carrier),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ):
        yield


def _messaging_attributes(
    operation: str, topic: str, event_type: str, event_id: str
) -> dict[str, str | int]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.destination.name": topic,
        "messaging.message.id": event_id,
        "planboard.event.type": event_type,
    }
