//! The network-namespace lab (test tier 3).
//!
//! [`Lab::up`] builds three throwaway network namespaces joined by veth pairs — and never linked
//! to the root namespace or any real interface, so nothing a test sends can leave the lab:
//!
//! ```text
//!  agent ──eth0── gw (Docker's gateway = "the host") ──uplink── world
//!  172.17.0.2      172.17.0.1, fd17::1, fe80::1,                 10.254.0.2, fd99::2
//!  fd17::2         169.254.1.1; TCP services + UDP sinks         lo: internal hosts (10/8,    
//!  resolv.conf,    forwards to world                             172.16/12, 192.168/16, 100.64/10,
//!  hosts replaced                                                metadata, fd00::/8), public hosts
//!                                                                (documentation ranges), dnsmasq;
//!                                                                every other destination is a
//!                                                                silent blackhole
//! ```
//!
//! [`LabOptions::host_addresses`] adds the host on addresses outside every blocked range (a
//! public IPv4 and a global IPv6 elsewhere on the host, a global IPv6 and a public IPv4 prefix
//! on the agent's link, with a sibling container) and listeners on `[::]` in gw;
//! [`LabOptions::seg6`] turns on segment routing in gw and world.
//!
//! Every host address in `world` and `gw` runs TCP listeners and UDP echo sinks (the probe's
//! `listen` sub-command) that log what reached them, so a test can check that blocked flows
//! arrived nowhere. Unknown destinations (NAT64/6to4 forms, 240/4...) are blackholed without an
//! ICMP error: without the firewall they time out, so a fast `refused`/`blocked` proves a reject
//! rule matched. [`Lab`] deletes everything on drop, also when a test panics.

use crate::netns::{self, ip, Netns};
use crate::{probe_lines, which, TempDir};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Addresses of the lab, shared by the tests and the benchmark scripts (`scripts/lab/up`).
pub mod addr {
    /// The agent's own addresses.
    pub const AGENT_V4: &str = "172.17.0.2";
    /// The agent's own IPv6 address (a ULA, as on a Docker IPv6 bridge).
    pub const AGENT_V6: &str = "fd17::2";
    /// The gateway (= the host) as the agent sees it.
    pub const GW_V4: &str = "172.17.0.1";
    /// The gateway's ULA address.
    pub const GW_V6: &str = "fd17::1";
    /// The gateway's link-local address on the agent's link (scope `eth0` in the agent).
    pub const GW_LL6: &str = "fe80::1";
    /// An IPv4 link-local address on the gateway.
    pub const GW_LL4: &str = "169.254.1.1";
    /// Ports the gateway serves on TCP (ssh, http, ollama) and its UDP sinks.
    pub const GW_TCP_PORTS: &[u16] = &[22, 80, 11434];
    /// UDP sink ports on the gateway.
    pub const GW_UDP_PORTS: &[u16] = &[53, 9999];

    /// The lab's DNS server (dnsmasq), on a private address as corporate resolvers are.
    pub const DNS_V4: &str = "10.53.0.53";
    /// The lab's DNS server over IPv6.
    pub const DNS_V6: &str = "fd00:53::53";
    /// The lab's DNS server on a link-local address, as the AWS VPC resolver 169.254.169.253.
    pub const DNS_LL: &str = "169.254.169.253";
    /// An address in world that answers nothing at all (a dead resolver).
    pub const DEAD_V4: &str = "10.53.0.99";
    /// The second resolver of `LabOptions::loopback_dns`: on the agent's own loopback, where
    /// Docker's embedded DNS answers in a user-defined network (Compose's).
    pub const DNS_LOOPBACK: &str = "127.0.0.11";

    /// Internal hosts: (label, address), one per blocked class.
    pub const INTERNAL: &[(&str, &str)] = &[
        ("rfc1918-10", "10.0.0.1"),
        ("rfc1918-172", "172.16.0.1"),
        ("rfc1918-172-top", "172.31.255.1"),
        ("rfc1918-192", "192.168.1.1"),
        ("cgnat", "100.64.0.1"),
        ("metadata", "169.254.169.254"),
        ("azure-wireserver", "168.63.129.16"),
        ("benchmarking", "198.18.0.1"),
        ("ietf-192.0.0", "192.0.0.8"),
        ("ula", "fd00::1"),
        ("ula-fc", "fc00::1"),
    ];
    /// An internal host reached only through the allowlisted name `internal.lab` on port 5432.
    pub const INTERNAL_ALLOWED: &str = "10.1.2.3";
    /// An internal IPv6 host allowlisted as `[fd00::5]:443`.
    pub const INTERNAL_ALLOWED_V6: &str = "fd00::5";
    /// A host inside the allowlisted network `192.168.5.0/24:5432`.
    pub const NET_ALLOWED_V4: &str = "192.168.5.5";
    /// A host inside the allowlisted network `fd00:1::/64`.
    pub const NET_ALLOWED_V6: &str = "fd00:1::1";

    /// Public hosts (documentation ranges play the internet).
    pub const PUBLIC: &[&str] = &[
        "192.0.2.10",
        "192.0.2.20",
        "198.51.100.10",
        "203.0.113.10",
        "203.0.113.20",
        "2001:db8::10",
        "2001:db8:1::20",
        // NAT64 and 6to4 forms of public 198.51.100.10: these must stay reachable.
        "64:ff9b::c633:640a",
        "2002:c633:640a::1",
    ];
    /// TCP ports every world host serves.
    pub const TCP_PORTS: &[u16] = &[80, 443, 5432, 8080];

    // `LabOptions::host_addresses`: the host on addresses outside every blocked range. None of
    // them is in `PUBLIC` or inside a prefix a `PUBLIC` host is in.
    /// The host's public IPv4 address on another of its interfaces (gw's loopback here): only
    /// `blocked_networks` (the launcher's list of the host's addresses) can wall it off.
    pub const HOST_PUBLIC_V4: &str = "203.0.113.77";
    /// The host's global IPv6 address on another interface.
    pub const HOST_GLOBAL_V6: &str = "2001:db8:77::1";
    /// A global IPv6 prefix on the agent's link (Docker with a global IPv6 subnet): the
    /// agent's address in it, and the gateway's, which becomes the agent's IPv6 default route.
    pub const LINK_V6_PREFIX: &str = "2001:db8:17::/64";
    pub const LINK_AGENT_V6: &str = "2001:db8:17::2";
    pub const LINK_GW_V6: &str = "2001:db8:17::1";
    /// Another "container" on the agent's link (an address on the gateway's side of it).
    pub const LINK_SIBLING_V6: &str = "2001:db8:17::3";
    /// A public IPv4 subnet on the agent's link too (macvlan/ipvlan-style), with the gateway's
    /// address and a sibling in it.
    pub const LINK_V4_PREFIX: &str = "192.0.2.128/26";
    pub const LINK_AGENT_V4: &str = "192.0.2.130";
    pub const LINK_GW_V4: &str = "192.0.2.129";
    pub const LINK_SIBLING_V4: &str = "192.0.2.131";
    /// TCP ports the gateway serves on every address at once (`[::]`, dual-stack), as a host
    /// service bound to 0.0.0.0/[::] does (its UDP sinks, [`GW_UDP_PORTS`], are on each of the
    /// addresses above).
    pub const GW_WILDCARD_PORTS: &[u16] = &[2222, 2223];
    /// UDP echo sinks on every world host.
    pub const UDP_PORTS: &[u16] = &[53, 443, 9999];
}

/// Lab names served by dnsmasq (`name`, addresses). Tests may add more via [`LabOptions`].
pub const LAB_NAMES: &[(&str, &[&str])] = &[
    ("public.lab", &["198.51.100.10", "2001:db8::10"]),
    ("api.lab", &["203.0.113.10"]),
    ("v6only.lab", &["2001:db8:1::20"]),
    ("internal.lab", &["10.1.2.3"]),
    ("metadata.lab", &["169.254.169.254"]),
    ("ula.lab", &["fd00::5"]),
];

/// What to build besides the fixed topology.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// Extra `name → address` records for dnsmasq (served from an addn-hosts file).
    pub extra_names: Vec<(String, String)>,
    /// Extra IPv4 addresses to give world (on its loopback) (with the same listeners).
    pub extra_hosts: Vec<String>,
    /// Do not start the listeners (benchmarks that only need DNS).
    pub no_listeners: bool,
    /// A fixed lab id (namespaces `ID-agent`, `ID-gw`, `ID-world`, dir `$TMPDIR/jailoc-lab-ID`)
    /// for labs that outlive the process (`scripts/lab/up`); default: unique per test.
    pub id: Option<String>,
    /// An IPv4-only agent (IPv6 disabled in its namespace, as in Docker's default networks).
    pub agent_ipv4_only: bool,
    /// The host on addresses no blocked range covers: [`addr::HOST_PUBLIC_V4`] and
    /// [`addr::HOST_GLOBAL_V6`] on gw's loopback, a global IPv6 and a public IPv4 prefix on the
    /// agent's link (gateway, agent, a sibling), the agent's IPv6 default route via the global
    /// gateway address, TCP listeners on `[::]` ([`addr::GW_WILDCARD_PORTS`]) in gw and UDP
    /// sinks on each of those addresses.
    pub host_addresses: bool,
    /// Segment routing enabled (`seg6_enabled`) in gw and world: a packet with a segment
    /// routing header is forwarded to its next segment by the node it is addressed to.
    pub seg6: bool,
    /// dnsmasq without `--log-queries` (benchmarks: the log costs the server CPU on the same
    /// cores sandbox-init runs on; tests keep it to prove which queries arrived).
    pub quiet_dns: bool,
    /// Also serve the lab's names from a second, quiet dnsmasq on the agent namespace's
    /// loopback ([`addr::DNS_LOOPBACK`]), the layout of a Compose container, whose queries
    /// never leave its namespace; the routed resolver stays the default in `resolv.conf`.
    pub loopback_dns: bool,
}

/// The outcome of one sandbox-init run.
#[derive(Debug)]
pub struct Run {
    /// Exit status of the `ip netns exec ... unshare ... sandbox-init` process chain.
    pub status: ExitStatus,
    /// Exit code (None if killed by a signal or by the watchdog).
    pub code: Option<i32>,
    /// The probe's stdout.
    pub stdout: String,
    /// sandbox-init's (and the probe's) stderr.
    pub stderr: String,
    /// Parsed probe lines.
    pub lines: Vec<Value>,
    /// How long the whole run took.
    pub elapsed: Duration,
}

impl Run {
    /// The probe line whose `check` field is `check` (from `probe batch`).
    pub fn check(&self, check: &str) -> Option<&Value> {
        self.lines
            .iter()
            .find(|l| l.get("check").and_then(Value::as_str) == Some(check))
    }
}

/// A running lab; dropping it kills its processes and deletes its namespaces.
#[derive(Debug)]
pub struct Lab {
    /// The agent's network namespace.
    pub agent: String,
    /// The gateway/host namespace.
    pub gw: String,
    /// The world namespace (internal and public hosts, dnsmasq).
    pub world: String,
    /// Scratch dir (0755): probe copy, configs, logs.
    pub dir: TempDir,
    /// The probe, copied to a world-readable path so UID 1000 can run it.
    pub probe: PathBuf,
    /// A directory the agent (any uid) may write markers into.
    pub markers: PathBuf,
    etc_netns: PathBuf,
    /// The three namespaces, deleted (with whatever runs in them) when the lab is dropped.
    namespaces: Vec<Netns>,
    procs: Vec<Child>,
    logs: Vec<PathBuf>,
    dns_log: PathBuf,
}

/// Runs a command, panicking with its stderr if it fails (lab set-up must not half-work).
fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("failed to run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "failed to run {cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ip -n NS -batch -` with the given commands.
fn ip_batch(ns: &str, cmds: &[String]) {
    use std::io::Write;
    let mut child = Command::new(ip())
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("failed to run ip -batch");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(cmds.join("\n").as_bytes())
        .expect("failed to write ip batch");
    drop(stdin);
    let out = child.wait_with_output().expect("failed to wait for ip");
    assert!(
        out.status.success(),
        "failed to configure namespace {ns}: {}\ncommands:\n{}",
        String::from_utf8_lossy(&out.stderr),
        cmds.join("\n")
    );
}

/// Writes sysctls inside a namespace (they are per network namespace).
fn sysctls(ns: &str, kv: &[(&str, &str)]) {
    let script: String = kv
        .iter()
        .map(|(k, v)| format!("echo '{v}' > /proc/sys/{} && ", k.replace('.', "/")))
        .collect::<String>()
        + "true";
    sh(Command::new(ip()).args(["netns", "exec", ns, "sh", "-c", &script]));
}

fn is_v6(a: &str) -> bool {
    a.contains(':')
}

fn host_cidr(a: &str) -> String {
    if is_v6(a) {
        format!("{a}/128")
    } else {
        format!("{a}/32")
    }
}

fn sock(a: &str, port: u16) -> String {
    if is_v6(a) {
        format!("[{a}]:{port}")
    } else {
        format!("{a}:{port}")
    }
}

impl Lab {
    /// Builds the lab with the default names and listeners.
    pub fn up() -> Lab {
        Self::with(LabOptions::default())
    }

    /// Builds the lab. Panics (after cleaning up) if any step fails.
    pub fn with(opts: LabOptions) -> Lab {
        gc_stale();
        let id = opts.id.clone().unwrap_or_else(|| crate::unique_name("jl"));
        let dir = TempDir::at(std::env::temp_dir().join(format!("jailoc-lab-{id}")));
        let probe = dir.path().join("probe");
        std::fs::copy(crate::probe(), &probe).expect("failed to copy the probe into the lab dir");
        let markers = dir.subdir("markers", 0o1777);
        let mut lab = Lab {
            agent: format!("{id}-agent"),
            gw: format!("{id}-gw"),
            world: format!("{id}-world"),
            etc_netns: PathBuf::from("/etc/netns").join(format!("{id}-agent")),
            dns_log: dir.path().join("dnsmasq.log"),
            dir,
            probe,
            markers,
            namespaces: Vec::new(),
            procs: Vec::new(),
            logs: Vec::new(),
        };
        // From here on, a panic drops `lab`, which removes whatever exists so far.
        lab.build(&opts);
        lab
    }

    fn build(&mut self, opts: &LabOptions) {
        use addr::*;
        for ns in [&self.agent, &self.gw, &self.world] {
            self.namespaces.push(Netns::named(ns.clone()));
        }
        // No duplicate address detection: addresses are usable at once. Ping sockets for every
        // group in the agent's namespace, as Docker sets net.ipv4.ping_group_range.
        let no_dad = [
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_ra", "0"),
        ];
        sysctls(
            &self.agent,
            &[
                &no_dad[..],
                &[("net.ipv4.ping_group_range", "0 2147483647")],
                if opts.agent_ipv4_only {
                    &[
                        ("net.ipv6.conf.all.disable_ipv6", "1"),
                        ("net.ipv6.conf.default.disable_ipv6", "1"),
                    ][..]
                } else {
                    &[][..]
                },
            ]
            .concat(),
        );
        sysctls(
            &self.gw,
            &[
                &no_dad[..],
                &[
                    ("net.ipv4.ip_forward", "1"),
                    ("net.ipv6.conf.all.forwarding", "1"),
                ],
            ]
            .concat(),
        );
        sysctls(&self.world, &no_dad);
        if opts.seg6 {
            for ns in [&self.gw, &self.world] {
                sysctls(
                    ns,
                    &[
                        ("net.ipv6.conf.all.seg6_enabled", "1"),
                        ("net.ipv6.conf.default.seg6_enabled", "1"),
                    ],
                );
            }
        }

        // The agent: one veth to the gateway, default routes through it.
        let mut agent: Vec<String> = vec![
            "link set lo up".into(),
            format!("link add eth0 type veth peer name eth0 netns {}", self.gw),
            format!("addr add {AGENT_V4}/16 dev eth0"),
            "link set eth0 up".into(),
            format!("route add default via {GW_V4}"),
        ];
        if !opts.agent_ipv4_only {
            agent.push(format!("addr add {AGENT_V6}/64 dev eth0 nodad"));
            agent.push(format!("route add ::/0 via {GW_V6}"));
        }
        let len = |prefix: &str| prefix.split_once('/').map_or("", |(_, l)| l).to_owned();
        if opts.host_addresses {
            agent.push(format!(
                "addr add {LINK_AGENT_V4}/{} dev eth0",
                len(LINK_V4_PREFIX)
            ));
            if !opts.agent_ipv4_only {
                agent.push(format!(
                    "addr add {LINK_AGENT_V6}/{} dev eth0 nodad",
                    len(LINK_V6_PREFIX)
                ));
                agent.push(format!("route replace ::/0 via {LINK_GW_V6}"));
            }
        }
        // The gateway: the agent's link with the addresses Docker's host has, an uplink to world.
        let mut gw = vec![
            "link set lo up".into(),
            format!(
                "link add uplink type veth peer name uplink netns {}",
                self.world
            ),
            format!("addr add {GW_V4}/16 dev eth0"),
            format!("addr add {GW_V6}/64 dev eth0 nodad"),
            format!("addr add {GW_LL6}/64 dev eth0 nodad"),
            format!("addr add {GW_LL4}/32 dev eth0"),
            "link set eth0 up".into(),
            "addr add 10.254.0.1/30 dev uplink".into(),
            "addr add fd99::1/64 dev uplink nodad".into(),
            "link set uplink up".into(),
            "route add default via 10.254.0.2".into(),
            "route add ::/0 via fd99::2".into(),
        ];
        if opts.host_addresses {
            gw.extend([
                format!("addr add {HOST_PUBLIC_V4}/32 dev lo"),
                format!("addr add {HOST_GLOBAL_V6}/128 dev lo nodad"),
                format!("addr add {LINK_GW_V4}/{} dev eth0", len(LINK_V4_PREFIX)),
                format!("addr add {LINK_SIBLING_V4}/32 dev eth0"),
                format!(
                    "addr add {LINK_GW_V6}/{} dev eth0 nodad",
                    len(LINK_V6_PREFIX)
                ),
                format!("addr add {LINK_SIBLING_V6}/128 dev eth0 nodad"),
            ]);
        }
        // The agent's batch creates the veth pair; gw's configures its end.
        ip_batch(&self.agent, &agent);
        ip_batch(&self.gw, &gw);
        // World: every host address on its loopback (no dummy module needed); unknown destinations vanish silently.
        let mut hosts: Vec<String> = INTERNAL.iter().map(|(_, a)| a.to_string()).collect();
        hosts.extend(PUBLIC.iter().map(|a| a.to_string()));
        hosts.extend(
            [
                INTERNAL_ALLOWED,
                INTERNAL_ALLOWED_V6,
                NET_ALLOWED_V4,
                NET_ALLOWED_V6,
            ]
            .iter()
            .map(|a| a.to_string()),
        );
        hosts.extend(opts.extra_hosts.iter().cloned());
        let mut cmds: Vec<String> = vec![
            "link set lo up".into(),
            "addr add 10.254.0.2/30 dev uplink".into(),
            "addr add fd99::2/64 dev uplink nodad".into(),
            "link set uplink up".into(),
            format!("route add 172.17.0.0/16 via 10.254.0.1"),
            "route add fd17::/64 via fd99::1".into(),
            // The agent's public/global link addresses (`host_addresses`): replies go back too.
            format!("route add {LINK_V4_PREFIX} via 10.254.0.1"),
            format!("route add {LINK_V6_PREFIX} via fd99::1"),
            "route add blackhole default".into(),
            "route add blackhole ::/0".into(),
        ];
        for a in hosts
            .iter()
            .chain([DNS_V4.to_string(), DNS_V6.to_string(), DNS_LL.to_string()].iter())
        {
            let nodad = if is_v6(a) { " nodad" } else { "" };
            cmds.push(format!("addr add {} dev lo{nodad}", host_cidr(a)));
        }
        ip_batch(&self.world, &cmds);

        // The agent's /etc/resolv.conf and /etc/hosts: `ip netns exec` bind-mounts the files in
        // /etc/netns/NAME/ over /etc/ in a private mount namespace.
        std::fs::create_dir_all(&self.etc_netns).expect("failed to create /etc/netns/<agent>");
        self.set_resolv_conf(&format!(
            "nameserver {DNS_V4}\nnameserver {DNS_V6}\noptions timeout:1 attempts:1\n"
        ));
        std::fs::write(
            self.etc_netns.join("hosts"),
            "127.0.0.1 localhost\n::1 localhost ip6-localhost\n192.0.2.20 hosts-only.lab\n",
        )
        .expect("failed to write the agent's hosts file");

        if !opts.no_listeners {
            // Gateway services and sinks.
            let mut specs = Vec::new();
            for a in [GW_V4, GW_V6, GW_LL4] {
                specs.extend(GW_TCP_PORTS.iter().map(|p| format!("tcp:{}", sock(a, *p))));
                specs.extend(GW_UDP_PORTS.iter().map(|p| format!("udp:{}", sock(a, *p))));
            }
            let ll = format!("{GW_LL6}%eth0");
            specs.extend(
                GW_TCP_PORTS
                    .iter()
                    .map(|p| format!("tcp:{}", sock(&ll, *p))),
            );
            specs.extend(
                GW_UDP_PORTS
                    .iter()
                    .map(|p| format!("udp:{}", sock(&ll, *p))),
            );
            if opts.host_addresses {
                // TCP on [::] (a UDP reply from a wildcard socket would leave from another
                // address); UDP sinks on each of the host's extra addresses.
                for p in GW_WILDCARD_PORTS {
                    specs.push(format!("tcp:[::]:{p}"));
                }
                for a in [
                    HOST_PUBLIC_V4,
                    HOST_GLOBAL_V6,
                    LINK_GW_V4,
                    LINK_SIBLING_V4,
                    LINK_GW_V6,
                    LINK_SIBLING_V6,
                ] {
                    specs.extend(GW_UDP_PORTS.iter().map(|p| format!("udp:{}", sock(a, *p))));
                }
            }
            self.listen(&self.gw.clone(), "gw", &specs);
            // World hosts, plus a TCP service on the resolver's address (not port 53).
            let mut specs = Vec::new();
            for a in &hosts {
                specs.extend(TCP_PORTS.iter().map(|p| format!("tcp:{}", sock(a, *p))));
                specs.extend(UDP_PORTS.iter().map(|p| format!("udp:{}", sock(a, *p))));
            }
            for a in [DNS_V4, DNS_V6, DNS_LL] {
                specs.push(format!("tcp:{}", sock(a, 80)));
                specs.push(format!("udp:{}", sock(a, 9999)));
            }
            self.listen(&self.world.clone(), "world", &specs);
        }
        self.start_dns(opts);
        // Resolve every neighbour once now, so the first datagrams of a test are not queued
        // behind neighbour discovery (and the entries then stay usable).
        let probe = self.probe.display().to_string();
        for (ns, peers) in [
            (&self.agent, [GW_V4, GW_V6]),
            (&self.world, ["10.254.0.1", "fd99::1"]),
        ] {
            for peer in peers {
                if !(opts.agent_ipv4_only && ns == &self.agent && is_v6(peer)) {
                    self.exec(ns, &[&probe, "ping", peer]);
                }
            }
        }
    }

    /// Starts `probe listen` in a namespace and waits until every socket is bound.
    fn listen(&mut self, ns: &str, name: &str, specs: &[String]) {
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("failed to create a listener log");
        let child = Command::new(ip())
            .args(["netns", "exec", ns])
            .arg(&self.probe)
            .arg("listen")
            .args(specs)
            .stdout(file)
            .stderr(self.err_file(name))
            .spawn()
            .expect("failed to start the lab listeners");
        self.procs.push(child);
        self.logs.push(log.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("\"listening\"") {
                return;
            }
            if let Some(Ok(Some(st))) = self.procs.last_mut().map(|c| c.try_wait()) {
                panic!(
                    "lab listeners in {name} exited ({st}): {}",
                    self.err_text(name)
                );
            }
            assert!(
                Instant::now() < deadline,
                "lab listeners in {name} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts dnsmasq in world, answering only the lab's names, and waits until it answers.
    fn start_dns(&mut self, opts: &LabOptions) {
        use addr::*;
        let dnsmasq = which("dnsmasq")
            .or_else(|| Some(PathBuf::from("/usr/sbin/dnsmasq")).filter(|p| p.is_file()))
            .expect("dnsmasq not found: apt-get install dnsmasq-base");
        let mut hosts = String::new();
        for (name, addrs) in LAB_NAMES {
            for a in *addrs {
                hosts.push_str(&format!("{a} {name}\n"));
            }
        }
        for (name, a) in &opts.extra_names {
            hosts.push_str(&format!("{a} {name}\n"));
        }
        let hosts_file = self.dir.write("dnsmasq.hosts", &hosts);
        let mut extra = vec![format!("--log-facility={}", self.dns_log.display())];
        if !opts.quiet_dns {
            extra.push("--log-queries".to_owned());
        }
        let world = self.world.clone();
        self.spawn_dnsmasq(
            &world,
            "dnsmasq",
            &dnsmasq,
            &[DNS_V4, DNS_V6, DNS_LL],
            &hosts_file,
            &extra,
        );
        if opts.loopback_dns {
            // The second resolver of [`LabOptions::loopback_dns`]: the same names, in the
            // agent's own namespace.
            let agent = self.agent.clone();
            let tag = "dnsmasq-loopback";
            self.spawn_dnsmasq(&agent, tag, &dnsmasq, &[DNS_LOOPBACK], &hosts_file, &[]);
        }
    }

    /// Starts `dnsmasq` in namespace `ns`, answering only the lab's names (`hosts_file`) on the
    /// `listen` addresses, and waits until it answers on the first of them. Its stderr goes to
    /// `TAG.err` in the lab dir.
    fn spawn_dnsmasq(
        &mut self,
        ns: &str,
        tag: &str,
        dnsmasq: &Path,
        listen: &[&str],
        hosts_file: &Path,
        extra: &[String],
    ) {
        let child = Command::new(ip())
            .args(["netns", "exec", ns])
            .arg(dnsmasq)
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--user=root",
                "--group=root",
                "--bind-interfaces",
                "--local=/lab/",
                "--cache-size=10000",
            ])
            .args(listen.iter().map(|a| format!("--listen-address={a}")))
            .arg(format!("--addn-hosts={}", hosts_file.display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(self.err_file(tag))
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {tag}: {e}"));
        self.procs.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new(ip())
                .args(["netns", "exec", ns])
                .arg(&self.probe)
                .args(["dns", "public.lab", "--server", listen[0]])
                .args(["--timeout-ms", "200"])
                .output()
                .expect("failed to run the probe");
            if String::from_utf8_lossy(&out.stdout).contains("198.51.100.10") {
                return;
            }
            if let Some(Ok(Some(st))) = self.procs.last_mut().map(|c| c.try_wait()) {
                panic!("{tag} exited ({st}): {}", self.err_text(tag));
            }
            assert!(Instant::now() < deadline, "{tag} did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn err_file(&self, name: &str) -> std::fs::File {
        std::fs::File::create(self.dir.path().join(format!("{name}.err")))
            .expect("failed to create a lab log file")
    }

    fn err_text(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.err"))).unwrap_or_default()
    }

    /// Keeps the lab running after this process exits (`scripts/lab/up`); remove it with
    /// [`teardown`] (`scripts/lab/down`).
    pub fn persist(self) {
        std::mem::forget(self);
    }

    /// Replaces the agent's `/etc/resolv.conf` (seen by every later `ip netns exec`).
    pub fn set_resolv_conf(&self, text: &str) {
        std::fs::write(self.etc_netns.join("resolv.conf"), text)
            .expect("failed to write the agent's resolv.conf");
    }

    /// Serves `extra` (`name`, address) besides the lab's names from now on: rewrites dnsmasq's
    /// hosts file and makes every dnsmasq of this lab re-read it (SIGHUP). What a DNS record
    /// that changes while the agent runs looks like.
    pub fn set_dns_names(&self, extra: &[(&str, &str)]) {
        let mut hosts = String::new();
        for (name, addrs) in LAB_NAMES {
            for a in *addrs {
                hosts.push_str(&format!("{a} {name}\n"));
            }
        }
        for (name, a) in extra {
            hosts.push_str(&format!("{a} {name}\n"));
        }
        let path = self.dir.write("dnsmasq.hosts", &hosts);
        let status = Command::new("pkill")
            .args(["-HUP", "-f", &format!("addn-hosts={}", path.display())])
            .status()
            .expect("failed to run pkill");
        assert!(status.success(), "no dnsmasq of this lab to reload");
    }

    /// Appends to the agent's `/etc/hosts`.
    pub fn add_hosts_entries(&self, text: &str) {
        let path = self.etc_netns.join("hosts");
        let mut cur = std::fs::read_to_string(&path).unwrap_or_default();
        cur.push_str(text);
        std::fs::write(&path, cur).expect("failed to write the agent's hosts file");
    }

    /// The command prefix that runs something in the agent's namespace as PID 1 of a fresh pid
    /// namespace, with a clean environment: `ip netns exec AGENT unshare --pid --fork
    /// --mount-proc env -i PATH=... [env...]`.
    pub fn agent_command(&self, env: &[(&str, &str)]) -> Command {
        self.agent_command_hiding(env, &[])
    }

    /// Like [`Lab::agent_command`], with each directory in `hide` covered by an empty one in
    /// the agent's private mount namespace (e.g. `/usr/sbin`: no iptables binaries at all).
    pub fn agent_command_hiding(&self, env: &[(&str, &str)], hide: &[&str]) -> Command {
        self.agent_command_setup(env, hide, "")
    }

    /// Like [`Lab::agent_command_hiding`], also running `setup` (shell, as root, in the agent's
    /// private mount namespace) before the command, e.g. a [`replace_sbin_script`].
    pub fn agent_command_setup(&self, env: &[(&str, &str)], hide: &[&str], setup: &str) -> Command {
        let mut cmd = Command::new(ip());
        cmd.args(["netns", "exec", &self.agent])
            .arg(which("unshare").expect("unshare not found: apt-get install util-linux"))
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
        // The environment first, so that what `setup` exports reaches the command.
        cmd.arg(which("env").expect("env not found")).arg("-i");
        let mut has_path = false;
        for (k, v) in env {
            has_path |= *k == "PATH";
            cmd.arg(format!("{k}={v}"));
        }
        if !has_path {
            cmd.arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        }
        if !hide.is_empty() {
            let empty = self.dir.subdir("empty", 0o755);
            cmd.args([
                "/bin/sh",
                "-c",
                r#"empty="$1"; shift; while [ "$1" != -- ]; do mount --bind "$empty" "$1" || exit 99; shift; done; shift; exec "$@""#,
                "sh",
            ])
            .arg(empty)
            .args(hide)
            .arg("--");
        }
        if !setup.is_empty() {
            cmd.args(["/bin/sh", "-c", &format!("{setup}\nexec \"$@\""), "sh"]);
        }
        cmd
    }

    /// Runs `sandbox-init --config-dir CONFIG -- PROBE ARGS...` as PID 1 in the agent's
    /// namespace (60 s watchdog, so a hang fails instead of blocking the suite).
    pub fn sandbox(&self, config: &Path, env: &[(&str, &str)], probe_args: &[&str]) -> Run {
        self.sandbox_with(&crate::sandbox_init(), config, env, probe_args)
    }

    /// Like [`Lab::sandbox`] with an explicit sandbox-init binary.
    pub fn sandbox_with(
        &self,
        init: &Path,
        config: &Path,
        env: &[(&str, &str)],
        probe_args: &[&str],
    ) -> Run {
        self.sandbox_hiding(init, &[], config, env, probe_args)
    }

    /// Like [`Lab::sandbox_with`], hiding directories (see [`Lab::agent_command_hiding`]).
    pub fn sandbox_hiding(
        &self,
        init: &Path,
        hide: &[&str],
        config: &Path,
        env: &[(&str, &str)],
        probe_args: &[&str],
    ) -> Run {
        self.sandbox_setup(init, hide, "", config, env, probe_args)
    }

    /// Like [`Lab::sandbox`], with programs in `/usr/sbin` swapped for the `(name, file)`
    /// fakes (see [`replace_sbin_script`]): how a test gives sandbox-init a failing iptables.
    pub fn sandbox_replacing(
        &self,
        fakes: &[(&str, &Path)],
        config: &Path,
        env: &[(&str, &str)],
        probe_args: &[&str],
    ) -> Run {
        let setup = if fakes.is_empty() {
            String::new()
        } else {
            replace_sbin_script(fakes)
        };
        self.sandbox_setup(&crate::sandbox_init(), &[], &setup, config, env, probe_args)
    }

    fn sandbox_setup(
        &self,
        init: &Path,
        hide: &[&str],
        setup: &str,
        config: &Path,
        env: &[(&str, &str)],
        probe_args: &[&str],
    ) -> Run {
        let mut cmd = self.agent_command_setup(env, hide, setup);
        cmd.arg(init)
            .arg("--config-dir")
            .arg(config)
            .arg("--")
            .arg(&self.probe)
            .args(probe_args);
        run_watchdog(cmd, Duration::from_secs(60))
    }

    /// Runs the probe in the agent's namespace without sandbox-init (the control: shows what
    /// is reachable when no firewall is installed).
    pub fn probe_unguarded(&self, probe_args: &[&str]) -> Run {
        let mut cmd = Command::new(ip());
        cmd.args(["netns", "exec", &self.agent])
            .arg(&self.probe)
            .args(probe_args);
        run_watchdog(cmd, Duration::from_secs(120))
    }

    /// Runs a command inside one of the lab's namespaces (e.g. `iptables-save` in the agent's).
    pub fn exec(&self, ns: &str, args: &[&str]) -> std::process::Output {
        Command::new(ip())
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("failed to run {args:?} in {ns}: {e}"))
    }

    /// Everything the gateway's and world's listeners received so far (one JSON object each,
    /// with `event` = `tcp`|`udp`, `local` = the address:port it arrived on, `peer`).
    pub fn sink_events(&self) -> Vec<Value> {
        self.logs
            .iter()
            .flat_map(|l| probe_lines(&std::fs::read_to_string(l).unwrap_or_default()))
            .filter(|v| v.get("event").and_then(Value::as_str) != Some("listening"))
            .collect()
    }

    /// Waits (up to 3 s) until the sinks have logged an arrival on `local` (`ADDR:PORT` as the
    /// probe prints it), so a positive control is not racing the listener's log write.
    pub fn wait_for_sink(&self, local: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if self
                .sink_events()
                .iter()
                .any(|e| e.get("local").and_then(Value::as_str) == Some(local))
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// dnsmasq's query log (`query[A] name from ...` lines).
    pub fn dns_log(&self) -> String {
        std::fs::read_to_string(&self.dns_log).unwrap_or_default()
    }
}

/// Shell, run as root inside a private mount namespace just before sandbox-init, that swaps
/// programs in `/usr/sbin` for the files in `fakes` (`(name, file)`). sandbox-init runs only
/// root-owned programs from the fixed system directories and ignores `PATH`, so this is how a
/// test puts a failing or recording iptables where it looks: a tmpfs on `/media` (mode 0755,
/// root's, so trusted) holds a bind mount of the real `/usr/sbin` and a farm of symlinks into
/// it, in which each fake is a root-owned copy (0755); the farm is then bound over `/usr/sbin`
/// (`/sbin` is a symlink to it on merged-/usr systems). The real programs stay reachable as
/// `/media/sbin/NAME` (a fake may `exec` one after recording its call).
///
/// Faked iptables programs stand for a kernel (or an image) in which they fail, and such a
/// kernel refuses sandbox-init's own netlink writes as well; the script therefore also sets
/// `SANDBOX_INIT_FIREWALL=iptables`, so sandbox-init uses the programs, as it would after its
/// netlink path failed.
pub fn replace_sbin_script(fakes: &[(&str, &Path)]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut script = String::from(
        "set -e\nexport SANDBOX_INIT_FIREWALL=iptables\nmount -t tmpfs -o mode=755 tmpfs /media\nmkdir -m 755 /media/sbin /media/farm\n\
         mount --bind /usr/sbin /media/sbin\n\
         for f in /media/sbin/*; do ln -s \"$f\" /media/farm/; done\n",
    );
    for (name, file) in fakes {
        let target = format!("/media/farm/{name}");
        script.push_str(&format!(
            "rm -f {t}\ncp {f} {t}\nchown 0:0 {t}\nchmod 0755 {t}\n",
            t = quote(&target),
            f = quote(&file.to_string_lossy()),
        ));
    }
    script.push_str("mount --bind /media/farm /usr/sbin\nset +e\n");
    script
}

/// Runs a command, capturing output, killing its process group after `limit`.
pub fn run_watchdog(mut cmd: Command, limit: Duration) -> Run {
    use std::os::unix::process::CommandExt;
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        if started.elapsed() > limit {
            // SAFETY: kill(2) on the process group we created for this child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            break child.wait().expect("failed to reap a killed child");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    Run {
        status,
        code: status.code(),
        lines: probe_lines(&stdout),
        stdout,
        stderr,
        elapsed,
    }
}

/// Removes labs left behind by test processes that no longer exist (killed before their Drop
/// ran): namespaces named `jl<pid>x<n>-...` whose pid is gone. Returns the ids removed.
pub fn gc_stale() -> Vec<String> {
    let Ok(out) = Command::new(ip()).args(["netns", "list"]).output() else {
        return Vec::new();
    };
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|name| {
            let id = name
                .strip_suffix("-agent")
                .or_else(|| name.strip_suffix("-gw"))
                .or_else(|| name.strip_suffix("-world"))?;
            let pid = id
                .strip_prefix("jl")?
                .split_once('x')?
                .0
                .parse::<u32>()
                .ok()?;
            (!Path::new(&format!("/proc/{pid}")).exists()).then(|| id.to_string())
        })
        .collect();
    ids.sort();
    ids.dedup();
    for id in &ids {
        teardown(id);
    }
    ids
}

/// Kills every process in the lab `id`'s namespaces and deletes them, its /etc/netns entry and
/// its scratch dir. Safe to call for a lab that is partly or not at all there.
pub fn teardown(id: &str) {
    for ns in ["agent", "gw", "world"] {
        netns::remove(&format!("{id}-{ns}"));
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("jailoc-lab-{id}")));
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Kills what is left in them, deletes them and the agent's /etc/netns entry.
        self.namespaces.clear();
    }
}

/// Writes one failing stand-in into `dir` and returns it under every `{base}{suffix}` name, for
/// [`Lab::sandbox_replacing`] (sandbox-init ignores `PATH`: it runs only root's programs from
/// the system directories).
pub fn failing_tools(
    dir: &crate::TempDir,
    bases: &[&str],
    suffixes: &[&str],
) -> Vec<(String, PathBuf)> {
    let fake = dir.write(
        "failing-iptables",
        "#!/bin/sh\ncat >/dev/null\necho 'iptables: Failed to initialize nft: Protocol not supported' >&2\nexit 1\n",
    );
    let mut fakes = Vec::new();
    for base in bases {
        for suffix in suffixes {
            fakes.push((format!("{base}{suffix}"), fake.clone()));
        }
    }
    fakes
}
