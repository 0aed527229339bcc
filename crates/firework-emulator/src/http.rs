//! HTTP/1.1 request parsing and response encoding with the wire format of Firecracker's
//! HTTP server: no reason phrase after the status code, `Server: Firecracker API`,
//! `Connection: keep-alive`, and JSON bodies with `Content-Type` and `Content-Length`.

use std::fmt;

/// HTTP methods that Firecracker's server accepts; any other is a 400 at the HTTP layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn parse(raw: &str) -> Option<Method> {
        match raw {
            "GET" => Some(Method::Get),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed request. `body` is `Some` only when `Content-Length` is above zero, which is
/// how Firecracker decides that a body is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: String,
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// Builds a request without going through the wire format (for tests and the
    /// config-file boot path).
    pub fn new(method: Method, uri: &str, body: Option<&str>) -> Request {
        Request {
            method,
            uri: uri.to_string(),
            body: body.map(|text| text.as_bytes().to_vec()),
        }
    }

    /// Returns the path part of the URI: an absolute `http://host/x` URI becomes `/x`.
    pub fn path(&self) -> &str {
        let uri = self.uri.as_str();
        for scheme in ["http://", "https://"] {
            if let Some(rest) = uri.strip_prefix(scheme) {
                return rest.find('/').map_or("/", |index| &rest[index..]);
            }
        }
        uri
    }
}

/// Request line and headers, before the body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    pub uri: String,
    pub content_length: usize,
}

/// Errors of the HTTP layer. They are answered with a 400 whose body is
/// `{ "error": "<message>\nAll previous unanswered requests will be dropped." }`
/// and the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("Invalid HTTP Method.")]
    InvalidMethod,
    #[error("Unsupported HTTP version.")]
    InvalidVersion,
    #[error("Invalid URI.")]
    InvalidUri,
    #[error("Invalid request.")]
    InvalidRequest,
    #[error("Invalid header. Reason: {0}")]
    InvalidHeader(String),
    #[error(
        "Request payload with size {size} is larger than the limit of {limit} allowed by server."
    )]
    PayloadTooLarge { size: usize, limit: usize },
}

impl HttpError {
    /// Encodes the 400 reply Firecracker's HTTP layer sends for this error.
    pub fn to_response(&self) -> Response {
        let text = format!(
            "{{ \"error\": \"{}\nAll previous unanswered requests will be dropped.\" }}",
            self
        );
        Response {
            status: 400,
            body: Some(text),
            deprecation: false,
        }
    }
}

/// Parses the request line and headers (everything before the blank line).
pub fn parse_head(head: &[u8], max_payload: usize) -> Result<RequestHead, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::InvalidRequest)?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(HttpError::InvalidRequest)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::InvalidRequest);
    };
    let method = Method::parse(method).ok_or(HttpError::InvalidMethod)?;
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::InvalidVersion);
    }
    if uri.is_empty() || !(uri.starts_with('/') || uri.starts_with("http://")) {
        return Err(HttpError::InvalidUri);
    }

    let mut content_length = 0usize;
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| HttpError::InvalidHeader(format!("malformed header line {line:?}")))?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            content_length = value.trim().parse().map_err(|_| {
                HttpError::InvalidHeader(format!("invalid Content-Length {:?}", value.trim()))
            })?;
        }
    }
    if content_length > max_payload {
        return Err(HttpError::PayloadTooLarge {
            size: content_length,
            limit: max_payload,
        });
    }
    Ok(RequestHead {
        method,
        uri: uri.to_string(),
        content_length,
    })
}

/// A reply: status, optional JSON body, and whether a deprecated field was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Option<String>,
    pub deprecation: bool,
}

impl Response {
    pub fn no_content() -> Response {
        Response {
            status: 204,
            body: None,
            deprecation: false,
        }
    }

    pub fn json(value: &serde_json::Value) -> Response {
        Response {
            status: 200,
            body: Some(value.to_string()),
            deprecation: false,
        }
    }

    /// A 400 with `{"fault_message": "..."}`.
    pub fn fault(message: &str) -> Response {
        Response::fault_with_status(400, message)
    }

    pub fn fault_with_status(status: u16, message: &str) -> Response {
        Response {
            status,
            body: Some(serde_json::json!({ "fault_message": message }).to_string()),
            deprecation: false,
        }
    }

    /// The fault message, when this is an error reply with a JSON body.
    pub fn fault_message(&self) -> Option<String> {
        let body = self.body.as_deref()?;
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        value
            .get("fault_message")
            .and_then(|message| message.as_str())
            .map(str::to_string)
    }

    /// Encodes the reply byte for byte as Firecracker's HTTP server does.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n",
            self.status
        );
        if self.deprecation {
            out.push_str("Deprecation: true\r\n");
        }
        match &self.body {
            Some(body) => {
                out.push_str("Content-Type: application/json\r\n");
                out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                out.push_str(body);
            }
            None => out.push_str("\r\n"),
        }
        out.into_bytes()
    }
}

/// The raw reply sent to a connection above the limit of concurrent connections.
pub const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 \r\nServer: Firecracker API\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{ \"error\": \"Too many open connections\" }";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_put_with_body() {
        let head = parse_head(
            b"PUT /machine-config HTTP/1.1\r\nHost: localhost\r\nContent-Length: 12",
            51_200,
        )
        .unwrap();
        assert_eq!(head.method, Method::Put);
        assert_eq!(head.uri, "/machine-config");
        assert_eq!(head.content_length, 12);
    }

    #[test]
    fn unknown_method_rejected() {
        assert_eq!(
            parse_head(b"POST / HTTP/1.1", 100),
            Err(HttpError::InvalidMethod)
        );
        assert_eq!(
            parse_head(b"get / HTTP/1.1", 100),
            Err(HttpError::InvalidMethod)
        );
    }

    #[test]
    fn version_checked() {
        assert_eq!(
            parse_head(b"GET / HTTP/2.0", 100),
            Err(HttpError::InvalidVersion)
        );
    }

    #[test]
    fn payload_limit() {
        assert_eq!(
            parse_head(b"PUT /logger HTTP/1.1\r\nContent-Length: 101", 100),
            Err(HttpError::PayloadTooLarge {
                size: 101,
                limit: 100
            })
        );
    }

    #[test]
    fn absolute_uri_path() {
        let request = Request::new(Method::Get, "http://localhost/machine-config", None);
        assert_eq!(request.path(), "/machine-config");
    }

    #[test]
    fn encode_no_content() {
        assert_eq!(
            Response::no_content().encode(),
            b"HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn encode_fault() {
        let encoded = String::from_utf8(Response::fault("bad").encode()).unwrap();
        assert_eq!(
            encoded,
            "HTTP/1.1 400 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: 23\r\n\r\n{\"fault_message\":\"bad\"}"
        );
    }

    #[test]
    fn too_many_connections_length() {
        let text = std::str::from_utf8(TOO_MANY_CONNECTIONS).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(body.len(), 40);
    }
}
