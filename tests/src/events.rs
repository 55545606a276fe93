//! A reader of a node's Server-Sent Events (`GET /v1/events`), for the tests.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

/// Reads Server-Sent Events from a response: (event name, data as JSON).
pub struct EventReader {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    buffer: String,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl EventReader {
    /// Opens `url` (a node's `/v1/events` with its query).
    ///
    /// # Panics
    /// When the request fails or the answer is not a 200 event stream.
    pub async fn open(url: &str) -> Self {
        let r = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .expect("events");
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{url}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("text/event-stream")
        );
        let stream = r.bytes_stream().map(|c| c.map(|b| b.to_vec()));
        EventReader {
            stream: Box::pin(stream),
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when the stream ended or nothing came within `wait`.
    ///
    /// # Panics
    /// When an event's data is not JSON or the stream fails.
    pub async fn next_within(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                return Some((
                    name,
                    serde_json::from_str(&data).expect("event data is JSON"),
                ));
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
        }
    }

    /// The next event within 10 s.
    ///
    /// # Panics
    /// When none comes.
    pub async fn next(&mut self) -> (String, Value) {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
    }
}
