//! `lab`: the namespace lab for humans and benchmark scripts (`scripts/lab/up`, `down`).
//!
//! `lab up [--id ID] [--names N] [--no-listeners]` builds the same lab the tier-3 tests use and
//! leaves it running; it prints shell assignments (`LAB_AGENT=...`) to `eval`. `N` extra names
//! `nI.bench.lab` (each with an A and an AAAA record) are served by the lab's dnsmasq.
//! `lab down [--id ID]` removes it. The default id is `jlab`. `lab gc` removes labs whose test
//! process was killed before it could clean up.

use jailoc_tests::lab::{self, addr, Lab, LabOptions};

fn usage() -> ! {
    eprintln!(
        "usage: lab up [--id ID] [--names N] [--no-listeners] [--quiet-dns] [--loopback-dns] | lab down [--id ID] | lab gc"
    );
    std::process::exit(2)
}

/// The extra records for `--names N`: spread over two documentation /24s and 2001:db8:b::/64.
pub fn bench_names(n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(2 * n);
    for i in 0..n {
        let name = format!("n{i}.bench.lab");
        let net = if i % 2 == 0 {
            "198.51.100"
        } else {
            "203.0.113"
        };
        out.push((name.clone(), format!("{net}.{}", 1 + (i / 2) % 250)));
        out.push((name, format!("2001:db8:b::{:x}", i + 1)));
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { usage() };
    let mut id = "jlab".to_string();
    let mut names = 0usize;
    let mut no_listeners = false;
    let mut quiet_dns = false;
    let mut loopback_dns = false;
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--id" => id = it.next().cloned().unwrap_or_else(|| usage()),
            "--names" => {
                names = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--no-listeners" => no_listeners = true,
            "--quiet-dns" => quiet_dns = true,
            "--loopback-dns" => loopback_dns = true,
            _ => usage(),
        }
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric()) || id.is_empty() || id.len() > 20 {
        eprintln!("lab: the id must be 1-20 letters or digits");
        std::process::exit(2);
    }
    match cmd.as_str() {
        "up" => {
            lab::teardown(&id);
            let lab = Lab::with(LabOptions {
                extra_names: bench_names(names),
                no_listeners,
                quiet_dns,
                loopback_dns,
                id: Some(id.clone()),
                ..LabOptions::default()
            });
            println!("LAB_ID={id}");
            println!("LAB_AGENT={}", lab.agent);
            println!("LAB_GW={}", lab.gw);
            println!("LAB_WORLD={}", lab.world);
            println!("LAB_DIR={}", lab.dir.path().display());
            println!("LAB_PROBE={}", lab.probe.display());
            println!("LAB_MARKERS={}", lab.markers.display());
            println!("LAB_DNS={}", addr::DNS_V4);
            println!("LAB_DEAD_DNS={}", addr::DEAD_V4);
            if loopback_dns {
                println!("LAB_LOOPBACK_DNS={}", addr::DNS_LOOPBACK);
            }
            lab.persist();
        }
        "down" => lab::teardown(&id),
        "gc" => {
            for id in lab::gc_stale() {
                eprintln!("lab: removed stale lab {id}");
            }
        }
        _ => usage(),
    }
}
