//! Double-quoted strings for the files the launcher renders: YAML double-quoted scalars
//! (compose) and TOML basic strings (policy) read the same backslash escapes, so both are the
//! policy contract's TOML quoting ([`jailoc_policy::basic_string`]).

/// `s` in double quotes with the escapes YAML and TOML share (`\"`, `\\`, `\n`, `\r`, `\t`,
/// `\uXXXX` for any other control character); each `$` is written as `dollar` (Compose
/// interpolates `$`, so the YAML side passes `"$$"`).
pub fn double_quoted(s: &str, dollar: &str) -> String {
    // The quoting never writes a `$` of its own: every one in the result is one of `s`.
    jailoc_policy::basic_string(s).replace('$', dollar)
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
