//! Double-quoted strings for the files the launcher renders: YAML double-quoted scalars
//! (compose) and TOML basic strings (policy) read the same backslash escapes, so one function
//! writes both.

use std::fmt::Write as _;

/// `s` in double quotes with the escapes YAML and TOML share (`\"`, `\\`, `\n`, `\r`, `\t`,
/// `\uXXXX` for any other control character); each `$` is written as `dollar` (Compose
/// interpolates `$`, so the YAML side passes `"$$"`).
pub fn double_quoted(s: &str, dollar: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str(dollar),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_reads_back_what_was_quoted() {
        let s = "a\"b\\c\nd\re\tf\u{1}g\u{7f}h $HOME é";
        let doc: toml_edit::DocumentMut = format!("x = {}\n", double_quoted(s, "$"))
            .parse()
            .expect("valid TOML");
        assert_eq!(doc["x"].as_str(), Some(s));
    }

    #[test]
    fn compose_gets_dollars_doubled() {
        assert_eq!(double_quoted("$A\r\u{1}", "$$"), "\"$$A\\r\\u0001\"");
    }
}
