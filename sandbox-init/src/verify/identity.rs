//! Who the probes ran as, read back from the kernel (`/proc/self/status`) after the drop rather
//! than taken from the drop's own bookkeeping: the agent's uid and gid (real, effective, saved,
//! filesystem), no supplementary group, the five capability sets empty, `no_new_privs`, and
//! the socket-family filter (seccomp) in place. Pure: the text is passed in.

use super::Row;

/// The rows for the status text `status` of a process that should be `uid`:`gid` with
/// nothing; `filter` is whether the drop installs a seccomp filter on this machine.
pub(crate) fn rows(status: &str, uid: u32, gid: u32, filter: bool) -> Vec<Row> {
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    };
    let row = |check: &str, expected: String, got: Option<&str>, pass: bool| Row {
        check: check.to_owned(),
        target: "this process".to_owned(),
        expected,
        got: got.unwrap_or("(not in /proc/self/status)").to_owned(),
        ms: None,
        pass,
    };
    let ids = |got: Option<&str>, want: u32| {
        got.is_some_and(|g| {
            let all: Vec<&str> = g.split_whitespace().collect();
            all.len() == 4 && all.iter().all(|v| *v == want.to_string())
        })
    };
    let mut out = Vec::new();
    let uid_got = field("Uid");
    out.push(row(
        "agent uid",
        format!("{uid} (real, effective, saved, fs)"),
        uid_got,
        ids(uid_got, uid),
    ));
    let gid_got = field("Gid");
    out.push(row(
        "agent gid",
        format!("{gid} (real, effective, saved, fs)"),
        gid_got,
        ids(gid_got, gid),
    ));
    let groups = field("Groups");
    out.push(row(
        "supplementary groups",
        "none".to_owned(),
        groups.map(|g| if g.is_empty() { "none" } else { g }),
        groups.is_some_and(str::is_empty),
    ));
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let got = field(set);
        let empty = got.is_some_and(|v| u64::from_str_radix(v, 16) == Ok(0));
        out.push(row(
            &format!("capabilities {set}"),
            "0000000000000000".to_owned(),
            got,
            empty,
        ));
    }
    let nnp = field("NoNewPrivs");
    out.push(row("no_new_privs", "1".to_owned(), nnp, nnp == Some("1")));
    if filter {
        // 2: SECCOMP_MODE_FILTER.
        let seccomp = field("Seccomp");
        out.push(row(
            "seccomp filter",
            "2 (filter)".to_owned(),
            seccomp,
            seccomp == Some("2"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/self/status` of a process after the agent's drop (the fields that matter).
    const DROPPED: &str = "Name:\tsandbox-init\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n\
        Groups:\t\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
        CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";

    #[test]
    fn the_agent_with_nothing_passes() {
        let rows = rows(DROPPED, 1000, 1000, true);
        assert_eq!(rows.len(), 10);
        assert!(rows.iter().all(|r| r.pass), "{rows:#?}");
    }

    #[test]
    fn anything_left_fails_and_says_what() {
        for (from, to, check) in [
            (
                "Uid:\t1000\t1000\t1000\t1000",
                "Uid:\t1000\t0\t1000\t1000",
                "agent uid",
            ),
            (
                "Gid:\t1000\t1000\t1000\t1000",
                "Gid:\t0\t0\t0\t0",
                "agent gid",
            ),
            ("Groups:\t\n", "Groups:\t27 \n", "supplementary groups"),
            (
                "CapBnd:\t0000000000000000",
                "CapBnd:\t0000000000001000",
                "capabilities CapBnd",
            ),
            (
                "CapAmb:\t0000000000000000",
                "CapAmb:\t0000000000000400",
                "capabilities CapAmb",
            ),
            ("NoNewPrivs:\t1", "NoNewPrivs:\t0", "no_new_privs"),
            ("Seccomp:\t2", "Seccomp:\t0", "seccomp filter"),
        ] {
            let status = DROPPED.replace(from, to);
            let failed: Vec<String> = rows(&status, 1000, 1000, true)
                .into_iter()
                .filter(|r| !r.pass)
                .map(|r| r.check)
                .collect();
            assert_eq!(failed, [check], "{to}");
        }
        // A field the kernel does not show fails too.
        let status = DROPPED.replace("NoNewPrivs:\t1\n", "");
        let row = rows(&status, 1000, 1000, true)
            .into_iter()
            .find(|r| r.check == "no_new_privs")
            .expect("row");
        assert!(!row.pass);
        assert_eq!(row.got, "(not in /proc/self/status)");
        // Another agent uid from the policy.
        assert!(!rows(DROPPED, 1234, 1000, true)[0].pass);
    }
}
