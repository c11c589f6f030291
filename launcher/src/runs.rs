//! One-shot runs (`jailoc run`) as `status` and `down` see them. Each run is its own compose
//! project (`jailoc-NAME-run-ID`) whose agent container carries
//! [`RUN_LABEL`](crate::compose::RUN_LABEL) and
//! [`RUN_OWNER_LABEL`](crate::compose::RUN_OWNER_LABEL): the host, PID namespace, pid and start time of the `jailoc run` process.
//! A run whose owner is gone was left behind (a `kill -9` of jailoc, a crash) and `jailoc down
//! NAME` removes it; one whose owner still runs, or cannot be told from here, is left alone.

use std::path::Path;

use serde::Serialize;

use crate::compose::SERVICE;
use crate::engine::ContainerInfo;

/// What stands for a fact `/proc` could not give (no `/proc`: macOS).
const UNKNOWN: &str = "-";

/// The `jailoc run` process that owns a run. The pid alone could name another process after a
/// reboot or a wrap-around, or a process of another container or host sharing the engine; with
/// the host name, PID namespace and start time it names one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    /// `pid:[INODE]`, the target of `/proc/PID/ns/pid`, or `-`.
    pub pid_ns: String,
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat` (clock ticks after boot), or `-`.
    pub start: String,
}

impl Owner {
    /// This process, read from `proc_dir` (`/proc`).
    pub fn of_self(proc_dir: &Path) -> Owner {
        let pid = std::process::id();
        Owner {
            host: host_name(),
            pid_ns: pid_ns(proc_dir, "self").unwrap_or_else(|| UNKNOWN.into()),
            pid,
            start: start_time(proc_dir, &pid.to_string()).unwrap_or_else(|| UNKNOWN.into()),
        }
    }

    /// The value of [`RUN_OWNER_LABEL`](crate::compose::RUN_OWNER_LABEL): `host=H pidns=N pid=P start=S`.
    pub fn label(&self) -> String {
        format!(
            "host={} pidns={} pid={} start={}",
            self.host, self.pid_ns, self.pid, self.start
        )
    }

    /// Reads a [`label`](Self::label) back; `None` when it is not one.
    pub fn parse(label: &str) -> Option<Owner> {
        let mut fields = label.split(' ');
        let mut field = |key: &str| -> Option<String> {
            let v = fields.next()?.strip_prefix(key)?.strip_prefix('=')?;
            (!v.is_empty()).then(|| v.to_string())
        };
        let owner = Owner {
            host: field("host")?,
            pid_ns: field("pidns")?,
            pid: field("pid")?.parse().ok()?,
            start: field("start")?,
        };
        fields.next().is_none().then_some(owner)
    }
}

/// Whether the owner of a run still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Its `jailoc run` still runs (this pid): the run is in progress.
    Running(u32),
    /// Its `jailoc run` is gone: the run was left behind.
    Gone,
    /// Cannot be told from here (why): the run is left alone.
    Unknown(String),
}

/// Whether the owner named by `label` (a run's owner label) still runs, as seen from
/// this process with the host's `/proc` at `proc_dir`.
pub fn liveness(label: &str, proc_dir: &Path) -> Liveness {
    let Some(owner) = Owner::parse(label) else {
        return Liveness::Unknown(if label.is_empty() {
            "it names no owner (an older jailoc started it)".into()
        } else {
            format!("its owner label {label:?} is not jailoc's")
        });
    };
    let me = Owner::of_self(proc_dir);
    if owner.host != me.host {
        return Liveness::Unknown(format!("it was started on host {}", owner.host));
    }
    if owner.pid_ns != me.pid_ns {
        return Liveness::Unknown("it was started in another PID namespace (container)".into());
    }
    if owner.start == UNKNOWN {
        // No /proc when it started (nor now, same namespace): the pid alone. A reused pid
        // reads as running, which leaves the run alone: the safe side.
        let pid = rustix::process::Pid::from_raw(owner.pid as i32);
        return match pid.map(rustix::process::test_kill_process) {
            Some(Err(rustix::io::Errno::SRCH)) => Liveness::Gone,
            Some(Ok(())) | Some(Err(rustix::io::Errno::PERM)) => Liveness::Running(owner.pid),
            _ => Liveness::Unknown(format!("pid {} cannot be checked", owner.pid)),
        };
    }
    match start_time(proc_dir, &owner.pid.to_string()) {
        Some(start) if start == owner.start => Liveness::Running(owner.pid),
        // No such process, or the pid is another process's now.
        _ => Liveness::Gone,
    }
}

/// One one-shot run of a workspace, as `status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    /// Its compose project, `jailoc-NAME-run-ID`.
    pub project: String,
    /// Its agent container's state: `created`, `running`, `exited`, ...
    pub state: String,
    /// Its `jailoc run` is gone: `jailoc down NAME` removes it.
    pub left_behind: bool,
    /// Its workspace (its container's label).
    #[serde(skip)]
    pub workspace: String,
    #[serde(skip)]
    pub owner: Liveness,
}

impl Run {
    /// What `status` says of it after its state: in progress, or left behind and how to remove
    /// it, or why `down` leaves it alone.
    pub fn note(&self, workspace: &str) -> String {
        match &self.owner {
            Liveness::Running(pid) => format!("in progress (`jailoc run`, pid {pid})"),
            Liveness::Gone => {
                format!(
                    "left behind by a killed `jailoc run`: `jailoc down {workspace}` removes it"
                )
            }
            Liveness::Unknown(why) => format!("not known to be left behind: {why}"),
        }
    }
}

/// The runs among `containers`, by their agent containers, each project once, sorted.
pub fn runs_of(containers: &[ContainerInfo], proc_dir: &Path) -> Vec<Run> {
    let mut runs: Vec<Run> = containers
        .iter()
        .filter(|c| !c.run.is_empty() && c.service == SERVICE)
        .map(|c| {
            let owner = liveness(&c.run_owner, proc_dir);
            Run {
                project: c.run.clone(),
                state: c.state.clone(),
                left_behind: owner == Liveness::Gone,
                workspace: c.workspace.clone(),
                owner,
            }
        })
        .collect();
    runs.sort_by(|a, b| a.project.cmp(&b.project));
    runs.dedup_by(|a, b| a.project == b.project);
    runs
}

/// This host's name.
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The PID namespace of process `pid` (`self` for this one).
fn pid_ns(proc_dir: &Path, pid: &str) -> Option<String> {
    let target = std::fs::read_link(proc_dir.join(pid).join("ns/pid")).ok()?;
    Some(target.to_string_lossy().into_owned())
}

/// The start time of process `pid`: field 22 of `/proc/PID/stat`, counted after the command
/// name's closing parenthesis (the name itself may hold spaces and parentheses).
fn start_time(proc_dir: &Path, pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(proc_dir.join(pid).join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `/proc` in `root` of two processes in PID namespace `pid:[7]`: this one (`self`) and
    /// `pid`, started at `start`; returns its path.
    pub(crate) fn fake_proc(root: &Path, pid: u32, start: u64) -> std::path::PathBuf {
        let proc_dir = root.join("proc");
        for p in ["self".to_string(), pid.to_string()] {
            std::fs::create_dir_all(proc_dir.join(&p).join("ns")).expect("mkdir");
            std::os::unix::fs::symlink("pid:[7]", proc_dir.join(&p).join("ns/pid"))
                .expect("symlink");
        }
        let stat = format!(
            "{pid} (jailoc (x) y) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start} 1000 200 18446744073709551615\n"
        );
        std::fs::write(proc_dir.join(pid.to_string()).join("stat"), stat).expect("stat");
        proc_dir
    }

    /// The owner label of a run started by `pid` at `start` on this host, in `pid:[7]`.
    pub(crate) fn owner_label(pid: u32, start: u64) -> String {
        Owner {
            host: host_name(),
            pid_ns: "pid:[7]".into(),
            pid,
            start: start.to_string(),
        }
        .label()
    }

    /// The agent container of `app`'s run `id` as `docker ps --format '{{json .}}'` prints it.
    pub(crate) fn run_container(id: &str, state: &str, owner: &str) -> String {
        format!(
            "{{\"ID\":\"c{id}\",\"Labels\":\"com.docker.compose.project=jailoc-app-run-{id},com.docker.compose.service=opencode,dev.jailoc.run=jailoc-app-run-{id},dev.jailoc.run.owner={owner},dev.jailoc.workspace=app\",\"Names\":\"jailoc-app-run-{id}\",\"State\":\"{state}\",\"Status\":\"\"}}\n"
        )
    }

    #[test]
    fn the_owner_label_reads_back_and_nothing_else_does() {
        let o = Owner {
            host: "ci-7".into(),
            pid_ns: "pid:[4026531836]".into(),
            pid: 4242,
            start: "9001".into(),
        };
        assert_eq!(
            o.label(),
            "host=ci-7 pidns=pid:[4026531836] pid=4242 start=9001"
        );
        assert_eq!(Owner::parse(&o.label()), Some(o));
        for bad in [
            "",
            "host=a pidns=b pid=x start=1",
            "host=a pidns=b pid=1",
            "host=a pidns=b pid=1 start=2 more=3",
            "pidns=b host=a pid=1 start=2",
            "host= pidns=b pid=1 start=2",
        ] {
            assert_eq!(Owner::parse(bad), None, "{bad}");
        }
    }

    /// The owner runs while a process with its pid and start time exists in the same host and
    /// PID namespace; a vanished or reused pid means the run was left behind; another host,
    /// namespace or no label cannot be told, and is never taken for left behind.
    #[test]
    fn a_run_is_left_behind_only_when_its_owner_is_provably_gone() {
        let dir = crate::testutil::tempdir();
        let proc_dir = fake_proc(dir.path(), 4242, 9001);
        let start = start_time(&proc_dir, "4242");
        assert_eq!(start.as_deref(), Some("9001"));
        assert_eq!(
            liveness(&owner_label(4242, 9001), &proc_dir),
            Liveness::Running(4242)
        );
        // The pid is another process's now.
        assert_eq!(
            liveness(&owner_label(4242, 8000), &proc_dir),
            Liveness::Gone
        );
        // No such process.
        assert_eq!(
            liveness(&owner_label(4343, 9001), &proc_dir),
            Liveness::Gone
        );
        let other_host = "host=elsewhere pidns=pid:[7] pid=4343 start=1";
        assert_eq!(
            liveness(other_host, &proc_dir),
            Liveness::Unknown("it was started on host elsewhere".into())
        );
        let other_ns = owner_label(4343, 1).replace("pid:[7]", "pid:[8]");
        assert!(matches!(
            liveness(&other_ns, &proc_dir),
            Liveness::Unknown(_)
        ));
        assert!(matches!(liveness("", &proc_dir), Liveness::Unknown(_)));
    }
}
