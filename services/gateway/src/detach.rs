//! Detach a socket.io request from hyper's read buffer.
//!
//! hyper parses a request head in place: the URI and every header value are slices (`Bytes`) of
//! the connection's read buffer, about 16 KiB. socketioxide keeps the handshake request's parts
//! for the whole life of the socket (handlers read them through `Socket::req_parts`), so those
//! few hundred bytes of headers (and axum's `OriginalUri` copy of the URI) kept each socket's
//! whole read buffer alive: measured with
//! heaptrack, 25 KiB of the 36 KiB an idle socket cost. Copying the URI and the header values
//! into their own small allocations before socketioxide sees the request lets the buffer go.

use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderMap, HeaderValue, Uri};

use crate::cors::is_socket_io;

/// The request with its URI (and axum's copy of it) and header values copied out of the
/// connection's read buffer. Only socket.io requests are copied: a REST request's parts die
/// with the request, so copying them would be work for nothing.
pub async fn detach(request: Request) -> Request {
    if !is_socket_io(request.uri()) {
        return request;
    }
    let (mut parts, body) = request.into_parts();
    parts.uri = owned_uri(&parts.uri);
    parts.headers = owned_headers(&parts.headers);
    if let Some(OriginalUri(original)) = parts.extensions.get::<OriginalUri>() {
        let owned = owned_uri(original);
        parts.extensions.insert(OriginalUri(owned));
    }
    Request::from_parts(parts, body)
}

fn owned_uri(uri: &Uri) -> Uri {
    // Parsing a `String` makes the new URI own its bytes.
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        // `from_bytes` copies; `clone` would share the read buffer.
        let copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        owned.append(name.clone(), copy);
    }
    owned
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::body::Bytes;

    #[tokio::test]
    async fn the_detached_request_keeps_every_header_and_the_uri_but_not_the_buffer() {
        // A "read buffer" whose slices the request's header values are, as hyper makes them.
        let buffer = Bytes::from(vec![b'x'; 16 * 1024]);
        let inside = |pointer: *const u8| buffer.as_ptr_range().contains(&pointer);
        let value = HeaderValue::from_maybe_shared(buffer.slice(0..8)).expect("valid value");
        let mut request = Request::builder()
            .uri("/socket.io/?EIO=4&transport=websocket")
            .header("origin", "http://127.0.0.1:3000")
            .body(Body::empty())
            .expect("a request");
        request.headers_mut().insert("x-sliced", value);
        assert!(inside(request.headers()["x-sliced"].as_bytes().as_ptr()));

        let detached = detach(request).await;

        assert_eq!(
            detached.uri().to_string(),
            "/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(detached.headers()["origin"], "http://127.0.0.1:3000");
        assert_eq!(detached.headers()["x-sliced"], "xxxxxxxx");
        assert!(
            !inside(detached.headers()["x-sliced"].as_bytes().as_ptr()),
            "the header value still points into the read buffer"
        );

        // A REST request is passed on as it is.
        let mut rest = Request::builder()
            .uri("/api/v1/conversations")
            .body(Body::empty())
            .expect("a request");
        let value = HeaderValue::from_maybe_shared(buffer.slice(8..16)).expect("valid value");
        rest.headers_mut().insert("x-sliced", value);
        let passed = detach(rest).await;
        assert!(inside(passed.headers()["x-sliced"].as_bytes().as_ptr()));
    }
}
