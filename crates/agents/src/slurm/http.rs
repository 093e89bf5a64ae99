//! Just enough HTTP/1.1 to talk to `slurmrestd`: one request per connection.
//!
//! Each request is sent with `Connection: close`, and the response is read until it is whole:
//! by `Content-Length`, by chunked transfer coding, or up to the end of the stream when it has
//! neither. The parser works on bytes ([`parse_response`] says "incomplete" until it has
//! everything), so the same code serves the async transport (tokio, the normal path) and the
//! blocking one (std, for cancelling a job from `Drop`, where there is no runtime to lean on).
//! No TLS: `slurmrestd` listens on a unix socket or plain HTTP behind the site's own proxy.

use std::io::{Read, Write};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where `slurmrestd` listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    Unix(std::path::PathBuf),
    /// `host:port` and a path prefix (without a trailing `/`).
    Tcp {
        authority: String,
        prefix: String,
    },
}

impl Address {
    /// `unix:/path`, `/path`, or `http://host[:port][/prefix]`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix:").or_else(|| text.starts_with('/').then_some(text)) {
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.starts_with('/') {
                return Err("a unix socket path must be absolute, e.g. unix:/run/slurmrestd/slurmrestd.socket".to_owned());
            }
            return Ok(Self::Unix(path.into()));
        }
        if text.starts_with("https://") {
            return Err("https is not supported: use slurmrestd's unix socket, or plain http on a trusted network".to_owned());
        }
        let Some(rest) = text.strip_prefix("http://") else {
            return Err("expected `unix:/path/to/socket` or `http://host:port`".to_owned());
        };
        let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() {
            return Err("the URL has no host".to_owned());
        }
        let authority = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
        let prefix = prefix.trim_end_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
        Ok(Self::Tcp { authority, prefix })
    }

    fn host_header(&self) -> &str {
        match self {
            Self::Unix(_) => "localhost",
            Self::Tcp { authority, .. } => authority,
        }
    }

    fn prefix(&self) -> &str {
        match self {
            Self::Unix(_) => "",
            Self::Tcp { prefix, .. } => prefix,
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp { authority, prefix } => write!(f, "http://{authority}{prefix}"),
        }
    }
}

/// A request's bytes: `headers` are extra `(name, value)` pairs.
pub(crate) fn request(address: &Address, method: &str, path: &str, headers: &[(String, String)], body: Option<&[u8]>) -> Vec<u8> {
    let mut head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\nUser-Agent: fugue\r\n",
        address.prefix(),
        address.host_header()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    bytes
}

/// A response: status code and body (de-chunked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a whole response from `buf`; `Ok(None)` while more bytes are needed. `eof` says the
/// peer closed the connection (ends a body that has no length).
pub(crate) fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if eof { Err("the connection closed before the response headers ended".to_owned()) } else { Ok(None) };
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "the response headers are not text".to_owned())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: `{status_line}`"));
    }
    let status: u16 = parts.next().and_then(|c| c.parse().ok()).ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| format!("bad Content-Length `{value}`"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    let body = &buf[end + 4..];
    if chunked {
        return Ok(dechunk(body, eof)?.map(|body| Response { status, body }));
    }
    match length {
        Some(n) if body.len() >= n => Ok(Some(Response { status, body: body[..n].to_vec() })),
        Some(_) if eof => Err("the connection closed before the body ended".to_owned()),
        Some(_) => Ok(None),
        None if eof => Ok(Some(Response { status, body: body.to_vec() })),
        None => Ok(None),
    }
}

fn dechunk(mut rest: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    let incomplete = |eof: bool| if eof { Err("the connection closed inside a chunked body".to_owned()) } else { Ok(None) };
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else { return incomplete(eof) };
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size line".to_owned())?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size `{size_text}`"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(end) = find(rest, b"\r\n") else { return incomplete(eof) };
                if end == 0 {
                    return Ok(Some(body));
                }
                rest = &rest[end + 2..];
            }
        }
        if rest.len() < size + 2 {
            return incomplete(eof);
        }
        body.extend_from_slice(&rest[..size]);
        if &rest[size..size + 2] != b"\r\n" {
            return Err("a chunk does not end with CRLF".to_owned());
        }
        rest = &rest[size + 2..];
    }
}

/// Responses larger than this are refused (a job listing is a few KiB).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Sends `bytes` and reads the response, over tokio.
pub(crate) async fn send(address: &Address, bytes: &[u8]) -> Result<Response, String> {
    match address {
        Address::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| format!("failed to connect: {e}"))?;
            exchange(stream, bytes).await
        }
        Address::Tcp { authority, .. } => {
            let stream = tokio::net::TcpStream::connect(authority.as_str()).await.map_err(|e| format!("failed to connect: {e}"))?;
            exchange(stream, bytes).await
        }
    }
}

async fn exchange(mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin, bytes: &[u8]) -> Result<Response, String> {
    stream.write_all(bytes).await.map_err(|e| format!("failed to send the request: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|e| format!("failed to read the response: {e}"))?;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(response) = parse_response(&buf, n == 0)? {
            return Ok(response);
        }
        if buf.len() > MAX_RESPONSE {
            return Err(format!("the response is larger than {MAX_RESPONSE} bytes"));
        }
    }
}

/// Sends `bytes` and reads the response without a runtime, each step bounded by `limit`.
pub(crate) fn send_blocking(address: &Address, bytes: &[u8], limit: Duration) -> Result<Response, String> {
    match address {
        Address::Unix(path) => {
            let stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| format!("failed to connect: {e}"))?;
            let _ = stream.set_read_timeout(Some(limit));
            let _ = stream.set_write_timeout(Some(limit));
            exchange_blocking(stream, bytes)
        }
        Address::Tcp { authority, .. } => {
            use std::net::ToSocketAddrs as _;
            let addr = authority
                .to_socket_addrs()
                .map_err(|e| format!("failed to resolve {authority}: {e}"))?
                .next()
                .ok_or_else(|| format!("{authority} resolves to no address"))?;
            let stream = std::net::TcpStream::connect_timeout(&addr, limit).map_err(|e| format!("failed to connect: {e}"))?;
            let _ = stream.set_read_timeout(Some(limit));
            let _ = stream.set_write_timeout(Some(limit));
            exchange_blocking(stream, bytes)
        }
    }
}

fn exchange_blocking(mut stream: impl Read + Write, bytes: &[u8]) -> Result<Response, String> {
    stream.write_all(bytes).map_err(|e| format!("failed to send the request: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).map_err(|e| format!("failed to read the response: {e}"))?;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(response) = parse_response(&buf, n == 0)? {
            return Ok(response);
        }
        if buf.len() > MAX_RESPONSE {
            return Err(format!("the response is larger than {MAX_RESPONSE} bytes"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(Address::parse("unix:/run/s.sock"), Ok(Address::Unix("/run/s.sock".into())));
        assert_eq!(Address::parse("/run/s.sock"), Ok(Address::Unix("/run/s.sock".into())));
        assert_eq!(Address::parse("unix:///run/s.sock"), Ok(Address::Unix("/run/s.sock".into())));
        assert_eq!(Address::parse("http://head:6820/"), Ok(Address::Tcp { authority: "head:6820".to_owned(), prefix: String::new() }));
        assert_eq!(
            Address::parse("http://head/slurm-api"),
            Ok(Address::Tcp { authority: "head:80".to_owned(), prefix: "/slurm-api".to_owned() })
        );
        assert!(Address::parse("https://head").is_err());
        assert!(Address::parse("unix:rel.sock").is_err());
        assert!(Address::parse("head:6820").is_err());
        assert_eq!(Address::parse("http://h:1/p").expect("ok").to_string(), "http://h:1/p");
    }

    #[test]
    fn request_bytes() {
        let a = Address::parse("http://h:1/api").expect("ok");
        let r = request(&a, "POST", "/x", &[("X-A".to_owned(), "b".to_owned())], Some(b"{}"));
        let text = String::from_utf8(r).expect("utf8");
        assert!(text.starts_with("POST /api/x HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\n"), "{text}");
        assert!(text.contains("X-A: b\r\n") && text.contains("Content-Length: 2\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{}"), "{text}");
    }

    #[test]
    fn content_length_bodies() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: x\r\n\r\nhello";
        for cut in 0..full.len() {
            assert_eq!(parse_response(&full[..cut], false), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse_response(full, false), Ok(Some(Response { status: 200, body: b"hello".to_vec() })));
        assert!(parse_response(&full[..full.len() - 1], true).is_err());
    }

    #[test]
    fn chunked_bodies() {
        let full = b"HTTP/1.1 500 INTERNAL ERROR\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-T: y\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse_response(&full[..cut], false), Ok(None), "cut at {cut}");
        }
        let r = parse_response(full, false).expect("ok").expect("whole");
        assert_eq!((r.status, r.body.as_slice()), (500, b"Wikipedia in \r\n\r\nchunks.".as_slice()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false).is_err());
    }

    #[test]
    fn bodies_to_eof_and_garbage() {
        assert_eq!(parse_response(b"HTTP/1.0 200 OK\r\n\r\nabc", false), Ok(None));
        assert_eq!(parse_response(b"HTTP/1.0 200 OK\r\n\r\nabc", true), Ok(Some(Response { status: 200, body: b"abc".to_vec() })));
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200", true).is_err());
    }

    proptest::proptest! {
        /// Any body, chunked any way, comes back whole.
        #[test]
        fn chunking_round_trips(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200), cuts in proptest::collection::vec(1usize..50, 0..6)) {
            let mut wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n".to_vec();
            let mut rest = body.as_slice();
            for cut in cuts {
                let n = cut.min(rest.len());
                if n == 0 { break; }
                wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            if !rest.is_empty() {
                wire.extend_from_slice(format!("{:X}\r\n", rest.len()).as_bytes());
                wire.extend_from_slice(rest);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let r = parse_response(&wire, false).expect("parses").expect("whole");
            proptest::prop_assert_eq!(r.body, body);
        }
    }
}
