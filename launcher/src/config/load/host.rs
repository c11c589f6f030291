//! Values that name something on the host: a path (`~/`, absolute, or relative to the config
//! file), a `mounts` entry (`HOST:CONTAINER[:ro|rw]`) and a Dockerfile (a path or an http(s)
//! URL). Each is resolved here; a mount's host side is also checked against the deny-lists.

use super::{Parser, Result};
use crate::config::paths;
use crate::config::schema::{DockerfileRef, HostPath, MountEntry};
use crate::config::Spanned;

impl Parser<'_> {
    /// A `mounts` entry; `None` when the deny-list refuses its host side (kept for `up`, which
    /// refuses it: [`Section::refused`](crate::config::Section::refused)).
    pub(super) fn mount(&self, raw: &str, key: &str, line: usize) -> Result<Option<MountEntry>> {
        let parts: Vec<&str> = raw.split(':').collect();
        let (host, target, mode) = match parts.as_slice() {
            [h, t] => (*h, *t, None),
            [h, t, m] => (*h, *t, Some(*m)),
            _ => {
                return Err(self.err(
                    line,
                    key,
                    format!("invalid mount {raw:?}: use HOST:CONTAINER[:ro|rw] (an empty HOST removes an inherited mount)"),
                ))
            }
        };
        let read_only = match mode {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(m) => {
                return Err(self.err(
                    line,
                    key,
                    format!("invalid mount {raw:?}: mode {m:?} is not \"ro\" or \"rw\""),
                ))
            }
        };
        let container = paths::check_mount_target(target, &self.dirs.home)
            .map_err(|m| self.err(line, key, format!("invalid mount {raw:?}: {m}")))?;
        let host = if host.is_empty() {
            None
        } else {
            let p = paths::resolve(host, &self.dirs.home, None)
                .map_err(|m| self.err(line, key, format!("invalid mount {raw:?}: {m}")))?;
            if !self.defer(
                paths::check_host_path(host, &p, &self.dirs)
                    .map_err(|m| format!("invalid mount {raw:?}: {m}")),
                line,
                key,
            ) {
                return Ok(None);
            }
            Some(p)
        };
        Ok(Some(MountEntry {
            raw: raw.to_string(),
            line,
            host,
            container,
            read_only,
        }))
    }

    /// A Dockerfile: `http://` / `https://` with a host is a URL (fetched at `up`); another
    /// `scheme://` is refused; anything else is a path.
    pub(super) fn dockerfile(&self, raw: &str, key: &str, line: usize) -> Result<DockerfileRef> {
        let lower = raw.to_ascii_lowercase();
        if let Some(rest) = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"))
        {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            if host.is_empty() || raw.contains(char::is_whitespace) {
                return Err(self.err(
                    line,
                    key,
                    format!("invalid URL {raw:?}: an http(s) URL needs a host, e.g. https://example.com/Dockerfile"),
                ));
            }
            return Ok(DockerfileRef::Url(Spanned {
                value: raw.to_string(),
                line,
            }));
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
            {
                return Err(self.err(
                    line,
                    key,
                    format!("invalid dockerfile {raw:?}: use a path (absolute, ~/ or relative to the config file) or an http(s) URL, not {scheme}://"),
                ));
            }
        }
        Ok(DockerfileRef::Path(self.host_path(raw, key, line, true)?))
    }

    pub(super) fn host_path(
        &self,
        raw: &str,
        key: &str,
        line: usize,
        relative_ok: bool,
    ) -> Result<HostPath> {
        let base = relative_ok.then_some(self.config_dir.as_path());
        let path =
            paths::resolve(raw, &self.dirs.home, base).map_err(|m| self.err(line, key, m))?;
        Ok(HostPath {
            raw: raw.to_string(),
            line,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;
    use std::path::Path;

    #[test]
    fn dockerfile_urls_and_paths() {
        let c = parse(
            "[base]\ndockerfile = \"https://example.com/Dockerfiles/custom\"\n[workspaces.a]\ndockerfile = \"~/a.Dockerfile\"\n[workspaces.b]\ndockerfile = \"HTTP://Example.com:8080/x?y=1\"\n",
        )
        .expect("parse");
        assert_eq!(
            c.base_dockerfile,
            Some(DockerfileRef::Url(Spanned {
                value: "https://example.com/Dockerfiles/custom".into(),
                line: 2
            }))
        );
        assert!(matches!(
            &c.workspaces["a"].dockerfile,
            Some(DockerfileRef::Path(hp)) if hp.path == Path::new("/nonexistent-home/u/a.Dockerfile")
        ));
        assert!(matches!(
            &c.workspaces["b"].dockerfile,
            Some(DockerfileRef::Url(_))
        ));
        for (bad, why) in [
            ("http:///path", "an http(s) URL needs a host"),
            ("https://", "an http(s) URL needs a host"),
            ("ftp://example.com/Dockerfile", "not ftp://"),
            ("file:///etc/Dockerfile", "not file://"),
        ] {
            let e = parse(&format!("[base]\ndockerfile = \"{bad}\"\n")).expect_err(bad);
            assert_eq!(e.line, 2);
            assert_eq!(e.key, "base.dockerfile");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
    }
}
