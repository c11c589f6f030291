//! Docker end-to-end: a guarded agent container on a real engine, checked from the inside.
//!
//! Every network here is `internal: true` with its own subnet and is created (and removed) by the
//! test: "internal services" on 10.232.K.0/24 and fd00:e2e:K::/64, a "public" host on the
//! documentation ranges 198.51.100.0/24 and 2001:db8::/32, a fake metadata server at
//! 169.254.169.254, and the agent's own network whose gateway is the host. The agent does not
//! join the public host's network: it reaches it through a next hop, as it reaches the internet
//! (sandbox-init refuses every prefix on the agent's own links, whatever its range). The agent is the probe (`probe serve 4096`, as a stand-in `opencode`),
//! driven over HTTP from the test process to the container's address on its internal network.
//! An unguarded control container on the same networks reaches everything first, so a check that
//! passes proves the rule, not a broken setup.
//!
//! Skips (with the reason) when no engine answers; fails under `CI=true`. Needs the release (or
//! debug) static `sandbox-init` built first: `cargo build --release -p sandbox-init -p jailoc`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jailoc_tests::docker::{self, docker, Cleanup};
use serde_json::Value;

/// The capabilities sandbox-init needs (the README's "Capabilities the container must start
/// with"); the agent ends with none of them. Written out here on purpose, not taken from the
/// launcher's `compose::CAPABILITIES`: the baked-image tests prove that sandbox-init works with
/// exactly the documented list, whatever the launcher's copy says.
const CAPS: &[&str] = &[
    "NET_ADMIN",
    "SETPCAP",
    "SETUID",
    "SETGID",
    "CHOWN",
    "FOWNER",
    "DAC_OVERRIDE",
    "KILL",
];
const AGENT_PORT: u16 = 4096;

/// The policy's egress mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Egress {
    Open,
    Allowlist,
}

impl Egress {
    fn as_str(self) -> &'static str {
        match self {
            Egress::Open => "open",
            Egress::Allowlist => "allowlist",
        }
    }
}

/// What a check from the guarded agent must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// `connected` (TCP) or `reply` (UDP echo).
    Reach,
    /// `refused` or `blocked` (a reject, never a silent drop that runs into a timeout).
    Rejected,
}

/// The services and networks around the agent, torn down with `cleanup`.
struct Lab {
    cleanup: Cleanup,
    /// Distinguishes the subnets of the tests in this file (they run one at a time).
    slot: u8,
    probe_image: String,
    svc_net: String,
    pub_net: String,
    meta_net: String,
    /// Internal service, allowlisted on 5432 only; also listens on 80.
    db: Ipv4Addr,
    /// Internal service, not allowlisted.
    intra: Ipv4Addr,
    /// "Public internet" host (documentation range).
    public: Ipv4Addr,
    /// Fake cloud metadata endpoint.
    metadata: Ipv4Addr,
    /// The internal service's IPv6 (ULA) address.
    intra6: Ipv6Addr,
    /// The public host's IPv6 address (documentation range 2001:db8::/32).
    public6: Ipv6Addr,
    /// The public host's container: the agent reaches it through a link of its own
    /// ([`Lab::link_public`]).
    public_container: String,
    /// Links made so far (each gets its own /30 and /64).
    links: std::cell::Cell<u8>,
    db_container: String,
    tmp: PathBuf,
}

impl Lab {
    fn new(slot: u8) -> Lab {
        let mut cleanup = Cleanup::new();
        let tmp = cleanup.temp_dir("jailoc-e2e");
        let probe_image = docker::build_probe_image(&mut cleanup).expect("build probe image");
        let svc_net = docker::unique("jailoc-e2e-svc");
        let pub_net = docker::unique("jailoc-e2e-pub");
        let meta_net = docker::unique("jailoc-e2e-meta");
        docker::create_network_dual(
            &mut cleanup,
            &svc_net,
            &format!("10.232.{slot}.0/24"),
            Some(&format!("fd00:e2e:{slot}::/64")),
        )
        .expect("svc network");
        docker::create_network_dual(
            &mut cleanup,
            &pub_net,
            &format!("198.51.100.{}/27", u32::from(slot) * 32),
            Some(&format!("2001:db8:{slot}::/64")),
        )
        .expect("public network");
        docker::create_network(&mut cleanup, &meta_net, "169.254.169.0/24")
            .expect("metadata network");
        let db = Ipv4Addr::new(10, 232, slot, 10);
        let intra = Ipv4Addr::new(10, 232, slot, 20);
        let public = Ipv4Addr::new(198, 51, 100, slot * 32 + 10);
        let metadata = Ipv4Addr::new(169, 254, 169, 254);
        let intra6 = Ipv6Addr::new(0xfd00, 0xe2e, slot.into(), 0, 0, 0, 0, 0x20);
        let public6 = Ipv6Addr::new(0x2001, 0xdb8, slot.into(), 0, 0, 0, 0, 0x10);
        let mut lab = Lab {
            cleanup,
            slot,
            probe_image,
            svc_net,
            pub_net,
            meta_net,
            db,
            intra,
            public,
            metadata,
            intra6,
            public6,
            public_container: String::new(),
            links: std::cell::Cell::new(0),
            db_container: String::new(),
            tmp,
        };
        lab.db_container = lab.service("db", &lab.svc_net.clone(), db, None, &[5432, 80]);
        lab.service("intra", &lab.svc_net.clone(), intra, Some(intra6), &[80]);
        let public_svc = lab.service(
            "public",
            &lab.pub_net.clone(),
            public,
            Some(public6),
            &[80, 443],
        );
        lab.public_container = public_svc;
        lab.service("metadata", &lab.meta_net.clone(), metadata, None, &[80]);
        lab
    }

    /// Starts `probe listen` on `ip` (and `ip6`) for the given TCP ports (dual-stack `[::]`
    /// sockets); returns the container name.
    fn service(
        &mut self,
        role: &str,
        net: &str,
        ip: Ipv4Addr,
        ip6: Option<Ipv6Addr>,
        ports: &[u16],
    ) -> String {
        let name = docker::unique(&format!("jailoc-e2e-{role}"));
        let mut args = self.cleanup.container_args(&["run", "-d"], &name, net);
        args.extend(["--ip".to_string(), ip.to_string()]);
        if let Some(ip6) = ip6 {
            args.extend(["--ip6".to_string(), ip6.to_string()]);
        }
        args.extend([self.probe_image.clone(), "probe".into(), "listen".into()]);
        args.extend(ports.iter().map(|p| format!("tcp:[::]:{p}")));
        // A UDP echo on every service: blocked UDP must be rejected as fast as TCP.
        args.push("udp:[::]:5353".into());
        docker(&args).expect("start service container");
        name
    }

    /// The networks the agent joins besides its own (not the public host's: see the module
    /// docs).
    fn extra_networks(&self) -> [&str; 2] {
        [&self.svc_net, &self.meta_net]
    }

    /// Gives `container` a route to the public host as the internet is reached: through a next
    /// hop, not on a network the agent is attached to (sandbox-init refuses every prefix on
    /// the agent's links). Docker cannot route between internal networks (its isolation rules
    /// drop off-subnet destinations on the bridge), so the test links the two network
    /// namespaces directly with a veth pair of their own (private 10.233.K.N/30 and
    /// fd00:233:K:N::/64, never the root namespace), as root from outside through `nsenter`
    /// (the agent cannot change links or routes), and routes the public addresses over it.
    /// Needed after every (re)start; a container that has the link already keeps it.
    fn link_public(&self, container: &str) {
        let pid = |name: &str| {
            docker::inspect(name, "{{.State.Pid}}")
                .expect("container pid")
                .trim()
                .to_owned()
        };
        let in_ns = |pid: &str, args: &[&str]| {
            let mut all = vec!["-t", pid, "-n"];
            all.extend_from_slice(args);
            let out = docker::run_output("nsenter", &all).expect("nsenter");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (agent, public) = (pid(container), pid(&self.public_container));
        if in_ns(&agent, &["ip", "link", "show", "pub0"]).0 {
            return;
        }
        let n = self.links.get();
        self.links.set(n + 1);
        let slot = self.slot;
        let peer = format!("ag{n}");
        let v4 = |host: u8| format!("10.233.{slot}.{}", n * 4 + host);
        let v6 = |host: u8| format!("fd00:233:{slot}:{n}::{host}");
        let enable_v6 = |dev: &str| format!("echo 0 > /proc/sys/net/ipv6/conf/{dev}/disable_ipv6");
        let steps: Vec<(&str, Vec<String>)> = vec![
            (
                &agent,
                vec![
                    "ip".into(),
                    "link".into(),
                    "add".into(),
                    "pub0".into(),
                    "type".into(),
                    "veth".into(),
                    "peer".into(),
                    "name".into(),
                    peer.clone(),
                    "netns".into(),
                    public.clone(),
                ],
            ),
            (&agent, vec!["sh".into(), "-c".into(), enable_v6("pub0")]),
            (
                &agent,
                vec![
                    "ip".into(),
                    "addr".into(),
                    "add".into(),
                    format!("{}/30", v4(1)),
                    "dev".into(),
                    "pub0".into(),
                ],
            ),
            (
                &agent,
                vec![
                    "ip".into(),
                    "addr".into(),
                    "add".into(),
                    format!("{}/64", v6(1)),
                    "dev".into(),
                    "pub0".into(),
                    "nodad".into(),
                ],
            ),
            (
                &agent,
                vec![
                    "ip".into(),
                    "link".into(),
                    "set".into(),
                    "pub0".into(),
                    "up".into(),
                ],
            ),
            (&public, vec!["sh".into(), "-c".into(), enable_v6(&peer)]),
            (
                &public,
                vec![
                    "ip".into(),
                    "addr".into(),
                    "add".into(),
                    format!("{}/30", v4(2)),
                    "dev".into(),
                    peer.clone(),
                ],
            ),
            (
                &public,
                vec![
                    "ip".into(),
                    "addr".into(),
                    "add".into(),
                    format!("{}/64", v6(2)),
                    "dev".into(),
                    peer.clone(),
                    "nodad".into(),
                ],
            ),
            (
                &public,
                vec![
                    "ip".into(),
                    "link".into(),
                    "set".into(),
                    peer.clone(),
                    "up".into(),
                ],
            ),
            // Replies (also from the services' wildcard UDP sockets) leave from the public
            // addresses, as they would from a host on the internet.
            (
                &public,
                vec![
                    "ip".into(),
                    "-4".into(),
                    "route".into(),
                    "replace".into(),
                    format!("{}/32", v4(1)),
                    "dev".into(),
                    peer.clone(),
                    "src".into(),
                    self.public.to_string(),
                ],
            ),
            (
                &public,
                vec![
                    "ip".into(),
                    "-6".into(),
                    "route".into(),
                    "replace".into(),
                    format!("{}/128", v6(1)),
                    "dev".into(),
                    peer.clone(),
                    "src".into(),
                    self.public6.to_string(),
                ],
            ),
            (
                &agent,
                vec![
                    "ip".into(),
                    "-4".into(),
                    "route".into(),
                    "replace".into(),
                    format!("{}/32", self.public),
                    "via".into(),
                    v4(2),
                ],
            ),
            (
                &agent,
                vec![
                    "ip".into(),
                    "-6".into(),
                    "route".into(),
                    "replace".into(),
                    format!("{}/128", self.public6),
                    "via".into(),
                    v6(2),
                ],
            ),
        ];
        for (ns, args) in steps {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, err) = in_ns(ns, &args);
            assert!(
                ok,
                "failed to link {container} to the public host ({args:?}): {err}"
            );
        }
    }

    /// The db as an allowlist entry for port 5432: by address, or by its container name, which
    /// sandbox-init resolves through Docker's embedded DNS (127.0.0.11 in /etc/resolv.conf).
    fn db_entry(&self, by_name: bool) -> String {
        if by_name {
            format!("{}:5432", self.db_container)
        } else {
            format!("{}:5432", self.db)
        }
    }

    /// Writes a policy (`egress`, the db allowlisted on 5432 only) into a fresh directory,
    /// mounted read-only at /etc/jailoc.
    fn policy_dir(&self, egress: Egress, db_by_name: bool) -> PathBuf {
        let dir = self.tmp.join(docker::unique("policy"));
        std::fs::create_dir_all(&dir).expect("policy dir");
        let toml = format!(
            "egress = \"{}\"\nallowed_hosts = [\"{}\"]\n",
            egress.as_str(),
            self.db_entry(db_by_name)
        );
        std::fs::write(dir.join("policy.toml"), toml).expect("policy.toml");
        dir
    }

    /// The checks that do not depend on the agent's own network (probe arguments), with what a
    /// guarded agent under `egress` must see.
    fn matrix(&self, egress: Egress) -> Vec<(String, String, Expect)> {
        // Public hosts: reachable in open egress, walled off like the rest in allowlist egress.
        let public = match egress {
            Egress::Open => Expect::Reach,
            Egress::Allowlist => Expect::Rejected,
        };
        vec![
            (
                "allowlisted db on its allowed port".into(),
                format!("tcp {}:5432", self.db),
                Expect::Reach,
            ),
            (
                "allowlisted db on another port".into(),
                format!("tcp {}:80", self.db),
                Expect::Rejected,
            ),
            (
                "internal service".into(),
                format!("tcp {}:80", self.intra),
                Expect::Rejected,
            ),
            (
                "cloud metadata".into(),
                format!("tcp {}:80", self.metadata),
                Expect::Rejected,
            ),
            (
                "public host".into(),
                format!("tcp {}:80", self.public),
                public,
            ),
            (
                "public host, second port".into(),
                format!("tcp {}:443", self.public),
                public,
            ),
            (
                "internal service over IPv6 (ULA)".into(),
                format!("tcp [{}]:80", self.intra6),
                Expect::Rejected,
            ),
            (
                "public host over IPv6".into(),
                format!("tcp [{}]:80", self.public6),
                public,
            ),
            // Not TCP: a reject is an ICMP administratively-prohibited, never silence.
            (
                "internal service over UDP".into(),
                format!("udp {}:5353", self.intra),
                Expect::Rejected,
            ),
            (
                "public host over UDP".into(),
                format!("udp {}:5353", self.public),
                public,
            ),
        ]
    }

    /// Creates (not starts) a container on `own_net` plus the lab networks, then starts it, so
    /// every interface exists before its PID 1 looks at them.
    fn start_on_networks(&mut self, name: &str, own_net: &str, run_args: &[&str]) {
        let mut args = self.cleanup.container_args(&["create"], name, own_net);
        args.extend(run_args.iter().map(|s| s.to_string()));
        docker(&args).expect("create container");
        for net in self.extra_networks() {
            docker(["network", "connect", net, name]).expect("connect network");
        }
        docker(["start", name]).expect("start container");
    }

    /// Starts `image` guarded by `policy` ([`guarded_flags`]) as a fresh `<prefix>-…` container
    /// on `own_net` plus the lab networks and waits until it serves; returns its name and address.
    fn start_guarded(
        &mut self,
        prefix: &str,
        own_net: &str,
        policy: &Path,
        image: &str,
    ) -> (String, Ipv4Addr) {
        let name = docker::unique(prefix);
        let mut run_args = guarded_flags(policy);
        run_args.push(image.to_owned());
        let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
        self.start_on_networks(&name, own_net, &run_args);
        let ip = docker::container_ip(&name, own_net).expect("agent ip");
        wait_health(&name, ip);
        (name, ip)
    }

    /// An unguarded container (the probe image without sandbox-init) on the same networks: it
    /// must reach every target, otherwise the guarded checks would prove nothing.
    fn assert_control_reaches_everything(&mut self, own_net: &str) {
        let name = docker::unique("jailoc-e2e-control");
        self.start_on_networks(
            &name,
            own_net,
            &[
                &self.probe_image.clone(),
                "probe",
                "serve",
                &AGENT_PORT.to_string(),
            ],
        );
        let ip = docker::container_ip(&name, own_net).expect("control ip");
        wait_health(&name, ip);
        self.link_public(&name);
        let gateway = GatewayListener::new(&name, own_net);
        for (what, target, _) in self
            .matrix(Egress::Open)
            .into_iter()
            .chain([gateway.check()])
        {
            let v = probe(ip, &target);
            assert!(
                v["result"] == "connected" || v["result"] == "reply",
                "control (no sandbox-init) must reach {what} ({target}): {v}"
            );
        }
        assert!(gateway.accepted(), "control reached the gateway listener");
        docker::remove_container(&name).expect("remove control");
    }

    /// Runs the whole matrix from the guarded agent at `ip` (on `own_net`, container `name`).
    fn assert_guarded(&self, name: &str, own_net: &str, ip: Ipv4Addr, egress: Egress) {
        self.link_public(name);
        // As any client does, the agent looks the db up first: through the DNS gate, which
        // asks Docker's embedded DNS (127.0.0.11) and, when the db is allowlisted by name,
        // opens its address on 5432 before the answer reaches the agent.
        let lookup = probe(
            ip,
            &format!("dns {} --server 127.0.0.11", self.db_container),
        );
        assert_eq!(
            lookup["result"],
            "reply",
            "db lookup: {lookup}\n{}",
            logs(name)
        );
        let gateway = GatewayListener::new(name, own_net);
        let logs_before = docker(["logs", &self.db_container]).unwrap_or_default();
        for (what, target, expect) in self.matrix(egress).into_iter().chain([gateway.check()]) {
            let v = probe(ip, &target);
            let result = v["result"].as_str().unwrap_or("");
            match expect {
                Expect::Reach => assert!(
                    result == "connected" || result == "reply",
                    "guarded agent must reach {what} ({target}): {v}\n{}",
                    logs(name)
                ),
                Expect::Rejected => assert!(
                    result == "refused" || result == "blocked",
                    "guarded agent must be refused (not time out, not connect) for {what} \
                     ({target}): {v}\n{}",
                    logs(name)
                ),
            }
        }
        assert!(
            !gateway.accepted(),
            "a connection from the agent arrived at the host's gateway listener"
        );
        let db_logs = docker(["logs", &self.db_container]).unwrap_or_default();
        let new = db_logs.strip_prefix(&logs_before).unwrap_or(&db_logs);
        assert!(
            !new.contains("\"local\":\"[::]:80\""),
            "the db saw a connection on its non-allowlisted port 80: {new}"
        );
        assert_agent_unprivileged(&probe(ip, "status"));
    }
}

/// A listener on the host at the gateway address of a network the test created (the host as
/// seen from the container), on a free port: the agent must not reach it.
struct GatewayListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl GatewayListener {
    fn new(container: &str, network: &str) -> GatewayListener {
        let gw = docker::container_gateway(container, network).expect("gateway");
        let listener = TcpListener::bind((gw, 0)).expect("bind on the test network's gateway");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        GatewayListener { listener, addr }
    }

    fn check(&self) -> (String, String, Expect) {
        (
            "the host via the network gateway".into(),
            format!("tcp {}", self.addr),
            Expect::Rejected,
        )
    }

    fn accepted(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

/// `GET /probe?args=ARGS` on the agent's probe server.
fn probe(ip: Ipv4Addr, args: &str) -> Value {
    let path = format!("/probe?args={}", docker::url_encode(args));
    let (code, body) = docker::http_get(SocketAddr::from((ip, AGENT_PORT)), &path, None)
        .unwrap_or_else(|e| panic!("failed to query the probe at {ip} for {args}: {e}"));
    assert_eq!(code, 200, "probe {args}: {body}");
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("probe {args}: {e}: {body}"))
}

/// Waits until the probe answers `/global/health` (the agent is up behind sandbox-init).
fn wait_health(name: &str, ip: Ipv4Addr) {
    let ok = docker::wait_for(Duration::from_secs(30), || {
        let r = docker::http_get(SocketAddr::from((ip, AGENT_PORT)), "/global/health", None);
        matches!(r, Ok((200, ref b)) if b.contains("\"healthy\":true")).then_some(())
    });
    assert!(
        ok.is_some(),
        "{name} never answered /global/health\n{}",
        logs(name)
    );
}

fn logs(name: &str) -> String {
    let out = docker::run_output(docker::engine().cli(), ["logs", "--tail", "40", name]);
    match out {
        Ok(o) => format!(
            "--- docker logs {name} ---\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => e.to_string(),
    }
}

/// uid/gid 1000 everywhere, no supplementary groups, all five capability sets empty,
/// NoNewPrivs set.
fn assert_agent_unprivileged(status: &Value) {
    for key in ["uids", "gids"] {
        let ids: Vec<u64> = status[key]
            .as_array()
            .unwrap_or_else(|| panic!("status has {key}: {status}"))
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert_eq!(ids, vec![1000; 4], "{key}: {status}");
    }
    let groups = status["groups"].as_array().cloned().unwrap_or_default();
    assert!(
        groups.iter().all(|g| g.as_u64() == Some(1000)),
        "supplementary groups cleared: {status}"
    );
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status[set], "0000000000000000", "{set} empty: {status}");
    }
    assert_eq!(status["NoNewPrivs"], "1", "NoNewPrivs: {status}");
}

/// `docker run` flags a guarded container needs (docs/e2e.md).
fn guarded_flags(policy: &Path) -> Vec<String> {
    let mut f = vec!["--cap-drop".to_string(), "ALL".to_string()];
    for c in CAPS {
        f.push("--cap-add".into());
        f.push((*c).into());
    }
    f.extend([
        "--security-opt".into(),
        "no-new-privileges".into(),
        "-v".into(),
        format!("{}:/etc/jailoc:ro", policy.display()),
    ]);
    f
}

/// (command, real uid) of each child of the container's PID 1 (sandbox-init), read from the
/// host's /proc: the same for Docker and Podman, whose `top` options differ.
fn agent_processes(container: &str) -> Vec<(String, String)> {
    let pid = docker::inspect(container, "{{.State.Pid}}").expect("pid");
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_else(|e| panic!("failed to read the children of {container}'s PID 1: {e}"));
    children
        .split_whitespace()
        .filter_map(|child| {
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).ok()?;
            let status = std::fs::read_to_string(format!("/proc/{child}/status")).ok()?;
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .to_owned();
            Some((comm.trim().to_owned(), uid))
        })
        .collect()
}

/// Stops the container with SIGTERM and a generous grace period: sandbox-init must forward the
/// signal, so the agent (the probe, default SIGTERM action) dies of it and the container exits
/// with 128+15. Without forwarding the engine would SIGKILL after the grace period: 137.
fn assert_stop_exits_143(name: &str) {
    let started = std::time::Instant::now();
    docker(["stop", "-t", "20", name]).expect("docker stop");
    // Reported, not asserted (no timed assertions): the exit code below is what proves it.
    eprintln!("docker stop {name}: {:?}", started.elapsed());
    let code = docker::inspect(name, "{{.State.ExitCode}}").expect("exit code");
    assert_eq!(code, "143", "exit code after docker stop\n{}", logs(name));
}

#[test]
fn e2e_baked_entrypoint_enforces_the_policy() {
    let Some(_engine) = docker::require_engine("e2e_baked_entrypoint_enforces_the_policy") else {
        return;
    };
    let mut lab = Lab::new(1);
    let own_net = docker::unique("jailoc-e2e-agent");
    docker::create_network(
        &mut lab.cleanup,
        &own_net,
        &format!("10.231.{}.0/24", lab.slot),
    )
    .expect("agent network");
    lab.assert_control_reaches_everything(&own_net);

    // The image another agent would ship: sandbox-init from the scratch image as ENTRYPOINT.
    let si_image = docker::build_sandbox_init_image(&mut lab.cleanup).expect("sandbox-init image");
    let baked = docker::build_baked_image(&mut lab.cleanup, &si_image, &lab.probe_image.clone())
        .expect("baked image");

    // Allowlist egress, the db allowlisted by name: only it (on 5432) and DNS get through.
    let policy = lab.policy_dir(Egress::Allowlist, true);
    let (name, ip) = lab.start_guarded("jailoc-e2e-baked-allow", &own_net, &policy, &baked);
    lab.assert_guarded(&name, &own_net, ip, Egress::Allowlist);
    // Through Docker's embedded DNS: the allowlisted name is answered with the db's address; a
    // name the allowlist does not cover (another container's, which Docker's DNS would answer)
    // gets NXDOMAIN from the gate, whatever resolver address the agent asks.
    let db = probe(ip, &format!("dns {} --server 127.0.0.11", lab.db_container));
    assert_eq!(db["rcode"], 0, "{db}");
    assert!(
        db["answers"].to_string().contains(&lab.db.to_string()),
        "{db}"
    );
    for server in ["127.0.0.11", "192.0.2.53"] {
        let other = probe(
            ip,
            &format!("dns {} --server {server}", lab.public_container),
        );
        // NXDOMAIN from the gate; or, on an engine whose internal network has no default route
        // (Podman's netavark), no route to a hard-coded address at all: nothing left either way.
        let no_route = server != "127.0.0.11" && other["error"] == "ENETUNREACH";
        assert!(
            other["rcode"] == 3 || no_route,
            "not allowlisted, asked at {server}: {other}"
        );
    }
    assert!(
        logs(&name).contains(&format!(
            "dns: refused {} (not allowlisted)",
            lab.public_container
        )),
        "{}",
        logs(&name)
    );
    // A host service is reachable only by allowlisting it, and only on its port: two listeners
    // on the host side of the agent's network (its gateway), one of them allowlisted. Bound
    // while a container is on the network: Podman removes a network's bridge, and with it the
    // gateway address, when the last container leaves (a bound socket keeps its address).
    let gw = docker::container_gateway(&name, &own_net).expect("gateway");
    let allowed = TcpListener::bind((gw, 0)).expect("bind allowed host service");
    let other = TcpListener::bind((gw, 0)).expect("bind other host service");
    let allowed_addr = allowed.local_addr().expect("addr");
    let other_addr = other.local_addr().expect("addr");
    docker::remove_container(&name).expect("remove allowlist agent");
    let policy = lab.tmp.join(docker::unique("policy-host"));
    std::fs::create_dir_all(&policy).expect("policy dir");
    // The Go jailoc's one-entry-a-line file, which sandbox-init still reads.
    std::fs::write(
        policy.join("allowed-hosts"),
        format!("# the host's service\n{allowed_addr}\n"),
    )
    .expect("allowed-hosts");
    let (name, ip) = lab.start_guarded("jailoc-e2e-baked-host", &own_net, &policy, &baked);
    let v = probe(ip, &format!("tcp {allowed_addr}"));
    assert_eq!(
        v["result"],
        "connected",
        "allowlisted host service: {v}\n{}",
        logs(&name)
    );
    let v = probe(ip, &format!("tcp {other_addr}"));
    assert!(
        v["result"] == "refused" || v["result"] == "blocked",
        "a host port that is not allowlisted must be refused: {v}"
    );
    other.set_nonblocking(true).expect("nonblocking");
    assert!(
        other.accept().is_err(),
        "the other host port saw a connection"
    );
    docker::remove_container(&name).expect("remove host-allowlist agent");

    // Open egress, the db allowlisted by address.
    let policy = lab.policy_dir(Egress::Open, false);
    let (name, ip) = lab.start_guarded("jailoc-e2e-baked", &own_net, &policy, &baked);
    lab.assert_guarded(&name, &own_net, ip, Egress::Open);

    // A restart runs sandbox-init again on a fresh network namespace: same rules.
    let started = docker::inspect(&name, "{{.State.StartedAt}}").expect("started at");
    docker(["restart", "-t", "20", &name]).expect("docker restart");
    assert_ne!(
        docker::inspect(&name, "{{.State.StartedAt}}").expect("started at"),
        started,
        "docker restart did not restart the container"
    );
    let ip = docker::container_ip(&name, &own_net).expect("agent ip after restart");
    wait_health(&name, ip);
    lab.assert_guarded(&name, &own_net, ip, Egress::Open);

    assert_stop_exits_143(&name);
}

/// Whether the vendored OpenCode tarball is there; otherwise prints why the test skips (and
/// fails under `CI=true`).
fn vendored_opencode_present() -> bool {
    let tgz = docker::vendored_opencode_tgz();
    if !tgz.is_file() {
        return jailoc_tests::skip(
            "the real-OpenCode Docker test",
            &format!("vendored OpenCode tarball missing: {}", tgz.display()),
        );
    }
    true
}

#[test]
fn e2e_real_opencode_serves_health_behind_sandbox_init() {
    let Some(_engine) =
        docker::require_engine("e2e_real_opencode_serves_health_behind_sandbox_init")
    else {
        return;
    };
    if !vendored_opencode_present() {
        return;
    }
    let mut cleanup = Cleanup::new();
    let tmp = cleanup.temp_dir("jailoc-e2e-oc");
    let opencode = docker::build_opencode_image(&mut cleanup).expect("opencode image");
    let si_image = docker::build_sandbox_init_image(&mut cleanup).expect("sandbox-init image");
    let image = docker::build_baked_image(&mut cleanup, &si_image, &opencode).expect("baked");
    let net = docker::unique("jailoc-e2e-oc");
    docker::create_network(&mut cleanup, &net, "10.231.9.0/24").expect("network");
    let policy = tmp.join("policy");
    std::fs::create_dir_all(&policy).expect("policy dir");
    let password = docker::unique("pw");
    let name = docker::unique("jailoc-e2e-opencode");
    let mut args = cleanup.container_args(&["run", "-d"], &name, &net);
    args.extend(["-e".into(), format!("OPENCODE_SERVER_PASSWORD={password}")]);
    args.extend(guarded_flags(&policy));
    args.push(image);
    docker(&args).expect("run opencode");
    let ip = docker::container_ip(&name, &net).expect("ip");
    let addr = SocketAddr::from((ip, AGENT_PORT));
    let healthy = docker::wait_for(Duration::from_secs(90), || {
        match docker::http_get(addr, "/global/health", Some(("opencode", &password))) {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    });
    let body = healthy.unwrap_or_else(|| panic!("opencode never became healthy\n{}", logs(&name)));
    let v: Value = serde_json::from_str(body.trim()).expect("health JSON");
    assert_eq!(v["healthy"], true, "{body}");
    assert_eq!(v["version"], "1.18.33", "{body}");
    let (code, _) = docker::http_get(addr, "/global/health", None).expect("unauthenticated");
    assert_eq!(code, 401, "no Basic auth must be refused");
    let (code, _) = docker::http_get(addr, "/global/health", Some(("opencode", "wrong")))
        .expect("wrong password");
    assert_eq!(code, 401, "a wrong password must be refused");
    // The server runs as the agent, not root: its process is owned by UID 1000.
    let agents = agent_processes(&name);
    assert!(
        agents
            .iter()
            .any(|(comm, uid)| comm == "opencode" && uid == "1000"),
        "opencode runs as UID 1000: {agents:?}"
    );
    // The real server gets SIGTERM through sandbox-init too (it is not PID 1, so the default
    // action applies): 143, not the engine's SIGKILL (137) after the grace period.
    assert_stop_exits_143(&name);
}

/// A throwaway user environment for the jailoc CLI: HOME, XDG dirs and a project directory.
/// The project lives in [`docker::workspace_scratch_dir`], not /tmp: jailoc mounts project paths
/// at their own absolute path and (rightly) refuses container-internal ones such as /tmp.
struct UserEnv {
    home: PathBuf,
    config: PathBuf,
    cache: PathBuf,
    project: PathBuf,
    extra_env: Vec<(String, String)>,
}

impl UserEnv {
    fn new(cleanup: &mut Cleanup) -> UserEnv {
        let root = docker::workspace_scratch_dir().join(docker::unique("jailoc-e2e-user"));
        cleanup.dir(&root);
        let env = UserEnv {
            home: root.join("home"),
            config: root.join("home/.config"),
            cache: root.join("home/.cache"),
            project: root.join("project"),
            extra_env: Vec::new(),
        };
        for d in [&env.home, &env.config, &env.cache, &env.project] {
            std::fs::create_dir_all(d).expect("user env dir");
        }
        env
    }

    /// Runs `jailoc ARGS...` in the project directory with this environment.
    fn jailoc(&self, args: &[&str]) -> std::process::Output {
        self.jailoc_with_input(args, None)
    }

    /// [`UserEnv::jailoc`] with `input` on stdin (not a terminal).
    fn jailoc_with_input(&self, args: &[&str], input: Option<&str>) -> std::process::Output {
        let bin = docker::jailoc_binary();
        assert!(
            bin.is_file(),
            "failed to find jailoc at {}: build it first (cargo build -p jailoc) or set JAILOC_BIN",
            bin.display()
        );
        std::process::Command::new(&bin)
            .args(args)
            .current_dir(&self.project)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.config)
            .env("XDG_CACHE_HOME", &self.cache)
            .env("JAILOC_SANDBOX_INIT", docker::sandbox_init_binary())
            .envs(docker::jailoc_env())
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                let mut stdin = child.stdin.take().expect("piped stdin");
                if let Some(text) = input {
                    std::io::Write::write_all(&mut stdin, text.as_bytes())?;
                }
                drop(stdin);
                child.wait_with_output()
            })
            .unwrap_or_else(|e| panic!("failed to run {}: {e}", bin.display()))
    }

    /// `jailoc ARGS...`, which must succeed; returns stdout.
    fn jailoc_ok(&self, args: &[&str]) -> String {
        let out = self.jailoc(args);
        assert!(
            out.status.success(),
            "jailoc {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `jailoc up -w WORKSPACE`, which must succeed; returns the agent's container. It must have
/// been created by the compose implementation under test (the `com.docker.compose.version`
/// label Compose writes), and Compose must not have warned about the files jailoc wrote (Compose
/// v2+ calls a `version:` key obsolete on every `up`).
fn jailoc_up(user: &UserEnv, workspace: &str, project: &str) -> String {
    let out = user.jailoc(&["up", "-w", workspace]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "jailoc up failed ({}):\n{text}",
        out.status
    );
    assert!(
        !text.contains("obsolete"),
        "Compose warned about the generated files:\n{text}"
    );
    let id = compose_container(project);
    assert_engine_runs_the_health_check_jailoc_wrote(&id, user, workspace);
    let compose = docker::compose_under_test();
    if let Some(version) = &compose.version {
        let label = docker::inspect(
            &id,
            "{{index .Config.Labels \"com.docker.compose.version\"}}",
        )
        .expect("compose version label");
        assert_eq!(
            &label, version,
            "the agent was created by Compose {label}, not by `{}` ({version})",
            compose.command
        );
    }
    id
}

/// The engine must run the health check exactly as the generated compose file gives it: Podman
/// (up to 5.x, podman#26519) splits a `CMD` check's arguments at whitespace when a container is
/// created through its Docker API, which turned the earlier `bash -c SCRIPT` check into `bash -c
/// exec`: always healthy, whatever the server did.
fn assert_engine_runs_the_health_check_jailoc_wrote(id: &str, user: &UserEnv, workspace: &str) {
    let file = user
        .cache
        .join("jailoc")
        .join(workspace)
        .join("docker-compose.yml");
    let text = std::fs::read_to_string(&file).expect("compose file");
    // A flow sequence of double-quoted scalars with JSON's escapes; Compose reads `$$` as `$`.
    let line = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("test: "))
        .unwrap_or_else(|| panic!("no healthcheck in {}", file.display()));
    let written: Vec<String> = serde_json::from_str::<Vec<String>>(line)
        .unwrap_or_else(|e| panic!("healthcheck test {line}: {e}"))
        .iter()
        .map(|a| a.replace("$$", "$"))
        .collect();
    let engine = docker::inspect(id, "{{json .Config.Healthcheck.Test}}").expect("healthcheck");
    let engine: Vec<String> = serde_json::from_str(&engine).expect("healthcheck JSON");
    assert_eq!(
        engine, written,
        "the engine runs another health check than the compose file's"
    );
}

/// The single agent container of compose project `project`.
fn compose_container(project: &str) -> String {
    let filter = format!("label=com.docker.compose.project={project}");
    let ids = docker([
        "ps",
        "-q",
        "--filter",
        &filter,
        "--filter",
        "label=com.docker.compose.service=opencode",
    ])
    .expect("docker ps");
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 1, "one opencode container in {project}: {ids:?}");
    ids[0].to_owned()
}

/// The volumes (named and anonymous) the containers of compose project `project` use.
fn compose_volumes(project: &str) -> Vec<String> {
    let filter = format!("label=com.docker.compose.project={project}");
    let ids = docker(["ps", "-aq", "--filter", &filter]).unwrap_or_default();
    ids.lines()
        .flat_map(|id| {
            docker::inspect(
                id,
                "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
            )
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
        })
        .collect()
}

/// Containers, networks and the given volumes still present after `jailoc down`.
fn compose_leftovers(project: &str, volumes: &[String]) -> String {
    let filter = format!("label=com.docker.compose.project={project}");
    let c = docker(["ps", "-aq", "--filter", &filter]).unwrap_or_default();
    let n = docker(["network", "ls", "-q", "--filter", &filter]).unwrap_or_default();
    let v: Vec<&str> = volumes
        .iter()
        .filter(|v| docker(["volume", "inspect", v.as_str()]).is_ok())
        .map(String::as_str)
        .collect();
    format!("{c}{n}{}", v.join(" "))
}

/// `jailoc down -w WORKSPACE` removes the containers and networks of `project` and keeps its
/// volumes, naming each; `jailoc down --volumes` then leaves nothing behind.
fn assert_down_leaves_nothing(user: &UserEnv, workspace: &str, project: &str) {
    let volumes = compose_volumes(project);
    let out = user.jailoc_ok(&["down", "-w", workspace]);
    assert_eq!(
        compose_leftovers(project, &[]),
        "",
        "jailoc down left containers or networks behind"
    );
    for v in &volumes {
        assert!(
            docker(["volume", "inspect", v.as_str()]).is_ok(),
            "jailoc down deleted volume {v}"
        );
        assert!(
            out.contains(v.as_str()),
            "down does not name kept volume {v}: {out}"
        );
    }
    user.jailoc_ok(&["down", "--volumes", "-w", workspace]);
    assert_eq!(
        compose_leftovers(project, &volumes),
        "",
        "jailoc down --volumes left containers, networks or volumes behind"
    );
}

/// Waits up to `limit` for container `id`'s healthcheck to report healthy; `what` names it in
/// the failure.
fn assert_turns_healthy(id: &str, limit: Duration, what: &str) {
    let health = docker::wait_for(limit, || {
        docker::run_health_check(id);
        let s = docker::inspect(id, "{{.State.Health.Status}}").ok()?;
        (s == "healthy").then_some(s)
    });
    assert!(
        health.is_some(),
        "{what} never turned healthy: {}\n{}",
        docker::inspect(id, "{{json .State.Health}}").unwrap_or_default(),
        logs(id)
    );
}

/// Writes config.toml with one workspace (the user's project, `image`, the db allowlisted by
/// its container name on 5432) and the compose override the launcher adds as an extra `-f`: the project network
/// becomes internal with its own subnet, and the agent joins the lab's networks.
/// `extra_config` is appended to the workspace table, `extra_services` to `services:`.
fn write_workspace(
    lab: &Lab,
    user: &UserEnv,
    workspace: &str,
    image: &str,
    own_subnet: &str,
    extra_config: &str,
    extra_services: &str,
) {
    let cfg_dir = user.config.join("jailoc");
    let ws_dir = cfg_dir.join("workspaces").join(workspace);
    std::fs::create_dir_all(&ws_dir).expect("config dir");
    std::fs::write(
        cfg_dir.join("config.toml"),
        format!(
            "[workspaces.{workspace}]\npaths = [\"{}\"]\nimage = \"{image}\"\nallowed_hosts = [\"{}\"]\n{extra_config}",
            user.project.display(),
            lab.db_entry(true)
        ),
    )
    .expect("config.toml");
    let [svc, meta] = lab.extra_networks();
    std::fs::write(
        ws_dir.join("compose.override.yml"),
        format!(
            "services:\n  opencode:\n    networks:\n      default: {{}}\n      svc: {{}}\n      meta: {{}}\n{extra_services}\
             networks:\n  default:\n    internal: true\n    ipam:\n      config:\n        - subnet: {own_subnet}\n\
             \x20 svc:\n    name: {svc}\n    external: true\n\
             \x20 meta:\n    name: {meta}\n    external: true\n"
        ),
    )
    .expect("compose override");
}

/// An `env` entry written with `$$`, the Go jailoc's (Compose's) escape for a literal `$`: the
/// secret's source variable and `HOME` are both set in jailoc's (and so Compose's)
/// environment, and neither jailoc's expansion nor Compose may substitute them.
const LITERAL_ENV: &str = "E2E_LITERAL=$$E2E_TOKEN_SRC and $${HOME}";
/// What the agent sees of [`LITERAL_ENV`].
const LITERAL_VALUE: &str = "$E2E_TOKEN_SRC and ${HOME}";

#[test]
fn e2e_jailoc_up_guards_the_workspace() {
    let Some(_engine) = docker::require_engine("e2e_jailoc_up_guards_the_workspace") else {
        return;
    };
    let mut lab = Lab::new(2);
    let mut user = UserEnv::new(&mut lab.cleanup);
    // An environment secret: read from the host's environment at `up`, handed to the agent by
    // sandbox-init, visible nowhere else.
    let secret = docker::unique("s3cret-value");
    user.extra_env
        .push(("E2E_TOKEN_SRC".into(), secret.clone()));
    let workspace = docker::unique("e2e");
    let project = format!("jailoc-{workspace}");
    lab.cleanup.compose_project(&project);
    let own_subnet = format!("10.231.{}.0/24", lab.slot);

    // Control first, on a network shaped like the project's (internal, private subnet).
    let control_net = docker::unique("jailoc-e2e-ctl");
    docker::create_network(&mut lab.cleanup, &control_net, "10.231.12.0/24").expect("control net");
    lab.assert_control_reaches_everything(&control_net);

    write_workspace(
        &lab,
        &user,
        &workspace,
        &lab.probe_image,
        &own_subnet,
        // A value with `$`: Compose interpolates the files it reads from its own environment
        // (which holds the secret's source here); jailoc must hand the value over literally.
        &format!(
            "env = [\"{LITERAL_ENV}\"]\n\
             [workspaces.{workspace}.secrets.env.E2E_TOKEN]\nfrom_env = \"E2E_TOKEN_SRC\"\n"
        ),
        "",
    );
    let first = jailoc_up(&user, &workspace, &project);
    let own_net = format!("{project}_default");
    let check = |lab: &Lab| {
        let id = compose_container(&project);
        let ip = docker::container_ip(&id, &own_net).expect("agent ip");
        wait_health(&id, ip);
        lab.assert_guarded(&id, &own_net, ip, Egress::Open);
        id
    };
    let id = check(&lab);
    assert_eq!(id, first);

    // The secret reached the agent's environment, and only that: not the engine's view of the
    // container, not the compose file, not a file the agent can read.
    let status = probe(docker::container_ip(&id, &own_net).expect("ip"), "status");
    assert!(
        status["env"]
            .as_array()
            .is_some_and(|e| e.iter().any(|n| n == "E2E_TOKEN")),
        "the agent has $E2E_TOKEN: {status}"
    );
    let inspect = docker(["inspect", &id]).expect("inspect");
    assert!(
        !inspect.contains(&secret),
        "the secret value shows in docker inspect"
    );
    let compose_file = user
        .cache
        .join("jailoc")
        .join(&workspace)
        .join("docker-compose.yml");
    let compose = std::fs::read_to_string(&compose_file).expect("compose file");
    assert!(
        !compose.contains(&secret),
        "the secret value is in the compose file"
    );
    let out = user.jailoc_with_input(
        &["shell", "-w", &workspace],
        Some(
            "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null; done | grep '^E2E_TOKEN='\n\
             cat /run/secrets/E2E_TOKEN 2>&1 || echo unreadable\n\
             printf 'literal=%s\\n' \"$E2E_LITERAL\"\nexit\n",
        ),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("\nliteral={LITERAL_VALUE}\n")),
        "an env value with `$` reaches the agent as written, not interpolated by Compose: {text}"
    );
    assert!(
        text.contains(&format!("E2E_TOKEN={secret}")),
        "the agent's process has the secret's value: {text}"
    );
    assert!(
        text.contains("unreadable") && !text.contains(&format!("\n{secret}")),
        "the agent must not read /run/secrets/E2E_TOKEN itself: {text}"
    );

    // `jailoc shell` enters as the agent, never root: no capabilities, and the rules stay.
    let out = user.jailoc_with_input(
        &["shell", "-w", &workspace],
        Some(
            "id -u\ngrep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status\n\
             iptables-nft -F 2>&1; iptables-legacy -F 2>&1; echo flushed\nexit\n",
        ),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("1000\n"),
        "jailoc shell runs as UID 1000: {text}"
    );
    for line in [
        "CapEff:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "NoNewPrivs:\t1",
    ] {
        assert!(
            text.contains(line),
            "jailoc shell: {line} expected in {text}"
        );
    }
    assert!(
        text.contains("flushed"),
        "the shell ran the flush attempt: {text}"
    );
    let ip = docker::container_ip(&id, &own_net).expect("agent ip");
    let v = probe(ip, &format!("tcp {}:80", lab.intra));
    assert!(
        v["result"] == "refused" || v["result"] == "blocked",
        "an iptables flush from `jailoc shell` undid the rules: {v}\n{text}"
    );

    // A second `up` leaves the running container alone; `jailoc logs` shows sandbox-init's
    // own account of the boot.
    let again = user.jailoc(&["up", "-w", &workspace]);
    assert!(again.status.success(), "second jailoc up failed: {again:?}");
    assert_eq!(
        compose_container(&project),
        id,
        "a second jailoc up replaced the running container"
    );
    let logs_out = user.jailoc_ok(&["logs", "-w", &workspace]);
    let logs_err =
        String::from_utf8_lossy(&user.jailoc(&["logs", "-w", &workspace]).stderr).into_owned();
    assert!(
        (logs_out.clone() + &logs_err).contains("sandbox-init: "),
        "jailoc logs shows sandbox-init's lines: {logs_out}{logs_err}"
    );

    // The compose healthcheck turns healthy.
    assert_turns_healthy(&id, Duration::from_secs(90), "healthcheck");

    // `jailoc status` reports it running, with the port the engine actually publishes.
    let published = docker::inspect(
        &id,
        "{{range $p, $b := .HostConfig.PortBindings}}{{range $b}}{{.HostPort}}{{end}}{{end}}",
    )
    .expect("port bindings");
    let status = user.jailoc_ok(&["status", "--json"]);
    let status: Value = serde_json::from_str(&status).expect("status --json");
    let entries: Vec<Value> = match &status {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o
            .get("workspaces")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let ours = entries
        .iter()
        .find(|w| w["name"] == workspace.as_str() || w["workspace"] == workspace.as_str())
        .unwrap_or_else(|| panic!("status lists {workspace}: {status}"));
    assert!(
        ours["state"]
            .as_str()
            .is_some_and(|s| s.contains("running")),
        "state running: {ours}"
    );
    assert_eq!(
        ours["port"].as_u64().map(|p| p.to_string()),
        Some(published),
        "status port = published port: {ours}"
    );

    // `jailoc restart` comes back with the same rules.
    let before = docker::inspect(&id, "{{.Id}} {{.State.StartedAt}}").expect("started at");
    user.jailoc_ok(&["restart", "-w", &workspace]);
    let id = check(&lab);
    assert_ne!(
        docker::inspect(&id, "{{.Id}} {{.State.StartedAt}}").expect("started at"),
        before,
        "jailoc restart did not restart the agent"
    );

    // `docker stop`: SIGTERM reaches the agent through sandbox-init.
    assert_stop_exits_143(&id);

    // `jailoc down` leaves nothing behind.
    assert_down_leaves_nothing(&user, &workspace, &project);
}

/// Why the Docker-in-Docker tests are not part of the Podman subset.
const DIND_DOCKER_ONLY: &str = "the sidecar is a privileged Docker daemon; the Podman subset is \
     up, the firewall matrix, stop and down (docs/e2e.md)";

/// Whether `--privileged` containers start on this engine. Some hosts (e.g. micro-VMs whose
/// root lacks CAP_SYS_RESOURCE in its bounding set) refuse them with "unable to apply caps".
fn privileged_works(image: &str) -> bool {
    docker::run_output(
        docker::engine().cli(),
        ["run", "--rm", "--privileged", image, "true"],
    )
    .is_ok_and(|o| o.status.success())
}

/// `docker exec --user 1000 CONTAINER ARGS...` (never root: root in the agent's container has
/// NET_ADMIN and could undo the rules); returns (success, stdout+stderr).
fn exec_as_agent(container: &str, args: &[&str]) -> (bool, String) {
    let mut a = vec!["exec", "--user", "1000", container];
    a.extend_from_slice(args);
    let o = docker::run_output(docker::engine().cli(), &a).expect("docker exec");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// A running `enable_docker` workspace whose private daemon holds the probe image.
struct DindWorkspace {
    lab: Lab,
    user: UserEnv,
    workspace: String,
    project: String,
    agent: String,
    ip: Ipv4Addr,
}

impl DindWorkspace {
    fn up(slot: u8) -> DindWorkspace {
        let mut lab = Lab::new(slot);
        // The agent image has the docker CLI (the DinD base) besides the probe.
        let agent_image =
            docker::build_probe_image_on(&mut lab.cleanup, true).expect("dind agent image");
        let dind_image = docker::ensure_base_image(true).expect("dind base");
        let mut user = UserEnv::new(&mut lab.cleanup);
        user.extra_env
            .push(("JAILOC_DIND_IMAGE".into(), dind_image.to_string()));
        let workspace = docker::unique("e2e-dind");
        let project = format!("jailoc-{workspace}");
        lab.cleanup.compose_project(&project);
        // `privileged: true` is what the launcher asks for; where the engine cannot grant it,
        // give the sidecar everything it can grant instead (dockerd still runs as root).
        let sidecar_override = if privileged_works(dind_image) {
            String::new()
        } else {
            eprintln!(
                "note: --privileged containers fail on this engine; the sidecar gets cap_add ALL \
                 minus SYS_RESOURCE and unconfined seccomp/apparmor instead"
            );
            // Without --privileged the cgroup mounts stay read-only; an empty cgroup2 mount of
            // its own lets the nested dockerd create cgroups (what `privileged` makes writable).
            "  docker:\n    privileged: false\n    cap_add: [\"ALL\"]\n    cap_drop: [\"SYS_RESOURCE\"]\n    \
             security_opt: [\"seccomp=unconfined\", \"apparmor=unconfined\"]\n    \
             entrypoint: [\"sh\", \"-c\", \"mount -t cgroup2 none /sys/fs/cgroup && exec \\\"$$@\\\"\", \"dind\"]\n"
                .to_string()
        };
        write_workspace(
            &lab,
            &user,
            &workspace,
            &agent_image,
            &format!("10.231.{}.0/24", lab.slot),
            "enable_docker = true\n",
            &sidecar_override,
        );
        let agent = jailoc_up(&user, &workspace, &project);
        let own_net = format!("{project}_default");
        let ip = docker::container_ip(&agent, &own_net).expect("agent ip");
        wait_health(&agent, ip);
        let dw = DindWorkspace {
            lab,
            user,
            workspace,
            project,
            agent,
            ip,
        };
        // Wait for the sidecar (it starts once the agent is healthy).
        docker::wait_for(Duration::from_secs(90), || {
            dw.agent_docker(&["info", "--format", "{{.ID}}"])
                .0
                .then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "the agent never reached its Docker daemon: {}",
                dw.agent_docker(&["info"]).1
            )
        });
        // Give the private daemon an image (no registry): the agent loads it through its own
        // DOCKER_HOST, as it could import any tarball it builds.
        let load = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker save {} | docker exec -i --user 1000 {} docker load 2>&1",
                dw.lab.probe_image, dw.agent
            ))
            .output()
            .expect("load image into the sidecar");
        assert!(
            load.status.success(),
            "failed to load the probe image into the sidecar: {}",
            String::from_utf8_lossy(&load.stdout)
        );
        dw
    }

    /// `docker ARGS...` run by the agent (UID 1000) against its own daemon.
    fn agent_docker(&self, args: &[&str]) -> (bool, String) {
        let mut a = vec!["docker"];
        a.extend_from_slice(args);
        exec_as_agent(&self.agent, &a)
    }

    /// `jailoc down`, which must leave nothing behind.
    fn down(self) {
        assert_down_leaves_nothing(&self.user, &self.workspace, &self.project);
    }
}

#[test]
fn e2e_docker_in_docker_sidecar_is_the_agents_own_and_walled_off() {
    let Some(_engine) = docker::require_docker(
        "e2e_docker_in_docker_sidecar_is_the_agents_own_and_walled_off",
        DIND_DOCKER_ONLY,
    ) else {
        return;
    };
    let dw = DindWorkspace::up(3);

    // The agent reaches its own daemon (DOCKER_HOST from the compose file), not the host's.
    let (_, own_id) = dw.agent_docker(&["info", "--format", "{{.ID}}"]);
    let host_id = docker(["info", "--format", "{{.ID}}"]).expect("host docker info");
    assert_ne!(
        own_id.trim(),
        host_id,
        "the agent talks to the host's daemon"
    );
    // ... and the host's socket is mounted nowhere in the project.
    let mounts =
        docker::inspect(&dw.agent, "{{range .Mounts}}{{.Source}} {{end}}").expect("mounts");
    assert!(
        !mounts.contains("docker.sock"),
        "the host's Docker socket is mounted into the agent: {mounts}"
    );

    // The sidecar has no network at all, so it shares nothing with the agent's walled-off
    // namespace that a nested container could reconfigure.
    let filter = format!("label=com.docker.compose.project={}", dw.project);
    let sidecar = docker([
        "ps",
        "-q",
        "--filter",
        &filter,
        "--filter",
        "label=com.docker.compose.service=docker",
    ])
    .expect("docker ps");
    assert_eq!(
        docker::inspect(sidecar.trim(), "{{.HostConfig.NetworkMode}}")
            .expect("sidecar network mode")
            .trim(),
        "none",
        "the DinD sidecar has a network"
    );
    // A nested container's `--network host` is the sidecar's empty namespace (loopback only),
    // and its `-v /:/host` is the sidecar's root, which holds nothing of the user's project.
    let (ok, out) = dw.agent_docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-v",
        "/:/host",
        dw.lab.probe_image.as_str(),
        "sh",
        "-c",
        &format!(
            "ls /sys/class/net; test -e /host{} && echo PROJECT-VISIBLE; true",
            dw.user.project.display()
        ),
    ]);
    assert!(ok, "nested container failed: {out}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "a nested container sees more than loopback, or the user's project"
    );

    // Whatever else it may reach, a nested container never reaches what the agent may not.
    for (what, target, expect) in dw.lab.matrix(Egress::Open) {
        if expect != Expect::Rejected {
            continue;
        }
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "host",
            dw.lab.probe_image.as_str(),
            "probe",
        ];
        args.extend(target.split_whitespace());
        let (_, out) = dw.agent_docker(&args);
        let line = out
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("nested probe printed no JSON: {out}"));
        let v: Value = serde_json::from_str(line).expect("nested probe JSON");
        let r = v["result"].as_str().unwrap_or("");
        assert!(
            r != "connected" && r != "reply",
            "nested container reached {what} ({target}): {v}"
        );
    }
    dw.down();
}

#[test]
fn e2e_docker_in_docker_cannot_remove_the_agents_firewall() {
    let Some(_engine) = docker::require_docker(
        "e2e_docker_in_docker_cannot_remove_the_agents_firewall",
        DIND_DOCKER_ONLY,
    ) else {
        return;
    };
    let dw = DindWorkspace::up(4);
    let before = probe(dw.ip, &format!("tcp {}:80", dw.lab.intra));
    assert!(
        before["result"] == "refused" || before["result"] == "blocked",
        "the agent reaches the internal service before any attempt: {before}"
    );
    // The agent controls a root daemon: a nested container it starts with NET_ADMIN (in the
    // daemon's network namespace) must still not be able to remove the agent's rules, or
    // enable_docker is a firewall bypass.
    let (_, flush) = dw.agent_docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--cap-add",
        "NET_ADMIN",
        &dw.lab.probe_image,
        "sh",
        "-c",
        "iptables-nft -F; iptables-legacy -F; ip6tables-nft -F; ip6tables-legacy -F; true",
    ]);
    let after = probe(dw.ip, &format!("tcp {}:80", dw.lab.intra));
    assert!(
        after["result"] == "refused" || after["result"] == "blocked",
        "a nested NET_ADMIN container removed the agent's firewall (enable_docker bypass): \
         {after}\n{flush}"
    );
    dw.down();
}

#[test]
fn e2e_jailoc_up_runs_the_real_opencode_healthy_with_its_password() {
    let Some(_engine) =
        docker::require_engine("e2e_jailoc_up_runs_the_real_opencode_healthy_with_its_password")
    else {
        return;
    };
    if !vendored_opencode_present() {
        return;
    }
    let mut cleanup = Cleanup::new();
    let image = docker::build_opencode_image(&mut cleanup).expect("opencode image");
    let user = UserEnv::new(&mut cleanup);
    let workspace = docker::unique("e2e-oc");
    let project = format!("jailoc-{workspace}");
    cleanup.compose_project(&project);
    let cfg_dir = user.config.join("jailoc");
    let ws_dir = cfg_dir.join("workspaces").join(&workspace);
    std::fs::create_dir_all(&ws_dir).expect("config dir");
    std::fs::write(
        cfg_dir.join("config.toml"),
        format!(
            "[workspaces.{workspace}]\npaths = [\"{}\"]\nimage = \"{image}\"\n",
            user.project.display()
        ),
    )
    .expect("config.toml");
    std::fs::write(
        ws_dir.join("compose.override.yml"),
        "networks:\n  default:\n    internal: true\n    ipam:\n      config:\n        - subnet: 10.231.14.0/24\n",
    )
    .expect("compose override");

    let id = jailoc_up(&user, &workspace, &project);
    // The launcher's own healthcheck (Basic auth with the generated password) turns healthy.
    assert_turns_healthy(&id, Duration::from_secs(120), "the real OpenCode");
    // The password reaches the server through the environment, never a command line.
    let env = docker::inspect(&id, "{{range .Config.Env}}{{println .}}{{end}}").expect("env");
    let password = env
        .lines()
        .find_map(|l| l.strip_prefix("OPENCODE_SERVER_PASSWORD="))
        .expect("OPENCODE_SERVER_PASSWORD in the container's environment")
        .to_owned();
    assert!(
        password.len() >= 16,
        "a generated password, not a placeholder"
    );
    let cmdline = docker::inspect(&id, "{{json .Path}} {{json .Args}}").expect("cmdline");
    assert!(
        !cmdline.contains(&password),
        "the password is on the command line: {cmdline}"
    );
    let ip = docker::container_ip(&id, &format!("{project}_default")).expect("ip");
    let addr = SocketAddr::from((ip, AGENT_PORT));
    let (code, body) =
        docker::http_get(addr, "/global/health", Some(("opencode", &password))).expect("health");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"healthy\":true"), "{body}");
    let (code, _) = docker::http_get(addr, "/global/health", None).expect("no auth");
    assert_eq!(code, 401, "no Basic auth must be refused");

    assert_down_leaves_nothing(&user, &workspace, &project);
}

#[test]
fn e2e_baked_exit_codes_reach_docker() {
    let Some(_engine) = docker::require_engine("e2e_baked_exit_codes_reach_docker") else {
        return;
    };
    let mut cleanup = Cleanup::new();
    let tmp = cleanup.temp_dir("jailoc-e2e-exit");
    let probe_image = docker::build_probe_image(&mut cleanup).expect("probe image");
    let si_image = docker::build_sandbox_init_image(&mut cleanup).expect("sandbox-init image");
    let baked = docker::build_baked_image(&mut cleanup, &si_image, &probe_image).expect("baked");
    let net = docker::unique("jailoc-e2e-exit");
    docker::create_network(&mut cleanup, &net, "10.231.15.0/24").expect("network");
    let good = tmp.join("good");
    std::fs::create_dir_all(&good).expect("policy dir");
    let bad = tmp.join("bad");
    std::fs::create_dir_all(&bad).expect("policy dir");
    std::fs::write(
        bad.join("policy.toml"),
        "egress = \"open\"\nallowed_hosts = [\"a.*.example.com\"]\n",
    )
    .expect("bad policy");

    // (policy dir, command, expected exit code, text the logs must contain)
    let cases: Vec<(&Path, Vec<&str>, &str, &str)> = vec![
        // The agent's own line shows it ran (the invalid-policy case checks it did not).
        (&good, vec!["probe", "exit", "0"], "0", "\"cmd\":\"exit\""),
        (&good, vec!["probe", "exit", "42"], "42", "\"cmd\":\"exit\""),
        (&good, vec!["probe", "kill-self", "KILL"], "137", ""),
        (&good, vec!["/no/such/agent"], "127", "/no/such/agent"),
        (&good, vec!["/etc/hostname"], "126", "/etc/hostname"),
        (&bad, vec!["probe", "exit", "0"], "78", "policy.toml"),
    ];
    for (policy, cmd, code, text) in cases {
        let name = docker::unique("jailoc-e2e-exit");
        let mut args = cleanup.container_args(&["run"], &name, &net);
        args.extend(guarded_flags(policy));
        args.push(baked.clone());
        args.extend(cmd.iter().map(|s| s.to_string()));
        let _ = docker::run_output(docker::engine().cli(), &args).expect("docker run");
        let got = docker::inspect(&name, "{{.State.ExitCode}}").expect("exit code");
        let log = logs(&name);
        assert_eq!(got, code, "{cmd:?} under {}:\n{log}", policy.display());
        assert!(
            log.contains(text),
            "{cmd:?}: logs must mention {text:?}:\n{log}"
        );
        if code == "78" {
            assert!(
                !log.contains("\"cmd\":\"exit\""),
                "the agent ran despite an invalid policy:\n{log}"
            );
        }
        docker::remove_container(&name).expect("remove");
    }
}
