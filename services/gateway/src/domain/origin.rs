//! Which browser origins may use the gateway (`CAAS_GATEWAY_ALLOWED_ORIGINS`): parsing the
//! setting and deciding one request, without I/O.
//!
//! An origin is `scheme://host[:port]` (RFC 6454), compared after normalising: scheme and host
//! lowercased, the scheme's default port dropped (`https://a.example:443` is
//! `https://a.example`, which is what browsers send). Besides the configured list, a request
//! is always allowed when it carries no `Origin` (not a browser: the load generator, curl,
//! another service) or when its `Origin` names the host the request was sent to (the dashboard
//! the gateway serves itself). The same-origin comparison uses the authority only, since a
//! gateway behind a TLS-terminating proxy cannot tell the scheme the browser used.

use std::fmt;

/// The origins allowed besides requests without an `Origin` and same-origin ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: any origin (a public API behind its own access control).
    Any,
    /// These exact origins; empty means same-origin only (the default).
    List(Vec<Origin>),
}

impl Default for AllowedOrigins {
    fn default() -> Self {
        AllowedOrigins::List(Vec::new())
    }
}

/// A normalised web origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`, lowercase.
    scheme: String,
    /// Host name, IPv4 address or bracketed IPv6 address, lowercase.
    host: String,
    /// The port when it is not the scheme's default.
    port: Option<u16>,
}

/// Why a value is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// No `scheme://` in front.
    #[error("{0:?} has no scheme; write it as http://host[:port] or https://host[:port]")]
    NoScheme(String),
    /// A scheme browsers do not use for pages that call the gateway.
    #[error("{0:?} has scheme {1:?}; only http and https origins can be allowed")]
    UnsupportedScheme(String, String),
    /// A path, query or fragment after the authority.
    #[error(
        "{0:?} has a path, query or fragment; an origin is only scheme://host[:port] \
         (no trailing slash)"
    )]
    HasPath(String),
    /// `user@host`.
    #[error("{0:?} has user information; an origin is only scheme://host[:port]")]
    HasUserInfo(String),
    /// An empty or malformed host.
    #[error("{0:?} has no valid host name")]
    BadHost(String),
    /// A port that is not a number from 1 to 65535.
    #[error("{0:?} has an invalid port")]
    BadPort(String),
    /// `*` listed together with other origins.
    #[error("* allows every origin and cannot be combined with a list")]
    WildcardInList,
}

impl Origin {
    /// Parse `scheme://host[:port]`.
    pub fn parse(raw: &str) -> Result<Self, OriginError> {
        let text = raw.trim();
        let (scheme, authority) = text
            .split_once("://")
            .ok_or_else(|| OriginError::NoScheme(text.to_string()))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(OriginError::UnsupportedScheme(text.to_string(), scheme));
        }
        if authority.contains(['/', '?', '#']) {
            return Err(OriginError::HasPath(text.to_string()));
        }
        if authority.contains('@') {
            return Err(OriginError::HasUserInfo(text.to_string()));
        }
        let (host, port) =
            split_authority(authority).ok_or_else(|| OriginError::BadHost(text.to_string()))?;
        let port = match port {
            None => None,
            Some(digits) => {
                Some(parse_port(digits).ok_or_else(|| OriginError::BadPort(text.to_string()))?)
            }
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        Ok(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port: port.filter(|port| *port != default_port),
        })
    }

    /// `host[:port]` as a `Host` header names it (default port left out).
    fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// The scheme's default port.
    fn default_port(&self) -> u16 {
        if self.scheme == "https" {
            443
        } else {
            80
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}://{}", self.scheme, self.authority())
    }
}

/// `host[:port]` split into host and port digits; `None` when the host is not valid.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        // [IPv6]:port
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        let inside = &rest[..end];
        if inside.is_empty()
            || !inside
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return None;
        }
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let is_host_name = !host.starts_with('[')
        && !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if host.starts_with('[') || is_host_name {
        Some((host, port))
    } else {
        None
    }
}

fn parse_port(digits: &str) -> Option<u16> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u16>().ok().filter(|port| *port != 0)
}

impl AllowedOrigins {
    /// Parse the setting: `*`, or a comma-separated list of origins (empty: same-origin only).
    pub fn parse(raw: &str) -> Result<Self, OriginError> {
        let entries: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect();
        if entries.contains(&"*") {
            return if entries.len() == 1 {
                Ok(AllowedOrigins::Any)
            } else {
                Err(OriginError::WildcardInList)
            };
        }
        let mut origins: Vec<Origin> = Vec::with_capacity(entries.len());
        for entry in entries {
            let origin = Origin::parse(entry)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(AllowedOrigins::List(origins))
    }

    /// Whether a request with this `Origin` header, sent to this `Host`, is allowed. `None`
    /// for the origin means the request has no `Origin` header (not a browser page).
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if *self == AllowedOrigins::Any {
            return true;
        }
        // Opaque origins ("null": sandboxed frames, file:// pages) match nothing.
        let Ok(origin) = Origin::parse(origin) else {
            return false;
        };
        if let AllowedOrigins::List(origins) = self {
            if origins.contains(&origin) {
                return true;
            }
        }
        host.is_some_and(|host| same_authority(&origin, host))
    }

    /// For logs and docs: `*`, `same-origin only` or the list.
    pub fn describe(&self) -> String {
        match self {
            AllowedOrigins::Any => "*".to_string(),
            AllowedOrigins::List(origins) if origins.is_empty() => "same-origin only".to_string(),
            AllowedOrigins::List(origins) => origins
                .iter()
                .map(Origin::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// Whether `host` (a `Host` header) names the origin's host and port.
fn same_authority(origin: &Origin, host: &str) -> bool {
    let Some((host_name, port)) = split_authority(host.trim()) else {
        return false;
    };
    let port = match port {
        None => origin.default_port(),
        Some(digits) => match parse_port(digits) {
            Some(port) => port,
            None => return false,
        },
    };
    host_name.eq_ignore_ascii_case(&origin.host)
        && port == origin.port.unwrap_or(origin.default_port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(setting: &str) -> AllowedOrigins {
        AllowedOrigins::parse(setting).unwrap()
    }

    #[test]
    fn origins_are_normalised() {
        let origin = Origin::parse(" HTTPS://Ops.Example.COM:443 ").unwrap();
        assert_eq!(origin.to_string(), "https://ops.example.com");
        assert_eq!(
            Origin::parse("http://127.0.0.1:3000").unwrap().to_string(),
            "http://127.0.0.1:3000"
        );
        assert_eq!(
            Origin::parse("http://[::1]:8080").unwrap().to_string(),
            "http://[::1]:8080"
        );
        assert_eq!(
            Origin::parse("https://a.example:80").unwrap().to_string(),
            "https://a.example:80"
        );
    }

    #[test]
    fn values_that_are_not_origins_are_refused_with_the_reason() {
        let cases = [
            ("ops.example.com", "no scheme"),
            ("ftp://ops.example.com", "only http and https"),
            ("https://ops.example.com/", "no trailing slash"),
            ("https://ops.example.com/app", "path"),
            ("https://user@ops.example.com", "user information"),
            ("https://", "no valid host"),
            ("https://ops example.com", "no valid host"),
            ("https://ops.example.com:http", "invalid port"),
            ("https://ops.example.com:70000", "invalid port"),
            ("https://ops.example.com:0", "invalid port"),
            ("https://[zz]:1", "no valid host"),
        ];
        for (value, reason) in cases {
            let error = Origin::parse(value).unwrap_err().to_string();
            assert!(error.contains(reason), "{value}: {error}");
        }
        assert_eq!(
            AllowedOrigins::parse("*, https://a.example"),
            Err(OriginError::WildcardInList)
        );
    }

    #[test]
    fn the_setting_is_a_list_a_wildcard_or_empty() {
        assert_eq!(allowed(""), AllowedOrigins::List(Vec::new()));
        assert_eq!(allowed(" , "), AllowedOrigins::List(Vec::new()));
        assert_eq!(allowed(" * "), AllowedOrigins::Any);
        assert_eq!(
            allowed("https://a.example, https://A.example:443,http://b.example:8080").describe(),
            "https://a.example,http://b.example:8080"
        );
        assert_eq!(allowed("").describe(), "same-origin only");
    }

    #[test]
    fn requests_without_an_origin_are_always_allowed() {
        assert!(allowed("").allows(None, None));
        assert!(allowed("https://a.example").allows(None, Some("gateway:3000")));
    }

    #[test]
    fn the_gateways_own_pages_are_allowed_by_default() {
        let same_origin_only = allowed("");
        assert!(same_origin_only.allows(Some("http://127.0.0.1:3000"), Some("127.0.0.1:3000")));
        assert!(same_origin_only.allows(Some("https://ops.example.com"), Some("OPS.example.com")));
        assert!(
            same_origin_only.allows(Some("https://ops.example.com"), Some("ops.example.com:443"))
        );
        assert!(same_origin_only.allows(Some("http://[::1]:3000"), Some("[::1]:3000")));
        // Another port of the same host is another origin.
        assert!(!same_origin_only.allows(Some("http://127.0.0.1:3001"), Some("127.0.0.1:3000")));
        assert!(!same_origin_only.allows(Some("http://127.0.0.1"), Some("127.0.0.1:3000")));
        assert!(!same_origin_only.allows(Some("https://evil.example"), Some("ops.example.com")));
        // Without a Host header only the list counts.
        assert!(!same_origin_only.allows(Some("http://127.0.0.1:3000"), None));
    }

    #[test]
    fn listed_origins_are_allowed_and_others_are_not() {
        let list = allowed("https://ops.example.com,http://localhost:5173");
        assert!(list.allows(Some("https://ops.example.com"), Some("gateway:3000")));
        assert!(list.allows(Some("https://OPS.example.com:443"), Some("gateway:3000")));
        assert!(list.allows(Some("http://localhost:5173"), Some("gateway:3000")));
        assert!(!list.allows(Some("http://ops.example.com"), Some("gateway:3000")));
        assert!(!list.allows(
            Some("https://ops.example.com.evil.example"),
            Some("gateway:3000")
        ));
        assert!(!list.allows(Some("http://localhost:5174"), Some("gateway:3000")));
    }

    #[test]
    fn opaque_and_malformed_origins_are_refused_unless_any_is_allowed() {
        for origin in ["null", "", "not an origin", "https://a.example/path"] {
            assert!(
                !allowed("").allows(Some(origin), Some("a.example")),
                "{origin}"
            );
            assert!(
                allowed("*").allows(Some(origin), Some("a.example")),
                "{origin}"
            );
        }
    }
}
