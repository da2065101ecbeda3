//! One wording for a failed outgoing HTTP request, shared by the server's own clients (CDN
//! purges) and the command line, so an operator reads the same cause in a log and a terminal.

/// The innermost cause of a request error (e.g. "Connection refused (os error 111)"),
/// prefixed with what kind of failure it was.
pub fn explain(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "broken response"
    } else {
        "request failed"
    };
    let cause = cause.to_string();
    if e.is_timeout() && cause.contains("timed out") {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}
