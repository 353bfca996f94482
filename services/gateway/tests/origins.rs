//! The browser-origin policy (`CAAS_GATEWAY_ALLOWED_ORIGINS`) of a real gateway on the local
//! stack: an allowed origin gets the CORS grant and opens socket.io (polling and WebSocket), a
//! foreign origin gets no grant and a 403 on the handshake, a client without `Origin` (the load
//! generator, another service) is unaffected, and the gateway's own dashboard origin works with
//! the default setting.

mod common;

use common::{token, unique, Cluster, Gateway, TestSocket};
use reqwest::header;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Error as WsError;

const ALLOWED: &str = "https://ops.example.com";
const FOREIGN: &str = "https://evil.example";

fn url(gateway: &Gateway, path: &str) -> String {
    format!("http://{}{path}", gateway.address)
}

/// A CORS preflight for a REST call with a bearer token.
async fn preflight(gateway: &Gateway, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            url(gateway, "/api/v1/conversations"),
        )
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
        .send()
        .await
        .expect("preflight answered")
}

/// An engine.io long-polling handshake, with or without `Origin`.
async fn polling_handshake(gateway: &Gateway, origin: Option<&str>) -> reqwest::Response {
    let mut request =
        reqwest::Client::new().get(url(gateway, "/socket.io/?EIO=4&transport=polling"));
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    request.send().await.expect("handshake answered")
}

/// A WebSocket upgrade on `/socket.io` with `Origin`: `Ok` with the first frame (engine.io
/// OPEN), or the HTTP status it was refused with.
async fn websocket_handshake(gateway: &Gateway, origin: &str) -> Result<String, u16> {
    use futures::StreamExt as _;
    let mut request = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket",
        gateway.address
    )
    .into_client_request()
    .unwrap();
    request
        .headers_mut()
        .insert(header::ORIGIN, origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut stream, _)) => {
            let first = stream.next().await.expect("a frame").expect("a message");
            Ok(first.into_text().expect("text").to_string())
        }
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("websocket handshake failed otherwise: {other}"),
    }
}

fn allow_origin(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn an_allowed_origin_gets_cors_and_sockets_a_foreign_one_gets_neither() {
    let cluster = Cluster::new().await;
    let gateway = cluster
        .start(&[("CAAS_GATEWAY_ALLOWED_ORIGINS", ALLOWED)])
        .await;

    // REST: the preflight grants the allowed origin, not the foreign one.
    let granted = preflight(&gateway, ALLOWED).await;
    assert!(granted.status().is_success(), "{}", granted.status());
    assert_eq!(allow_origin(&granted), Some(ALLOWED));
    let refused = preflight(&gateway, FOREIGN).await;
    assert_eq!(allow_origin(&refused), None);

    // socket.io over polling: the allowed origin gets engine.io's OPEN packet, readable
    // cross-origin; the foreign one a 403 that says what to do.
    let open = polling_handshake(&gateway, Some(ALLOWED)).await;
    assert_eq!(open.status().as_u16(), 200);
    assert_eq!(allow_origin(&open), Some(ALLOWED));
    let body = open.text().await.unwrap();
    assert!(body.starts_with("0{"), "engine.io OPEN packet: {body}");

    let forbidden = polling_handshake(&gateway, Some(FOREIGN)).await;
    assert_eq!(forbidden.status().as_u16(), 403);
    assert_eq!(allow_origin(&forbidden), None);
    let error: Value = forbidden.json().await.expect("a JSON error");
    let message = error["error"].as_str().expect("an error message");
    assert!(message.contains(FOREIGN), "{message}");
    assert!(
        message.contains("CAAS_GATEWAY_ALLOWED_ORIGINS"),
        "{message}"
    );

    // socket.io over WebSocket (browsers apply no CORS to upgrades: the gateway must refuse).
    let opened = websocket_handshake(&gateway, ALLOWED).await;
    assert!(
        opened.as_deref().is_ok_and(|frame| frame.starts_with('0')),
        "{opened:?}"
    );
    assert_eq!(websocket_handshake(&gateway, FOREIGN).await, Err(403));

    gateway.stop().await;
}

#[tokio::test]
async fn clients_without_origin_and_the_gateways_own_pages_are_allowed_by_default() {
    let cluster = Cluster::new().await;
    let gateway = cluster.start(&[]).await;

    // No Origin (the load generator, services, curl): unaffected, a full sign-in works.
    let no_origin = polling_handshake(&gateway, None).await;
    assert_eq!(no_origin.status().as_u16(), 200);
    let operator = TestSocket::connect(
        gateway.address,
        Some(&token(&unique("t"), "op-1", "operator")),
    )
    .await
    .expect("a socket without Origin connects");
    drop(operator);

    // The dashboard served by this gateway: its origin is the gateway's own address.
    let own_origin = format!("http://{}", gateway.address);
    let same_origin = polling_handshake(&gateway, Some(&own_origin)).await;
    assert_eq!(same_origin.status().as_u16(), 200);
    assert!(websocket_handshake(&gateway, &own_origin).await.is_ok());

    // Any other origin is refused by default.
    let forbidden = polling_handshake(&gateway, Some(FOREIGN)).await;
    assert_eq!(forbidden.status().as_u16(), 403);
    assert_eq!(websocket_handshake(&gateway, FOREIGN).await, Err(403));
    assert_eq!(allow_origin(&preflight(&gateway, FOREIGN).await), None);

    gateway.stop().await;
}
