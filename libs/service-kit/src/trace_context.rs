//! W3C trace context (`traceparent`, `tracestate`) carried in Kafka message headers, so one
//! trace follows a batch from the extractor through the transformer to the loader.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt;

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
}
