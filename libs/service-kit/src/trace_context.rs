//! W3C trace context (`traceparent`, `tracestate`) carried in Kafka message headers, so one
//! trace follows a batch from the extractor through the transformer to the loader.

pub use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The headers W3C trace context travels in.
const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// Adds the trace context of `span` to `headers` (unchanged when the span is not sampled or
/// tracing is off).
pub fn inject(span: &tracing::Span, headers: OwnedHeaders) -> OwnedHeaders {
    let mut writer = HeaderWriter {
        headers: Some(headers),
    };
    TraceContextPropagator::new().inject_context(&span.context(), &mut writer);
    writer.headers.unwrap_or_default()
}

/// Makes `span` a child of the trace context found in `headers`, if any.
pub fn continue_from(span: &tracing::Span, headers: Option<&BorrowedHeaders>) {
    let Some(headers) = headers else { return };
    let parent = TraceContextPropagator::new().extract(&HeaderReader { headers });
    // Fails only when the span is disabled; then there is nothing to link.
    let _ = span.set_parent(parent);
}

/// The remote trace context carried in `headers`, when they carry a valid one. A stage reads
/// it from the first record of a batch and makes the batch's span its child
/// ([`adopt_parent`]), so the trace goes on from the stage before.
pub fn parent_in(headers: Option<&BorrowedHeaders>) -> Option<Context> {
    let parent = TraceContextPropagator::new().extract(&HeaderReader { headers: headers? });
    parent.span().span_context().is_valid().then_some(parent)
}

/// Makes `span` a child of `parent` (nothing when there is none). Call it before the span is
/// first entered: a started span keeps the parent it started with.
pub fn adopt_parent(span: &tracing::Span, parent: Option<&Context>) {
    if let Some(parent) = parent {
        // Fails only when the span is disabled or already started; then it stays a root.
        let _ = span.set_parent(parent.clone());
    }
}

/// The trace context of one span as header values, computed once and written into many
/// records' headers in place of the trace context they came with ([`Self::replace_in`]).
#[derive(Debug, Clone, Default)]
pub struct TraceHeaders {
    values: Vec<(String, String)>,
}

impl TraceHeaders {
    /// The trace context of `span`; empty when the span is not sampled or tracing is off.
    pub fn of(span: &tracing::Span) -> TraceHeaders {
        let mut collector = HeaderCollector::default();
        TraceContextPropagator::new().inject_context(&span.context(), &mut collector);
        TraceHeaders {
            values: collector.values,
        }
    }

    /// `headers` with their trace context replaced by this one and every other header kept;
    /// unchanged when this one is empty, so a record's upstream context is never dropped for
    /// nothing.
    pub fn replace_in(&self, headers: Option<OwnedHeaders>) -> Option<OwnedHeaders> {
        if self.values.is_empty() {
            return headers;
        }
        let count = headers.as_ref().map_or(0, Headers::count);
        let mut replaced = OwnedHeaders::new_with_capacity(count + self.values.len());
        if let Some(headers) = &headers {
            for header in headers.iter() {
                if !TRACE_HEADERS
                    .iter()
                    .any(|name| header.key.eq_ignore_ascii_case(name))
                {
                    replaced = replaced.insert(header);
                }
            }
        }
        for (key, value) in &self.values {
            replaced = replaced.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        Some(replaced)
    }
}

#[derive(Default)]
struct HeaderCollector {
    values: Vec<(String, String)>,
}

impl Injector for HeaderCollector {
    fn set(&mut self, key: &str, value: String) {
        self.values.push((key.to_owned(), value));
    }
}

struct HeaderWriter {
    headers: Option<OwnedHeaders>,
}

impl Injector for HeaderWriter {
    fn set(&mut self, key: &str, value: String) {
        let headers = self.headers.take().unwrap_or_default();
        self.headers = Some(headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        }));
    }
}

struct HeaderReader<'a> {
    headers: &'a BorrowedHeaders,
}

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|header| header.key.eq_ignore_ascii_case(key))
            .and_then(|header| header.value)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.headers.iter().map(|header| header.key).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn a_span_continued_from_injected_headers_joins_the_same_trace() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let producer_span = tracing::info_span!("produce_batch");
            let headers = inject(&producer_span, OwnedHeaders::new());
            let traceparent = (0..headers.count())
                .map(|i| headers.get(i))
                .find(|h| h.key == "traceparent")
                .and_then(|h| h.value.map(<[u8]>::to_vec))
                .expect("traceparent header");
            assert!(traceparent.starts_with(b"00-"));

            let consumer_span = tracing::info_span!("consume_batch");
            continue_from(&consumer_span, Some(headers.as_borrowed()));
            let produced = producer_span.context().span().span_context().trace_id();
            let consumed = consumer_span.context().span().span_context().trace_id();
            assert_eq!(produced, consumed);
        });
    }

    fn header(headers: &OwnedHeaders, key: &str) -> Vec<Vec<u8>> {
        headers
            .iter()
            .filter(|h| h.key == key)
            .filter_map(|h| h.value.map(<[u8]>::to_vec))
            .collect()
    }

    #[test]
    fn a_middle_stage_replaces_the_trace_context_and_keeps_the_other_headers() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let upstream = tracing::info_span!("extract");
            let incoming = inject(&upstream, OwnedHeaders::new()).insert(Header {
                key: "cdc.other",
                value: Some(b"kept".as_slice()),
            });

            let parent = parent_in(Some(incoming.as_borrowed()));
            let middle = tracing::info_span!("transform");
            adopt_parent(&middle, parent.as_ref());
            let outgoing = TraceHeaders::of(&middle)
                .replace_in(Some(incoming.clone()))
                .expect("headers");

            assert_eq!(header(&outgoing, "cdc.other"), vec![b"kept".to_vec()]);
            let traceparents = header(&outgoing, "traceparent");
            assert_eq!(traceparents.len(), 1, "one trace context, not two");
            assert_ne!(traceparents, header(&incoming, "traceparent"));
            let downstream = tracing::info_span!("load");
            adopt_parent(
                &downstream,
                parent_in(Some(outgoing.as_borrowed())).as_ref(),
            );
            let trace = |span: &tracing::Span| span.context().span().span_context().trace_id();
            assert_eq!(trace(&downstream), trace(&upstream));
        });
    }

    #[test]
    fn without_tracing_the_upstream_trace_context_is_kept() {
        let incoming = OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".as_slice()),
        });
        assert!(parent_in(Some(incoming.as_borrowed())).is_some());
        let unsampled = TraceHeaders::default();
        let outgoing = unsampled
            .replace_in(Some(incoming.clone()))
            .expect("headers");
        assert_eq!(
            header(&outgoing, "traceparent"),
            header(&incoming, "traceparent")
        );
        assert!(parent_in(None).is_none());
        assert!(parent_in(Some(OwnedHeaders::new().as_borrowed())).is_none());
    }
}
