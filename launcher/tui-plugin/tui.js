// jailoc's OpenCode TUI plugin: one line in the session sidebar naming the jailoc workspace
// this session runs in and its egress mode. Written by jailoc into its own data directory at
// every `up` (never into a directory an agent can write) and loaded through
// OPENCODE_TUI_CONFIG; it reads nothing but the environment jailoc sets for the attach.
import { createElement, createTextNode, insertNode } from "@opentui/solid";

const workspace = process.env.JAILOC_WORKSPACE;
const egress = process.env.JAILOC_EGRESS;

export default {
  id: "jailoc",
  tui(api) {
    if (!workspace) return;
    const line = egress
      ? `jailoc: ${workspace} (egress ${egress})`
      : `jailoc: ${workspace}`;
    api.slots.register({
      order: 150,
      slots: {
        sidebar_content() {
          const box = createElement("box");
          const text = createElement("text");
          insertNode(text, createTextNode(line));
          insertNode(box, text);
          return box;
        },
      },
    });
  },
};
