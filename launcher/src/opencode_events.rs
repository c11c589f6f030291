//! Whether a headless OpenCode run succeeded, judged from its event stream
//! (`opencode run --format json`, one JSON object a line on stdout) rather than from its exit
//! status, which is 0 after many failures (a session that stops without an answer, a model
//! cut off at its length limit, an event stream that ends early).
//!
//! What OpenCode 1.18.33 writes (its `run` command): `step_start` and `step_finish` around
//! each model step (`part.reason` on the finish: `stop` when the model ended its turn,
//! `tool-calls` when it goes on with tools, else `length`, `content-filter`, `error`, `other`,
//! `unknown`), `text` and `reasoning` for finished text parts, `tool_use` for finished tool
//! calls, and `error` (`error.name`, `error.data.message`) for a session error or a refused
//! prompt. It stops reading at the session's first `idle`.
//!
//! The rules, in order (docs/launcher.md, "jailoc run"):
//! 1. OpenCode exits non-zero → that code.
//! 2. Any `error` event → failure.
//! 3. No `step_finish` at all, or the last one's reason is not `stop` → failure: the session
//!    ended without a final answer.
//! 4. Otherwise success. A failed tool call (`tool_use` with an error state) is not a failure
//!    by itself: the model saw it and went on.

use serde_json::Value;

/// The event types that decide, as OpenCode names them.
const ERROR: &str = "error";
const STEP_FINISH: &str = "step_finish";
/// The `step_finish` reason of a step that ended the model's turn.
const STOP: &str = "stop";
/// The error messages kept word for word; further ones are only counted. The stream is the
/// agent's to write, and one error event a line would otherwise grow the list without bound.
const KEPT_ERRORS: usize = 10;

/// Reads the stream one line at a time ([`Judge::line`]) and gives the verdict at its end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Judge {
    /// The first [`KEPT_ERRORS`] error messages.
    errors: Vec<String>,
    /// The error events after those.
    more_errors: usize,
    /// The reason of the last `step_finish` (empty string when it had none).
    last_finish: Option<String>,
}

/// Why a run that OpenCode may have called a success failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// One or more `error` events: the first messages in order (at most [`KEPT_ERRORS`]) and
    /// how many more there were.
    Errors { first: Vec<String>, more: usize },
    /// The session ended without a final answer: no `step_finish` (`None`) or the last one
    /// had this reason.
    NoAnswer(Option<String>),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Errors { first, more } => {
                f.write_str("OpenCode reported an error: ")?;
                for (i, message) in first.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write_escaped(f, message)?;
                }
                match more {
                    0 => Ok(()),
                    n => write!(f, "; and {n} more"),
                }
            }
            Failure::NoAnswer(None) => {
                f.write_str("the session ended without a final answer (no step finished)")
            }
            Failure::NoAnswer(Some(reason)) => write!(
                f,
                "the session ended without a final answer (its last step finished with reason {reason:?}, not \"stop\")"
            ),
        }
    }
}

impl Judge {
    /// Takes one line of OpenCode's stdout; lines that are not events are ignored.
    pub fn line(&mut self, line: &str) {
        let Ok(event) = serde_json::from_str::<Value>(line.trim()) else {
            return;
        };
        let Some(kind) = event.get("type").and_then(Value::as_str) else {
            return;
        };
        match kind {
            ERROR if self.errors.len() < KEPT_ERRORS => self.errors.push(error_message(&event)),
            ERROR => self.more_errors += 1,
            STEP_FINISH => {
                let reason = event
                    .pointer("/part/reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.last_finish = Some(reason.to_string());
            }
            _ => {}
        }
    }

    /// The verdict on the stream read so far (see the module docs for the rules).
    pub fn verdict(&self) -> Result<(), Failure> {
        if !self.errors.is_empty() {
            return Err(Failure::Errors {
                first: self.errors.clone(),
                more: self.more_errors,
            });
        }
        match &self.last_finish {
            Some(reason) if reason == STOP => Ok(()),
            other => Err(Failure::NoAnswer(other.clone())),
        }
    }
}

/// Writes `text` with its control characters escaped (`\u{1b}`, `\n`): the message is the
/// agent's to write and goes to the host's terminal, where an escape sequence would act.
fn write_escaped(f: &mut std::fmt::Formatter<'_>, text: &str) -> std::fmt::Result {
    for c in text.chars() {
        if c.is_control() {
            write!(f, "{}", c.escape_default())?;
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

/// An `error` event's message: `error.data.message`, else `error.message`, else `error.name`.
fn error_message(event: &Value) -> String {
    let message = ["/error/data/message", "/error/message", "/error/name"]
        .iter()
        .find_map(|p| event.pointer(p).and_then(Value::as_str))
        .unwrap_or("an error without a message");
    // The agent writes these: at most MESSAGE_CHARS of each reach the host's terminal.
    match message.char_indices().nth(MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}… (cut)", &message[..cut]),
        None => message.to_string(),
    }
}

/// Characters kept of one error message.
const MESSAGE_CHARS: usize = 2048;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_a_huge_error_message_is_cut_before_it_reaches_the_terminal() {
        let huge = format!(
            r#"{{"type":"error","error":{{"data":{{"message":"{}"}}}}}}"#,
            "x".repeat(1 << 20)
        );
        let message = error_message(&serde_json::from_str(&huge).expect("json"));
        assert_eq!(
            message.chars().count(),
            MESSAGE_CHARS + "… (cut)".chars().count()
        );
    }

    fn judge(lines: &[&str]) -> Result<(), Failure> {
        let mut j = Judge::default();
        for l in lines {
            j.line(l);
        }
        j.verdict()
    }

    /// The shapes OpenCode 1.18.33 writes (trimmed): a run that answers.
    const START: &str =
        r#"{"type":"step_start","timestamp":1,"sessionID":"ses_1","part":{"type":"step-start"}}"#;
    const TEXT: &str = r#"{"type":"text","timestamp":2,"sessionID":"ses_1","part":{"type":"text","text":"hello"}}"#;
    const TOOLS: &str = r#"{"type":"step_finish","timestamp":3,"sessionID":"ses_1","part":{"type":"step-finish","reason":"tool-calls"}}"#;
    const FAILED_TOOL: &str = r#"{"type":"tool_use","timestamp":3,"sessionID":"ses_1","part":{"type":"tool","state":{"status":"error","error":"no such file"}}}"#;
    const STOPPED: &str = r#"{"type":"step_finish","timestamp":4,"sessionID":"ses_1","part":{"type":"step-finish","reason":"stop"}}"#;
    const LENGTH: &str = r#"{"type":"step_finish","timestamp":4,"sessionID":"ses_1","part":{"type":"step-finish","reason":"length"}}"#;
    const ERROR_500: &str = r#"{"type":"error","timestamp":5,"sessionID":"ses_1","error":{"name":"APIError","data":{"message":"Internal Server Error","statusCode":500}}}"#;

    #[test]
    fn a_final_stop_is_success_and_a_failed_tool_call_alone_is_not_a_failure() {
        assert_eq!(judge(&[START, TEXT, STOPPED]), Ok(()));
        assert_eq!(
            judge(&[START, FAILED_TOOL, TOOLS, START, TEXT, STOPPED]),
            Ok(())
        );
    }

    #[test]
    fn an_error_event_fails_even_after_a_stop() {
        let f = judge(&[START, TEXT, STOPPED, ERROR_500]).expect_err("error");
        assert_eq!(
            f.to_string(),
            "OpenCode reported an error: Internal Server Error"
        );
        let named = r#"{"type":"error","error":{"name":"ProviderAuthError"}}"#;
        assert_eq!(
            judge(&[named]).expect_err("error").to_string(),
            "OpenCode reported an error: ProviderAuthError"
        );
    }

    /// The attack: the event stream is the agent's to write. Ten thousand error events keep
    /// ten messages and a count, and an escape sequence in one reaches the terminal inert.
    #[test]
    fn attack_error_events_are_capped_and_printed_inert() {
        let mut j = Judge::default();
        j.line(r#"{"type":"error","error":{"message":"\u001b]0;owned\u0007\u001b[2Jgone\nline"}}"#);
        for _ in 1..10_000 {
            j.line(ERROR_500);
        }
        let f = j.verdict().expect_err("errors");
        let Failure::Errors { first, more } = &f else {
            panic!("not the errors: {f:?}");
        };
        assert_eq!((first.len(), *more), (KEPT_ERRORS, 10_000 - KEPT_ERRORS));
        let text = f.to_string();
        assert!(
            text.starts_with(
                r"OpenCode reported an error: \u{1b}]0;owned\u{7}\u{1b}[2Jgone\nline; Internal Server Error;"
            ),
            "{text}"
        );
        assert!(text.ends_with("; and 9990 more"), "{text}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }

    #[test]
    fn a_session_without_a_final_stop_fails() {
        assert_eq!(judge(&[]), Err(Failure::NoAnswer(None)));
        assert_eq!(
            judge(&["not json", "{}", START, TEXT]),
            Err(Failure::NoAnswer(None))
        );
        assert_eq!(
            judge(&[START, TOOLS]),
            Err(Failure::NoAnswer(Some("tool-calls".into())))
        );
        assert_eq!(
            judge(&[START, TEXT, LENGTH]).expect_err("length").to_string(),
            "the session ended without a final answer (its last step finished with reason \"length\", not \"stop\")"
        );
    }
}
