//! Reading one TOML item as the type a key wants, and the errors that name the file, line and
//! key: the line of a key or value (from `toml_edit`'s spans), a type mismatch with what was
//! found, an unknown key with its "did you mean", and the deny-list refusals kept for `up`.

use toml_edit::{Item, TableLike};

use super::{Parser, Result};
use crate::config::validate;
use crate::config::{ConfigError, Spanned};

impl Parser<'_> {
    /// The 1-based line a span starts on; 0 when there is no span.
    pub(super) fn line_of(&self, span: Option<std::ops::Range<usize>>) -> usize {
        let Some(span) = span else { return 0 };
        let end = span.start.min(self.text.len());
        let prefix = self.text.get(..end).unwrap_or("");
        prefix.bytes().filter(|&b| b == b'\n').count() + 1
    }

    /// The line of `key` inside `table` (its key if known, else its value).
    pub(super) fn key_line(&self, table: &dyn TableLike, key: &str) -> usize {
        let from_key = table.key(key).and_then(|k| k.span());
        let from_item = table.get(key).and_then(Item::span);
        let line = self.line_of(from_key.or(from_item));
        if line == 0 {
            // Implicit tables (`[workspaces.a]` without `[workspaces]`) have no key span; fall
            // back to the first line mentioning the key.
            self.text
                .lines()
                .position(|l| !l.trim_start().starts_with('#') && l.contains(key))
                .map(|i| i + 1)
                .unwrap_or(1)
        } else {
            line
        }
    }

    /// An error about `key` at `line` of this file.
    pub(super) fn err(&self, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Keeps a deny-list refusal for `up` instead of failing the load (see
    /// [`Section::refused`](crate::config::Section::refused)). Returns whether `result` was fine.
    pub(super) fn defer(
        &self,
        result: std::result::Result<(), String>,
        line: usize,
        key: &str,
    ) -> bool {
        match result {
            Ok(()) => true,
            Err(m) => {
                self.deferred.borrow_mut().push(self.err(line, key, m));
                false
            }
        }
    }

    /// `key` (spelt `full` with its table) is not one of `known`: the closest one, else the list.
    pub(super) fn unknown(
        &self,
        line: usize,
        full: &str,
        key: &str,
        known: &[&str],
    ) -> ConfigError {
        let hint = match validate::did_you_mean(key, known) {
            Some(k) => format!(" (did you mean `{k}`?)"),
            None => format!(" (known keys: {})", known.join(", ")),
        };
        self.err(line, full, format!("unknown key {key:?}{hint}"))
    }

    /// `key` holds `item`, not the `want`ed type.
    pub(super) fn type_err(&self, item: &Item, key: &str, line: usize, want: &str) -> ConfigError {
        self.err(
            line,
            key,
            format!("expected {want}, got {}", describe(item)),
        )
    }

    pub(super) fn table<'t>(
        &self,
        item: &'t Item,
        key: &str,
        line: usize,
    ) -> Result<&'t dyn TableLike> {
        item.as_table_like()
            .ok_or_else(|| self.type_err(item, key, line, "a table"))
    }

    pub(super) fn string(&self, item: &Item, key: &str, line: usize) -> Result<String> {
        item.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.type_err(item, key, line, "a string"))
    }

    pub(super) fn boolean(&self, item: &Item, key: &str, line: usize) -> Result<bool> {
        item.as_bool()
            .ok_or_else(|| self.type_err(item, key, line, "true or false"))
    }

    /// An array of strings, each with its own line (the key's when it has no span).
    pub(super) fn strings(
        &self,
        item: &Item,
        key: &str,
        line: usize,
    ) -> Result<Vec<Spanned<String>>> {
        let array = item
            .as_array()
            .ok_or_else(|| self.type_err(item, key, line, "an array of strings"))?;
        let mut out = Vec::new();
        for value in array.iter() {
            let value_line = match self.line_of(value.span()) {
                0 => line,
                n => n,
            };
            match value.as_str() {
                Some(s) => out.push(Spanned {
                    value: s.to_string(),
                    line: value_line,
                }),
                None => {
                    let item = Item::Value(value.clone());
                    return Err(self.type_err(&item, key, value_line, "a string"));
                }
            }
        }
        Ok(out)
    }
}

/// What an item holds, for a type error: the value as written (cut at 60 characters), or its kind.
fn describe(item: &Item) -> String {
    match item {
        Item::Value(v) => {
            let mut v = v.clone();
            v.decor_mut().clear();
            let s = v.to_string();
            if s.len() > 60 {
                format!("{}...", s.chars().take(57).collect::<String>())
            } else {
                s
            }
        }
        Item::Table(_) => "a table".into(),
        Item::ArrayOfTables(_) => "an array of tables".into(),
        Item::None => "nothing".into(),
    }
}
