//! The result: one [`Row`] per check, printed as a table (check, target, expected, got, ms)
//! with a last line that names every failure, or as one JSON object (`--json`). Pure.

use crate::egress::record::json_string;
use std::time::Instant;

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub check: String,
    pub target: String,
    pub expected: String,
    pub got: String,
    /// How long the probe took (`None`: not a probe).
    pub ms: Option<u64>,
    pub pass: bool,
}

impl Row {
    /// A rules check's row, timed from `started`.
    pub(crate) fn rules(check: &str, pass: bool, got: &str, started: Instant) -> Row {
        Row {
            check: check.to_owned(),
            target: "iptables-save".to_owned(),
            expected: "the boot's plan".to_owned(),
            got: got.to_owned(),
            ms: Some(elapsed_ms(started)),
            pass,
        }
    }
}

/// Milliseconds since `started`, rounded up (a probe that took any time shows at least 1).
pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// The table and its last line.
pub(crate) fn table(rows: &[Row]) -> String {
    let header = ["", "CHECK", "TARGET", "EXPECTED", "GOT", "MS"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                if r.pass { "ok" } else { "FAIL" }.to_owned(),
                r.check.clone(),
                r.target.clone(),
                r.expected.clone(),
                r.got.clone(),
                r.ms.map_or_else(|| "-".to_owned(), |ms| ms.to_string()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header);
    for row in &cells {
        out.push_str(&line(&row.each_ref().map(String::as_str)));
    }
    out.push_str(&summary(rows));
    out.push('\n');
    out
}

/// `verify: all N checks passed`, or which failed and why.
pub(crate) fn summary(rows: &[Row]) -> String {
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.pass)
        .map(|r| {
            if r.target.is_empty() || r.target == "-" {
                format!("{} ({})", r.check, r.got)
            } else {
                format!("{} {} ({})", r.check, r.target, r.got)
            }
        })
        .collect();
    if failed.is_empty() {
        format!("verify: all {} checks passed", rows.len())
    } else {
        format!(
            "verify: {} of {} checks failed: {}",
            failed.len(),
            rows.len(),
            failed.join("; ")
        )
    }
}

/// `{"passed":BOOL,"checks":[{"check":..,"target":..,"expected":..,"got":..,"ms":N|null,"pass":BOOL}]}`.
pub(crate) fn json(rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"check\":{},\"target\":{},\"expected\":{},\"got\":{},\"ms\":{},\"pass\":{}}}",
                json_string(&r.check),
                json_string(&r.target),
                json_string(&r.expected),
                json_string(&r.got),
                r.ms.map_or_else(|| "null".to_owned(), |ms| ms.to_string()),
                r.pass
            )
        })
        .collect();
    format!(
        "{{\"passed\":{},\"checks\":[{}]}}\n",
        rows.iter().all(|r| r.pass),
        items.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(check: &str, target: &str, got: &str, pass: bool) -> Row {
        Row {
            check: check.into(),
            target: target.into(),
            expected: "refused".into(),
            got: got.into(),
            ms: Some(3),
            pass,
        }
    }

    #[test]
    fn the_table_aligns_and_its_last_line_names_each_failure() {
        let rows = [
            row(
                "metadata",
                "tcp 169.254.169.254:80",
                "refused (ECONNREFUSED)",
                true,
            ),
            row(
                "link 10.0.0.0/24 (eth0)",
                "tcp 10.0.0.254:443",
                "connected",
                false,
            ),
            Row {
                ms: None,
                ..row("rules IPv4", "iptables-save", "failed to verify", false)
            },
        ];
        assert_eq!(
            table(&rows),
            "      CHECK                    TARGET                  EXPECTED  GOT                     MS\n\
             ok    metadata                 tcp 169.254.169.254:80  refused   refused (ECONNREFUSED)  3\n\
             FAIL  link 10.0.0.0/24 (eth0)  tcp 10.0.0.254:443      refused   connected               3\n\
             FAIL  rules IPv4               iptables-save           refused   failed to verify        -\n\
             verify: 2 of 3 checks failed: link 10.0.0.0/24 (eth0) tcp 10.0.0.254:443 (connected); \
             rules IPv4 iptables-save (failed to verify)\n"
        );
        assert_eq!(summary(&rows[..1]), "verify: all 1 checks passed");
    }

    #[test]
    fn json_escapes_and_says_whether_all_passed() {
        let rows = [row("a \"b\"\\", "t\n", "g\u{1}", false)];
        assert_eq!(
            json(&rows),
            "{\"passed\":false,\"checks\":[{\"check\":\"a \\\"b\\\"\\\\\",\"target\":\"t\\u000a\",\
             \"expected\":\"refused\",\"got\":\"g\\u0001\",\"ms\":3,\"pass\":false}]}\n"
        );
        assert_eq!(json(&[]), "{\"passed\":true,\"checks\":[]}\n");
    }
}
