//! An HTTP probe's answer: read with a cap, its status and body checked, and the short excerpt
//! of the body a failure carries.
//!
//! What: [`read_answer`] reads the status line and, when the probe checks the body
//! (`x-gantry.health.body` / `json`), the headers and at most [`BODY_CAP`] bytes of the body
//! (up to `Content-Length` or the end of the stream). [`check_body`] applies the checks: a
//! substring, and a JSON pointer (RFC 6901, `serde_json`'s reading of it) whose value equals
//! the expected string, number or bool, compared as JSON.
//!
//! Design: a failure's reason names what was expected and carries [`excerpt`] of the body: its
//! first [`EXCERPT`] bytes, never more (lossy UTF-8, control characters escaped), so a probe
//! answering a large page or binary data cannot flood the deploy's report or the logs.
//!
//! Limits: the request is HTTP/1.0 (`Connection: close`), so servers answer without chunked
//! encoding; a chunked answer is checked as sent (its chunk sizes are part of the body). A body
//! cut at the cap is not valid JSON and fails a `json` check.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::compose::xgantry::BodyCheck;

/// The most of a body read (64 KiB).
pub const BODY_CAP: usize = 64 * 1024;
/// The most of a body a failure carries (bytes).
pub const EXCERPT: usize = 200;
/// The most of a status line and headers read.
const HEAD_CAP: usize = 16 * 1024;

/// A probe's answer: its status and (when read) its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    pub body: Vec<u8>,
}

/// Reads an answer; the body only when `with_body`. `Err` is the reason, without the target.
pub async fn read_answer<R: AsyncRead + Unpin>(
    stream: &mut R,
    with_body: bool,
) -> Result<Answer, String> {
    let mut data = Vec::with_capacity(512);
    let mut buf = [0u8; 4096];
    // The status line, and with a body check all headers.
    let head_end = loop {
        let end = if with_body {
            find(&data, b"\r\n\r\n")
                .map(|i| (i, i + 4))
                .or_else(|| find(&data, b"\n\n").map(|i| (i, i + 2)))
        } else {
            find(&data, b"\n").map(|i| (i, i + 1))
        };
        if let Some(end) = end {
            break Some(end);
        }
        if data.len() >= HEAD_CAP {
            return Err("no end of the HTTP headers in the first 16 KiB".into());
        }
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head_len = head_end.map_or(data.len(), |(h, _)| h);
    let head = String::from_utf8_lossy(&data[..head_len]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or("no HTTP status in the answer")?;
    if !with_body {
        return Ok(Answer {
            code,
            body: Vec::new(),
        });
    }
    let Some((_, body_start)) = head_end else {
        return Ok(Answer {
            code,
            body: Vec::new(),
        });
    };
    let length = head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    let want = length.unwrap_or(usize::MAX).min(BODY_CAP);
    let mut body = data.split_off(body_start);
    while body.len() < want {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    body.truncate(want);
    Ok(Answer { code, body })
}

/// `Ok` when the body passes every check; `Err` says which did not, with the body's excerpt.
pub fn check_body(body: &[u8], check: &BodyCheck) -> Result<(), String> {
    if let Some(s) = &check.contains
        && find(body, s.as_bytes()).is_none()
    {
        return Err(format!("body does not contain {s:?}; {}", excerpt(body)));
    }
    if let Some(j) = &check.json {
        let doc: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            format!(
                "body is not JSON ({e}); expected {} at {}; {}",
                j.equals,
                j.pointer,
                excerpt(body)
            )
        })?;
        match doc.pointer(&j.pointer) {
            None => {
                return Err(format!(
                    "body has no {} (expected {}); {}",
                    j.pointer,
                    j.equals,
                    excerpt(body)
                ));
            }
            Some(found) if !json_equal(found, &j.equals) => {
                return Err(format!(
                    "{} is {}, not {}; {}",
                    j.pointer,
                    short(found),
                    j.equals,
                    excerpt(body)
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `body: ` and the first [`EXCERPT`] bytes of `body` (lossy UTF-8, control characters
/// escaped), with the full length when it was cut.
pub fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(EXCERPT)];
    let text: String = String::from_utf8_lossy(cut)
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if body.len() > EXCERPT {
        format!(
            "body (first {EXCERPT} of {} bytes): {text}",
            if body.len() >= BODY_CAP {
                format!("{}+", BODY_CAP)
            } else {
                body.len().to_string()
            }
        )
    } else {
        format!("body: {text}")
    }
}

/// Equal as JSON: numbers by value (`1` equals `1.0`), everything else exactly.
fn json_equal(found: &serde_json::Value, want: &serde_json::Value) -> bool {
    match (found, want) {
        (serde_json::Value::Number(a), serde_json::Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => found == want,
    }
}

/// A found value for a reason: at most 80 characters of its JSON text.
fn short(v: &serde_json::Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::compose::xgantry::JsonCheck;

    fn json_check(pointer: &str, equals: serde_json::Value) -> BodyCheck {
        BodyCheck {
            contains: None,
            json: Some(JsonCheck {
                pointer: pointer.into(),
                equals,
            }),
        }
    }

    #[test]
    fn json_pointer_must_equal_the_expected_value() {
        let ok = json_check("/status", json!("ok"));
        check_body(br#"{"status":"ok","n":1}"#, &ok).unwrap();
        let e = check_body(br#"{"status":"degraded"}"#, &ok).unwrap_err();
        assert!(
            e.contains(r#"/status is "degraded", not "ok""#)
                && e.contains(r#"{"status":"degraded"}"#),
            "{e}"
        );
        let e = check_body(br#"{"state":"ok"}"#, &ok).unwrap_err();
        assert!(e.contains("no /status"), "{e}");
        let e = check_body(b"<html>ok</html>", &ok).unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
        // Compared as JSON: the string "1" is not the number 1; 1 is 1.0.
        let one = json_check("/checks/0/n", json!(1));
        check_body(br#"{"checks":[{"n":1.0}]}"#, &one).unwrap();
        check_body(br#"{"checks":[{"n":"1"}]}"#, &one).unwrap_err();
        let t = json_check("/a~1b", json!(true));
        check_body(br#"{"a/b":true}"#, &t).unwrap();
        check_body(br#"{"a/b":"true"}"#, &t).unwrap_err();
    }

    #[test]
    fn substring_check_reads_the_body() {
        let c = BodyCheck {
            contains: Some("ready".into()),
            json: None,
        };
        check_body(b"all ready here", &c).unwrap();
        let e = check_body(b"starting", &c).unwrap_err();
        assert!(e.contains("\"ready\"") && e.contains("starting"), "{e}");
    }

    #[test]
    fn excerpt_is_the_first_200_bytes_never_more() {
        let mut body = vec![b'a'; EXCERPT];
        body.extend_from_slice(b"Z tail");
        let e = excerpt(&body);
        assert!(e.contains(&"a".repeat(EXCERPT)), "{e}");
        assert!(!e.contains('Z'), "byte 201 leaked: {e}");
        assert!(e.contains("206 bytes"), "{e}");
        // Control characters escaped, invalid UTF-8 replaced, a cut character replaced.
        let e = excerpt(b"line1\n\x1b[31mred\xff");
        assert_eq!(e, "body: line1\\n\\u{1b}[31mred\u{fffd}");
        let mut multi = vec![b'x'; EXCERPT - 1];
        multi.extend_from_slice("é".as_bytes());
        let e = excerpt(&multi);
        assert!(e.ends_with('\u{fffd}') && !e.contains('é'), "{e}");
    }

    /// `update_config.monitor` runs the probe too: a release that passes its gate, then
    /// answers 200 `{"status":"degraded"}`, fails during the monitor period (fake engine, a
    /// local listener as the probe's target).
    #[tokio::test]
    async fn monitor_period_fails_when_the_probe_starts_failing() {
        use std::sync::Arc;
        use tokio::io::AsyncWriteExt;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for n in 0.. {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
                let status = if n < 2 { "ok" } else { "degraded" };
                let answer = format!("HTTP/1.0 200 OK\r\n\r\n{{\"status\":\"{status}\"}}");
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(crate::engine::fake::FakeEngine::new());
        engine.publish("app:1", &"1".repeat(64));
        let compose = json!({"services": {"web": {"image": "app:1",
            "deploy": {"update_config": {"monitor": "3s"}},
            "x-gantry": {"health": {"http": format!("http://127.0.0.1:{port}/"),
                "json": {"pointer": "/status", "equals": "ok"},
                "passes": 2, "interval": "100ms", "failures": 2}}}}});
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, compose.to_string()).unwrap();
        let load = crate::compose::LoadOptions {
            files: vec![file],
            project_name: Some("app".into()),
            ..Default::default()
        };
        let ledger = crate::ledger::Ledger::new(&dir.path().join("state"));
        let report = super::super::Deployer::new(engine, ledger)
            .deploy(
                &super::super::DeployRequest::new("app", load),
                &super::super::Quiet,
            )
            .await;
        assert_ne!(report.exit_code(), crate::ExitCode::Ok, "{report:?}");
        let error = report.error.clone().unwrap_or_default();
        assert!(
            error.contains("2 times in a row during the monitor period")
                && error.contains(r#"/status is "degraded""#),
            "{error}"
        );
    }

    #[tokio::test]
    async fn answer_body_is_capped_and_follows_content_length() {
        let mut text = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello world".to_vec();
        let a = read_answer(&mut text.as_slice(), true).await.unwrap();
        assert_eq!((a.code, a.body.as_slice()), (200, &b"hello"[..]));
        text = b"HTTP/1.1 503 Busy\r\nServer: x\r\n\r\n".to_vec();
        text.extend(std::iter::repeat_n(b'q', BODY_CAP * 2));
        let a = read_answer(&mut text.as_slice(), true).await.unwrap();
        assert_eq!((a.code, a.body.len()), (503, BODY_CAP));
        let a = read_answer(&mut &b"HTTP/1.0 204 No\r\n"[..], false)
            .await
            .unwrap();
        assert_eq!((a.code, a.body.len()), (204, 0));
        read_answer(&mut &b"SSH-2.0-OpenSSH\r\n"[..], false)
            .await
            .unwrap_err();
    }
}
