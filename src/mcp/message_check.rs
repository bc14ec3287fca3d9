//! Checks one JSON-RPC message the way rmcp will read it, before rmcp sees
//! it, so that every message that needs an answer gets one (rmcp drops a
//! line serde_json calls a syntax error without a word). Shared by the stdio
//! front ([`super::stdio`]) and the HTTP front ([`super::http`]).
//!
//! A message is refused, with a JSON-RPC error carrying the request's id
//! when it can be read, when it is:
//! - not UTF-8, or holding an unpaired UTF-16 surrogate escape such as a
//!   lone `"\ud800"` (-32700): serde_json refuses both when it reads a
//!   string, as rmcp does, but not when it only skips over the text;
//! - nested deeper than [`MAX_DEPTH`] (-32600, found by a byte scan before
//!   any parsing);
//! - not JSON (-32700);
//! - JSON but not a JSON-RPC message rmcp can read (-32600), unless it is a
//!   notification: those need no answer, and rmcp skips unknown ones.

use rmcp::model::ClientJsonRpcMessage;
use serde_json::Value;
use thiserror::Error;

/// Deepest nesting of arrays and objects accepted in one message (the
/// message itself is level 1). MCP requests are shallow; the bound keeps
/// well below serde_json's recursion limit (it accepts 127 levels and then
/// fails with a syntax error rmcp drops silently), so every message too
/// deep for the parser is refused here, before parsing, with its id.
pub const MAX_DEPTH: usize = 64;
/// Bytes of an oversized line kept to find its id.
pub const ID_PREFIX_BYTES: usize = 4096;
/// Why a message is refused; the text is the JSON-RPC error's message.
#[derive(Debug, Error)]
pub enum BadMessage {
    #[error(
        "request too large: {size} bytes, over the {limit}-byte limit for one message. \
         Send less code or data per call (sandbox_file_ops writes files up to its own limit)"
    )]
    TooLarge { size: usize, limit: usize },
    #[error("parse error: the message is not valid UTF-8 (bad byte at offset {at}); JSON text must be UTF-8")]
    NotUtf8 { at: usize },
    #[error(
        "parse error: the escape `\\u{unit:04x}` at byte {at} is half of a UTF-16 surrogate pair without \
         its other half, so it is no character; escape a character beyond U+FFFF as a high surrogate \
         followed by a low one (`\\ud83d\\ude00`), or send it unescaped"
    )]
    LoneSurrogate { unit: u16, at: usize },
    #[error(
        "invalid request: arrays and objects nest deeper than {MAX_DEPTH} levels (at byte {at}); \
         send flatter arguments"
    )]
    TooDeep { at: usize },
    #[error("parse error: the message is not valid JSON ({0})")]
    NotJson(serde_json::Error),
    #[error(
        "invalid request: the message is JSON but not a JSON-RPC 2.0 message ({0}); a request is an object \
         with \"jsonrpc\": \"2.0\", an \"id\" (a number or a string), a \"method\" and its \"params\""
    )]
    NotJsonRpc(serde_json::Error),
    /// A notification rmcp cannot read: no answer is due. The stdio front
    /// passes it on (rmcp skips unknown notifications); HTTP refuses it.
    #[error("invalid request: a notification that is not a JSON-RPC 2.0 notification this server reads ({0})")]
    BadNotification(serde_json::Error),
}

impl BadMessage {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            BadMessage::NotUtf8 { .. } | BadMessage::LoneSurrogate { .. } | BadMessage::NotJson(_) => -32700,
            BadMessage::TooLarge { .. }
            | BadMessage::TooDeep { .. }
            | BadMessage::NotJsonRpc(_)
            | BadMessage::BadNotification(_) => -32600,
        }
    }
}

/// A refused message: why, and the id its error answer carries (`null`
/// when it cannot be read).
#[derive(Debug, Error)]
#[error("{reason}")]
pub struct Refusal {
    pub id: Value,
    pub reason: BadMessage,
}

impl Refusal {
    /// The JSON-RPC error response, as one line of JSON without newline.
    pub fn response(&self) -> String {
        error_response(self.id.clone(), self.reason.code(), &self.reason.to_string())
    }
}

/// Checks one whole message (a stdio line without its newline, or an HTTP
/// body) the way rmcp will read it: `Ok` when rmcp reads it as a JSON-RPC
/// message, else the error to answer with.
pub fn check_message(bytes: &[u8]) -> Result<(), Refusal> {
    let refuse = |reason: BadMessage| Refusal {
        id: top_level_id(bytes).unwrap_or(Value::Null),
        reason,
    };
    if let Err(error) = std::str::from_utf8(bytes) {
        return Err(refuse(BadMessage::NotUtf8 {
            at: error.valid_up_to(),
        }));
    }
    scan(bytes).map_err(refuse)?;
    let error = match serde_json::from_slice::<ClientJsonRpcMessage>(bytes) {
        Ok(_) => return Ok(()),
        Err(error) => error,
    };
    if !error.is_data() {
        return Err(refuse(BadMessage::NotJson(error)));
    }
    // JSON-shaped enough for serde to look at fields: say what is wrong.
    let value = match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => value,
        Err(syntax) => return Err(refuse(BadMessage::NotJson(syntax))),
    };
    let field = |name: &str| value.as_object().and_then(|object| object.get(name));
    let (reason, id) = match (field("id"), field("method")) {
        (None, Some(Value::String(_))) => (BadMessage::BadNotification(error), None),
        // A response's id is one the server chose: answering with it could
        // look like the failure of the client's own request with that id.
        (_, None) if field("result").is_some() || field("error").is_some() => (BadMessage::NotJsonRpc(error), None),
        (id, _) => (BadMessage::NotJsonRpc(error), id),
    };
    let id = match id {
        Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
        _ => Value::Null,
    };
    Err(Refusal { id, reason })
}

/// One pass over the bytes, outside and inside strings: refuses nesting
/// deeper than [`MAX_DEPTH`] and `\u` escapes of unpaired surrogates.
/// Anything else that is wrong is left to the parser.
fn scan(bytes: &[u8]) -> Result<(), BadMessage> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut index = 0usize;
    while index < bytes.len() {
        match (in_string, bytes[index]) {
            (false, b'"') => in_string = true,
            (false, b'{' | b'[') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(BadMessage::TooDeep { at: index });
                }
            }
            (false, b'}' | b']') => depth = depth.saturating_sub(1),
            (true, b'"') => in_string = false,
            (true, b'\\') => {
                index += match unicode_escape(bytes, index) {
                    Some(unit @ 0xD800..=0xDBFF) => match unicode_escape(bytes, index + 6) {
                        Some(0xDC00..=0xDFFF) => 12,
                        _ => return Err(BadMessage::LoneSurrogate { unit, at: index }),
                    },
                    Some(unit @ 0xDC00..=0xDFFF) => return Err(BadMessage::LoneSurrogate { unit, at: index }),
                    Some(_) => 6,
                    None => 2, // a one-letter escape, or a bad one for the parser to report
                };
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    Ok(())
}

/// The code unit of a `\uXXXX` escape starting at `at`, if one is there.
fn unicode_escape(bytes: &[u8], at: usize) -> Option<u16> {
    let escape = bytes.get(at..at + 6)?;
    if escape[..2] != *b"\\u" {
        return None;
    }
    let hex = std::str::from_utf8(&escape[2..]).ok()?;
    if !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}
fn error_response(id: Value, code: i64, message: &str) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

/// The top-level `"id"` of a JSON object from the start of its text (a
/// number or a string), if it appears there.
pub fn top_level_id(prefix: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(prefix);
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut index = 0usize;
    while index < bytes.len() {
        match bytes[index] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let end = string_end(bytes, index)?;
                if depth == 1 && &bytes[index..=end] == b"\"id\"" {
                    // A key is followed by `:`; the same text as a value is not.
                    if let Some(rest) = text[end + 1..].trim_start().strip_prefix(':') {
                        return parse_scalar(rest.trim_start());
                    }
                }
                index = end;
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// Index of the quote that closes the string opening at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'"' => return Some(index),
            _ => index += 1,
        }
    }
    None
}

fn parse_scalar(text: &str) -> Option<Value> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    match stream.next()?.ok()? {
        value @ (Value::Number(_) | Value::String(_)) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_found_at_the_top_level_only() {
        assert_eq!(top_level_id(br#"{"jsonrpc":"2.0","id":7,"method":"x"#), Some(json!(7)));
        assert_eq!(top_level_id(br#"{"id":"a\"b","params":{"#), Some(json!("a\"b")));
        assert_eq!(
            top_level_id(br#"{"params":{"id":1,"arguments":{"x":"y"}},"id":9,"#),
            Some(json!(9))
        );
        assert_eq!(top_level_id(br#"{"params":{"id":1,"code":"xxxx"#), None);
        assert_eq!(top_level_id(br#"{"method":"id","id":4,"#), Some(json!(4)));
    }

    /// A `tools/call` request with id 7 whose `code` argument is `code`,
    /// raw JSON text (quotes included).
    fn call_with_code(code: &[u8]) -> Vec<u8> {
        let mut line = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"sandbox_execute","arguments":{"language":"python","code":"#.to_vec();
        line.extend_from_slice(code);
        line.extend_from_slice(b"}}}");
        line
    }

    /// `check_message`'s refusal: its code, id and reason.
    fn refused(bytes: &[u8]) -> (i64, Value, BadMessage) {
        match check_message(bytes) {
            Ok(()) => panic!("accepted: {}", String::from_utf8_lossy(bytes)),
            Err(refusal) => (refusal.reason.code(), refusal.id, refusal.reason),
        }
    }

    #[test]
    fn unpaired_surrogates_and_bad_utf8_are_parse_errors_with_the_id() {
        for code in [
            &br#""\ud800""#[..],
            br#""\udc00""#,
            br#""x\uDBFFy""#,
            br#""\ud800\u0041""#,
            br#""\ud800\ud800""#,
            br#""\ud800\n""#,
            br#""\ud800\""#,
            br#""\\\ud800""#,
        ] {
            let (code_number, id, reason) = refused(&call_with_code(code));
            assert_eq!(code_number, -32700, "{}", String::from_utf8_lossy(code));
            assert_eq!(id, json!(7));
            assert!(matches!(reason, BadMessage::LoneSurrogate { .. }), "{reason:?}");
        }
        assert!(matches!(
            refused(&call_with_code(br#""\udc00""#)).2,
            BadMessage::LoneSurrogate { unit: 0xdc00, .. }
        ));
        let (code_number, id, reason) = refused(&call_with_code(b"\"ok \xff\xfe\""));
        assert_eq!((code_number, id), (-32700, json!(7)));
        assert!(matches!(reason, BadMessage::NotUtf8 { .. }), "{reason:?}");
        // A truncated UTF-8 sequence, in a key.
        assert!(matches!(
            refused(b"{\"id\":1,\"\xe2\x82\":1}").2,
            BadMessage::NotUtf8 { .. }
        ));
        // An id after the bad string is found too.
        let after = b"{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"params\":{\"x\":\"\xc0\"},\"id\":\"late\"}";
        assert_eq!(refused(after).1, json!("late"));
    }

    #[test]
    fn paired_surrogates_and_escaped_text_pass() {
        for code in [
            &br#""\ud83d\ude00""#[..],
            br#""\uD83D\uDE00 and \u00e9 and \\ud800 as text""#,
            br#""a \" quote, a \\ backslash, [[[[ and {{{{ in a string""#,
            "\"raw \u{1F600} and é\"".as_bytes(),
        ] {
            assert!(
                check_message(&call_with_code(code)).is_ok(),
                "{}",
                String::from_utf8_lossy(code)
            );
        }
    }

    #[test]
    fn nesting_deeper_than_the_bound_is_refused_before_parsing() {
        // The request, its params and its arguments are three levels.
        let nested = |levels: usize| call_with_code(format!("{}{}", "[".repeat(levels), "]".repeat(levels)).as_bytes());
        assert!(check_message(&nested(MAX_DEPTH - 3)).is_ok());
        let (code, id, reason) = refused(&nested(MAX_DEPTH - 2));
        assert_eq!((code, id), (-32600, json!(7)));
        assert!(matches!(reason, BadMessage::TooDeep { .. }), "{reason:?}");
        // Unclosed, far deeper than serde_json's own limit: still refused
        // for depth, not as a parse error.
        let mut deep = br#"{"jsonrpc":"2.0","id":"d","method":"tools/call","params":"#.to_vec();
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        let (code, id, reason) = refused(&deep);
        assert_eq!((code, id), (-32600, json!("d")));
        assert!(matches!(reason, BadMessage::TooDeep { at: 120 }), "{reason:?}");
        // Brackets in strings do not count.
        let in_string = format!("\"{}\\\"{}\"", "[".repeat(200), "{".repeat(200));
        assert!(check_message(&call_with_code(in_string.as_bytes())).is_ok());
    }

    #[test]
    fn json_that_is_not_json_rpc_is_an_invalid_request_with_the_id() {
        for (line, id) in [
            (&br#"{"id":15,"hello":"world"}"#[..], json!(15)),
            (
                br#"{"jsonrpc":"2.0","id":"s","method":"tools/call","params":"x"}"#,
                json!("s"),
            ),
            (br#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#, json!(3)),
            (br#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#, Value::Null),
            (br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, Value::Null),
            (b"5", Value::Null),
            // A broken response: its id is the server's, not to be echoed.
            (br#"{"jsonrpc":"2.0","id":4,"error":"bad"}"#, Value::Null),
        ] {
            let (code, found, reason) = refused(line);
            assert_eq!((code, &found), (-32600, &id), "{}", String::from_utf8_lossy(line));
            assert!(matches!(reason, BadMessage::NotJsonRpc(_)), "{reason:?}");
        }
        let (code, id, _) = refused(br#"{"jsonrpc":"2.0","id":8,"method":"ping"} trailing"#);
        assert_eq!((code, id), (-32700, json!(8)));
        let (code, id, _) = refused(br#"{"jsonrpc":"2.0","id":9,"method":"pi"#);
        assert_eq!((code, id), (-32700, json!(9)));
    }

    #[test]
    fn notifications_and_good_messages_pass() {
        for line in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#[..],
            br#"{"jsonrpc":"2.0","id":"x","method":"no/such/method"}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            br#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}"#,
            br#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
        ] {
            assert!(check_message(line).is_ok(), "{}", String::from_utf8_lossy(line));
        }
        // A standard notification with bad params: no answer is due, so
        // the stdio front passes it on (the HTTP front refuses it).
        let (code, id, reason) = refused(br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":5}"#);
        assert_eq!((code, id), (-32600, Value::Null));
        assert!(matches!(reason, BadMessage::BadNotification(_)), "{reason:?}");
    }
}
