//! The workspace's own OpenCode data directory, and the copy of the host's logins into it.

use super::files::Files;
use crate::compose;
use crate::config::Workspace;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::{fsutil, policy};

/// The file in OpenCode's data directory that holds the provider logins.
pub(super) const AUTH_FILE: &str = "auth.json";

/// Creates the workspace's own OpenCode data directory (0700) and copies the host OpenCode's
/// logins (`$XDG_DATA_HOME/opencode/auth.json`) into it (0600), unless the user's `mounts`
/// replace or remove that mount. The host's file is read without following a symlink and
/// refused unless it is a regular file (an agent under an older jailoc, which mounted the
/// host's directory, could have planted one); the copy goes through a fresh temp file renamed
/// over the agent's `auth.json`, so a symlink or FIFO the agent put there is replaced, never
/// written through or opened.
pub(super) fn prepare_data_dir(ctx: &Context, ws: &Workspace, files: &Files) -> Result<()> {
    if ws
        .mounts
        .iter()
        .any(|m| m.container == compose::DATA_TARGET)
    {
        return Ok(());
    }
    let dir = &files.data_dir;
    fsutil::create_dir_private(dir).map_err(|e| Error::file("create", dir, e))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::file("read", dir, e))?;
    if !meta.is_dir() {
        return Err(Error::Workspace {
            workspace: ws.name.clone(),
            message: format!(
                "{} is not a directory: jailoc keeps the workspace's OpenCode data there (remove what is there)",
                dir.display()
            ),
        });
    }
    // Root's jailoc (`sudo jailoc`, a CI runner) makes a root-owned directory the agent (uid
    // 1000) could not write: hand it to the agent. `lchown`: never through a symlink.
    if std::os::unix::fs::MetadataExt::uid(&meta) == 0 {
        std::os::unix::fs::lchown(dir, Some(policy::AGENT_UID), Some(policy::AGENT_GID))
            .map_err(|e| Error::file("chown", dir, e))?;
    }
    if fsutil::mode_of(dir) != Some(0o700) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::file("restrict", dir, e))?;
    }
    let host_auth = ctx.opencode_data_dir().join(AUTH_FILE);
    let meta = match std::fs::symlink_metadata(&host_auth) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::file("read", &host_auth, e)),
        Ok(m) => m,
    };
    let refuse = |what: &str| {
        Error::Workspace {
        workspace: ws.name.clone(),
        message: format!(
            "failed to copy OpenCode's logins from {}: {what}; jailoc copies only a regular file there (an agent under an older jailoc, which mounted that directory, could have planted it): check it, and replace it with a regular file or remove it",
            host_auth.display()
        ),
    }
    };
    if meta.file_type().is_symlink() {
        return Err(refuse("it is a symbolic link"));
    }
    if !meta.is_file() {
        return Err(refuse("it is not a regular file"));
    }
    let data = fsutil::read_regular_nofollow(&host_auth).map_err(|e| refuse(&e.to_string()))?;
    fsutil::replace_in_dir(dir, AUTH_FILE, &data, 0o600)
        .map_err(|e| Error::file("write", dir.join(AUTH_FILE), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{context, tempdir, workspace_of, Recorder};
    use crate::workspace::files;
    use std::path::Path;

    /// A context whose host OpenCode has logins, and a workspace `w`.
    fn auth_setup(root: &Path) -> (Context, Workspace, Files) {
        let (c, _, _) = context(root, Recorder::default());
        std::fs::create_dir_all(c.opencode_data_dir()).expect("mkdir");
        std::fs::write(c.opencode_data_dir().join(AUTH_FILE), "LOGINS").expect("write");
        let ws = workspace_of(root, "[workspaces.w]\n", "w");
        let f = files(&c, "w");
        std::fs::create_dir_all(&f.data_dir).expect("mkdir");
        (c, ws, f)
    }

    /// The agent replaced auth.json in its data dir with a symlink to a host file: the copy at
    /// `up` replaces the symlink and never writes through it.
    #[test]
    fn attack_symlinked_auth_json_is_replaced_not_written_through() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let (c, ws, f) = auth_setup(&root);
        let victim = root.join("home/.bashrc");
        std::fs::write(&victim, "ORIGINAL").expect("write");
        std::os::unix::fs::symlink(&victim, f.data_dir.join(AUTH_FILE)).expect("symlink");
        prepare_data_dir(&c, &ws, &f).expect("copy");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "ORIGINAL");
        let copy = f.data_dir.join(AUTH_FILE);
        let meta = std::fs::symlink_metadata(&copy).expect("stat");
        assert!(meta.is_file(), "a regular file now");
        assert_eq!(std::fs::read_to_string(&copy).expect("read"), "LOGINS");
        assert_eq!(fsutil::mode_of(&copy), Some(0o600));
        assert_eq!(fsutil::mode_of(&f.data_dir), Some(0o700));
        let names: Vec<String> = std::fs::read_dir(&f.data_dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [AUTH_FILE], "no temp file left behind");
    }

    /// Root's jailoc (`sudo jailoc`, a CI runner) must leave a data directory and logins the
    /// agent (uid 1000) can use: OpenCode exits at start when it cannot write there. As
    /// another user the owner stays that user's (the test then checks nothing changes hands).
    #[test]
    fn data_dir_and_logins_belong_to_the_agent_when_root_makes_them() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let (c, ws, f) = auth_setup(&root);
        let me = std::fs::metadata(&root).expect("stat").uid();
        prepare_data_dir(&c, &ws, &f).expect("prepare");
        let want = if me == 0 { policy::AGENT_UID } else { me };
        let data = std::fs::metadata(&f.data_dir).expect("stat");
        let auth = std::fs::metadata(f.data_dir.join(AUTH_FILE)).expect("stat");
        assert_eq!((data.uid(), auth.uid()), (want, want));
        if me == 0 {
            assert_eq!(
                (data.gid(), auth.gid()),
                (policy::AGENT_GID, policy::AGENT_GID)
            );
        }
    }

    fn mkfifo(p: &Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .expect("mkfifo");
        assert!(st.success());
    }

    /// Runs `f` on a thread; a watchdog (not a timing assertion: a hang is the failure)
    /// turns a blocked open into a test failure instead of a stuck suite.
    fn without_hanging<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("blocked on a FIFO")
    }

    /// The agent replaced auth.json with a FIFO: the copy does not open it, so `up` does not
    /// block, and the FIFO is replaced.
    #[test]
    fn attack_fifo_as_auth_json_does_not_block_the_copy() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let (_, _, f) = auth_setup(&root);
        mkfifo(&f.data_dir.join(AUTH_FILE));
        let r = root.clone();
        let copied = without_hanging(move || {
            let (c, ws, f) = auth_setup(&r);
            prepare_data_dir(&c, &ws, &f).map_err(|e| e.to_string())
        });
        assert_eq!(copied, Ok(()));
        let copy = f.data_dir.join(AUTH_FILE);
        assert_eq!(std::fs::read_to_string(&copy).expect("read"), "LOGINS");
    }

    /// The host's own auth.json is a symlink (planted under an older jailoc, which mounted the
    /// host's data dir) or a FIFO: refused, with what to do, and nothing is copied.
    #[test]
    fn attack_planted_host_auth_json_symlink_or_fifo_is_refused() {
        let dir = tempdir();
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let (c, ws, f) = auth_setup(&root);
        let host_auth = c.opencode_data_dir().join(AUTH_FILE);
        let key = root.join("home/id_ed25519");
        std::fs::write(&key, "PRIVATE KEY").expect("write");
        std::fs::remove_file(&host_auth).expect("rm");
        std::os::unix::fs::symlink(&key, &host_auth).expect("symlink");
        let e = prepare_data_dir(&c, &ws, &f).expect_err("symlink");
        assert_eq!(
            e.to_string(),
            format!(
                "failed to prepare workspace \"w\": failed to copy OpenCode's logins from {}: it is a symbolic link; jailoc copies only a regular file there (an agent under an older jailoc, which mounted that directory, could have planted it): check it, and replace it with a regular file or remove it",
                host_auth.display()
            )
        );
        assert!(!f.data_dir.join(AUTH_FILE).exists());
        std::fs::remove_file(&host_auth).expect("rm");
        mkfifo(&host_auth);
        let r = root.clone();
        let e = without_hanging(move || {
            let (c, _, _) = context(&r, Recorder::default());
            let ws = workspace_of(&r, "[workspaces.w]\n", "w");
            prepare_data_dir(&c, &ws, &files(&c, "w")).map_err(|e| e.to_string())
        });
        assert!(
            e.expect_err("fifo")
                .contains(": it is not a regular file; "),
            "refused"
        );
        assert!(!f.data_dir.join(AUTH_FILE).exists());
    }
}
