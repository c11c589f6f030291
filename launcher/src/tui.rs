//! jailoc's OpenCode TUI plugin (the Go jailoc's sidebar line, plus the egress mode): its two
//! files are embedded here, written at every `up` into jailoc's own data directory
//! (`$XDG_DATA_HOME/jailoc/.tui/`, on the mount deny-list with its parents, so no agent can
//! write it), mounted read-only into every agent container at [`CONTAINER_DIR`], and named by
//! `OPENCODE_TUI_CONFIG` for the attach — OpenCode 1.18.33 adds that file's plugins to the
//! user's own `tui.json`. The plugin is never loaded from a path a container can write.

use std::path::{Path, PathBuf};

use crate::fsutil;

/// The plugin's `package.json` (its `./tui` export is what OpenCode's TUI loads).
pub const PACKAGE_JSON: &str = include_str!("../tui-plugin/package.json");
/// The plugin itself.
pub const TUI_JS: &str = include_str!("../tui-plugin/tui.js");
/// Where the plugin directory is mounted, read-only, in every agent container.
pub const CONTAINER_DIR: &str = "/usr/local/share/jailoc-tui";
/// The TUI config for the host's `opencode attach` (names the plugin by its host path).
pub const HOST_CONFIG: &str = "host.json";
/// The TUI config for the attach inside the container (names it under [`CONTAINER_DIR`]).
pub const CONTAINER_CONFIG: &str = "container.json";

/// The plugin directory: `$XDG_DATA_HOME/jailoc/.tui` (a name no workspace can have).
pub fn dir(jailoc_data: &Path) -> PathBuf {
    jailoc_data.join(".tui")
}

/// `{"plugin":["file://DIR/plugin"]}`.
fn config_for(plugin_dir: &str) -> String {
    let spec = format!("file://{plugin_dir}/plugin");
    format!("{{\"plugin\":[{}]}}\n", serde_json::Value::String(spec))
}

/// Writes the plugin and both configs into `dir` (each only if it changed; world-readable,
/// as the agent reads them through the mount; nothing secret is in them).
pub fn write(dir: &Path) -> std::io::Result<()> {
    let plugin = dir.join("plugin");
    std::fs::create_dir_all(&plugin)?;
    for d in [dir, plugin.as_path()] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    fsutil::write_if_changed(&plugin.join("package.json"), PACKAGE_JSON.as_bytes(), 0o644)?;
    fsutil::write_if_changed(&plugin.join("tui.js"), TUI_JS.as_bytes(), 0o644)?;
    let host = config_for(&dir.to_string_lossy());
    fsutil::write_if_changed(&dir.join(HOST_CONFIG), host.as_bytes(), 0o644)?;
    let inside = config_for(CONTAINER_DIR);
    fsutil::write_if_changed(&dir.join(CONTAINER_CONFIG), inside.as_bytes(), 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_plugin_and_both_configs() {
        let tmp = crate::testutil::tempdir();
        let d = dir(tmp.path());
        write(&d).expect("write");
        let host = std::fs::read_to_string(d.join(HOST_CONFIG)).expect("host");
        assert_eq!(
            host,
            format!("{{\"plugin\":[\"file://{}/plugin\"]}}\n", d.display())
        );
        let inside = std::fs::read_to_string(d.join(CONTAINER_CONFIG)).expect("inside");
        assert_eq!(
            inside,
            "{\"plugin\":[\"file:///usr/local/share/jailoc-tui/plugin\"]}\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("plugin/tui.js")).expect("js"),
            TUI_JS
        );
        assert!(TUI_JS.contains("process.env.JAILOC_WORKSPACE"));
        assert!(PACKAGE_JSON.contains("\"./tui\": \"./tui.js\""));
        assert_eq!(fsutil::mode_of(&d.join("plugin/tui.js")), Some(0o644));
    }
}
