//! Step 3: allowlisted names → addresses, from the hosts file first and then DNS, A and AAAA,
//! all names in parallel, with one bound on the total time.
//!
//! DNS takes two passes, both hickory's:
//!
//! 1. [`batch`]: every name asked as-is (the search list does not apply to it) goes out at once
//!    over one socket per nameserver, in a plain `poll` loop; the plain answers (addresses, no
//!    such name) settle most names within the first half of the bound.
//! 2. hickory-resolver, for whatever the batch left: names the search list applies to,
//!    truncated or failed answers, late replies. Its tokio runtime is current-thread and lives
//!    only inside [`lookup_all`]: capabilities and prctl state are per thread, so the process
//!    must be single-threaded again before the privilege drop (the boot checks that after
//!    this step).

pub(crate) mod batch;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use hickory_resolver::config::{ResolverConfig, ResolverOpts};
use hickory_resolver::Name;

/// The outcome for one name: its addresses, or why there are none.
pub type Answer = Result<Vec<IpAddr>, String>;

/// The seam to DNS. Production uses [`HickoryLookup`]; tests pass a fake.
pub trait Lookup {
    /// Resolves every name (A and AAAA) with the servers of `conf`, returning within about
    /// `bound`, one answer per name in the order given.
    fn lookup(&self, conf: &ResolvConf, names: &[String], bound: Duration) -> Vec<Answer>;
}

/// `/etc/resolv.conf`, read and parsed once at boot: its nameservers feed the firewall's DNS
/// rules, the whole of it (search list, `ndots`, options) the resolver.
#[derive(Debug, Clone)]
pub struct ResolvConf {
    /// The `nameserver` addresses, in order, each once, scope stripped: DNS (53/udp+tcp) may
    /// reach exactly these. Read leniently, line by line, as the C library does: a line it
    /// cannot use is skipped, never the whole file.
    pub nameservers: Vec<IpAddr>,
    /// hickory's reading of the same text, or why it has none (hickory refuses a file with
    /// one line it does not know, or without nameservers: then names fail with that reason).
    resolver: Result<(ResolverConfig, ResolverOpts), String>,
}

impl ResolvConf {
    /// Parses the text of a resolv.conf.
    pub fn parse(text: &str) -> Self {
        ResolvConf {
            nameservers: parse_nameservers(text),
            resolver: hickory_resolver::system_conf::parse_resolv_conf(text)
                .map_err(|e| format!("failed to read resolv.conf: {e}")),
        }
    }
}

/// The addresses found for the allowlisted names, in policy order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Every name that resolved, with its addresses (deduplicated, in answer order).
    pub addrs: Vec<(String, Vec<IpAddr>)>,
    /// One line per name that did not resolve (it stays blocked).
    pub warnings: Vec<String>,
}

impl Resolution {
    /// The addresses of `name` (empty if it did not resolve).
    #[cfg(test)]
    pub fn get(&self, name: &str) -> &[IpAddr] {
        self.addrs
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[], |(_, a)| a.as_slice())
    }
}

/// Resolves `names`: those in the hosts file (`hosts_text`) are answered from it, like glibc's
/// "files dns" order; the rest go to `lookup` in one parallel batch bounded by `bound`.
pub fn resolve(
    names: &[String],
    hosts_text: &str,
    conf: &ResolvConf,
    lookup: &dyn Lookup,
    bound: Duration,
) -> Resolution {
    let hosts = parse_hosts(hosts_text);
    let to_query: Vec<String> = names
        .iter()
        .filter(|n| !hosts.contains_key(n.as_str()))
        .cloned()
        .collect();
    let answers = if to_query.is_empty() {
        Vec::new()
    } else {
        lookup.lookup(conf, &to_query, bound)
    };
    let mut from_dns: HashMap<&str, Answer> = HashMap::new();
    for (name, answer) in to_query.iter().zip(answers) {
        from_dns.insert(name, answer);
    }
    let mut out = Resolution::default();
    for name in names {
        let answer = match hosts.get(name.as_str()) {
            Some(addrs) => Ok(addrs.clone()),
            None => from_dns
                .remove(name.as_str())
                .unwrap_or_else(|| Err("no answer".to_owned())),
        };
        match answer {
            Ok(addrs) if !addrs.is_empty() => {
                out.addrs.push((name.clone(), crate::policy::dedup(addrs)))
            }
            Ok(_) => out.warnings.push(format!(
                "failed to resolve {name}: no addresses; it stays blocked"
            )),
            Err(cause) => out.warnings.push(format!(
                "failed to resolve {name}: {cause}; it stays blocked"
            )),
        }
    }
    out
}

/// Parses a hosts file into lowercase name → addresses (in file order).
pub(crate) fn parse_hosts(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split_once('#').map_or(line, |(before, _)| before);
        let mut fields = line.split_whitespace();
        let Some(addr) = fields
            .next()
            .and_then(|a| strip_scope(a).parse::<IpAddr>().ok())
        else {
            continue;
        };
        for name in fields {
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            let addrs = map.entry(name).or_default();
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
    }
    map
}

/// The `nameserver` addresses of a resolv.conf, in order, each once.
fn parse_nameservers(text: &str) -> Vec<IpAddr> {
    let servers = text.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next()) {
            (Some("nameserver"), Some(addr)) => strip_scope(addr).parse::<IpAddr>().ok(),
            _ => None,
        }
    });
    crate::policy::dedup(servers.collect())
}

/// `fe80::1%eth0` → `fe80::1`.
fn strip_scope(addr: &str) -> &str {
    addr.split_once('%').map_or(addr, |(a, _)| a)
}

/// DNS through hickory (the batch, then hickory-resolver), configured from a resolv.conf's text.
#[derive(Debug, Clone, Copy, Default)]
pub struct HickoryLookup<'a> {
    /// Resolution ends early (unfinished names answer "interrupted") as soon as this fd is
    /// readable: the boot passes its stop-signal fd, so `docker stop` during a slow
    /// resolution is obeyed at once instead of after the whole bound.
    pub interrupt: Option<BorrowedFd<'a>>,
}

impl Lookup for HickoryLookup<'_> {
    fn lookup(&self, conf: &ResolvConf, names: &[String], bound: Duration) -> Vec<Answer> {
        let deadline = Instant::now() + bound;
        let (config, opts) = match &conf.resolver {
            Ok(parsed) => parsed.clone(),
            Err(cause) => return names.iter().map(|_| Err(cause.clone())).collect(),
        };
        let mut answers: Vec<Option<Answer>> = vec![None; names.len()];

        // Pass 1: the batch, for the names asked as they are: until half the bound once a
        // server has replied (the other half is pass 2's), to the end of it if none has.
        let (indices, qnames): (Vec<usize>, Vec<Name>) = names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| asked_as_is(name, opts.ndots).map(|q| (i, q)))
            .unzip();
        let batch = batch::run(
            &servers_of(&config),
            &qnames,
            deadline - bound / 2,
            deadline,
            self.interrupt,
        );
        // Without a search list a negative answer for the name as-is is final.
        let negatives_final = config.search().is_empty() && config.domain().is_none();
        for (index, [v4, v6]) in indices.into_iter().zip(batch.answers) {
            answers[index] = settle(v4, v6, negatives_final);
        }
        if batch.interrupted {
            return fill(answers, "interrupted by a signal");
        }
        if batch.asked && !batch.heard_from_a_server {
            // No server replied to anything: asking them again cannot help.
            return fill(
                answers,
                &format!("timed out after {} ms", bound.as_millis()),
            );
        }

        // Pass 2: hickory-resolver for the rest, within what is left of the bound.
        let rest: Vec<usize> = (0..names.len()).filter(|&i| answers[i].is_none()).collect();
        if rest.is_empty() {
            return answers.into_iter().flatten().collect();
        }
        let rest_names: Vec<String> = rest.iter().map(|&i| names[i].clone()).collect();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let slow = match lookup_all(config, opts, &rest_names, remaining, bound, self.interrupt) {
            Ok(slow) => slow,
            Err(cause) => rest.iter().map(|_| Err(cause.clone())).collect(),
        };
        for (index, answer) in rest.into_iter().zip(slow) {
            answers[index] = Some(answer);
        }
        fill(answers, "no answer")
    }
}

/// The name to ask as-is, absolute, when the resolver would ask it as-is first (as hickory and
/// glibc do: more labels than `ndots`, or written absolute with a final dot); `None` when the
/// search list comes first.
fn asked_as_is(name: &str, ndots: usize) -> Option<Name> {
    // Policy names are nearly always ASCII: then skip the IDNA mapping (a few thousand
    // instructions a name). DNS compares names without regard to case.
    let mut name = if name.is_ascii() {
        Name::from_ascii(name)
    } else {
        Name::from_utf8(name)
    }
    .ok()?;
    if !name.is_fqdn() && usize::from(name.num_labels()) <= ndots {
        return None;
    }
    name.set_fqdn(true);
    Some(name)
}

/// One name's answer from its A and AAAA outcomes, like hickory's dual-stack lookup: the
/// addresses of either family (A first); a failure only when both are negative and that is
/// final; otherwise `None` (left to hickory-resolver).
fn settle(
    v4: Option<batch::Settled>,
    v6: Option<batch::Settled>,
    negatives_final: bool,
) -> Option<Answer> {
    use batch::Settled::{Addresses, NoData, NoSuchName};
    match (v4, v6) {
        (Some(Addresses(mut a)), Some(Addresses(b))) => {
            a.extend(b);
            Some(Ok(a))
        }
        (Some(Addresses(a)), _) | (_, Some(Addresses(a))) => Some(Ok(a)),
        (Some(NoSuchName), Some(NoSuchName)) if negatives_final => {
            Some(Err("no such name (NXDOMAIN)".to_owned()))
        }
        (Some(NoSuchName | NoData), Some(NoSuchName | NoData)) if negatives_final => {
            Some(Err("no A or AAAA record".to_owned()))
        }
        _ => None,
    }
}

/// Every unanswered name gets `cause`.
fn fill(answers: Vec<Option<Answer>>, cause: &str) -> Vec<Answer> {
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(cause.to_owned())))
        .collect()
}

/// How many names are resolved at the same time (each is an A and an AAAA query).
const MAX_IN_FLIGHT: usize = 32;

/// Locks a mutex that no panicking holder can have poisoned in a way that matters here.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Pass 2: hickory-resolver for `names`, all in parallel (up to [`MAX_IN_FLIGHT`]), within
/// `bound` (what is left of `total`, the configured bound its timeouts are reported as).
fn lookup_all(
    config: ResolverConfig,
    mut opts: ResolverOpts,
    names: &[String],
    bound: Duration,
    total: Duration,
    interrupt: Option<BorrowedFd<'_>>,
) -> Result<Vec<Answer>, String> {
    use hickory_resolver::config::{LookupIpStrategy, ResolveHosts};
    use hickory_resolver::name_server::TokioConnectionProvider;
    use hickory_resolver::Resolver;

    // One query may retry once inside the bound; the bound itself is enforced below.
    opts.timeout = (bound / 2).max(Duration::from_millis(50));
    opts.attempts = 1;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.use_hosts_file = ResolveHosts::Never; // the hosts file was consulted already
    opts.cache_size = 0;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("failed to start the DNS runtime: {e}"))?;
    let answers = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + bound;
        // A fixed pool of workers pulls names from a shared queue: all names are in flight
        // together up to MAX_IN_FLIGHT, without a burst of thousands of queries that would
        // overflow the resolver's socket buffer (dropped queries only come back as timeouts).
        let queue: Arc<Mutex<Vec<(usize, String)>>> = Arc::new(Mutex::new(
            names.iter().cloned().enumerate().rev().collect(),
        ));
        let results: Arc<Mutex<Vec<Option<Answer>>>> =
            Arc::new(Mutex::new(vec![None; names.len()]));
        let work = async {
            let (config, opts) = match names.first() {
                Some(first) if servers_of(&config).len() > 1 => {
                    let (config, opts, answer) =
                        first_server_that_answers(config, opts, first).await;
                    if let Some(answer) = answer {
                        lock(&results)[0] = Some(answer);
                        lock(&queue).pop(); // index 0 is last in the queue
                    }
                    (config, opts)
                }
                _ => (config, opts),
            };
            let resolver = Arc::new(
                Resolver::builder_with_config(config, TokioConnectionProvider::default())
                    .with_options(opts)
                    .build(),
            );
            let workers: Vec<_> = (0..names.len().min(MAX_IN_FLIGHT))
                .map(|_| {
                    let (resolver, queue, results) = (
                        Arc::clone(&resolver),
                        Arc::clone(&queue),
                        Arc::clone(&results),
                    );
                    tokio::spawn(async move {
                        loop {
                            // The guard must not live across the await below.
                            let next = lock(&queue).pop();
                            let Some((index, name)) = next else { break };
                            let answer = match resolver.lookup_ip(name).await {
                                Ok(found) => Ok(found.iter().collect()),
                                Err(e) => Err(e.to_string()),
                            };
                            lock(&results)[index] = Some(answer);
                        }
                    })
                })
                .collect();
            for worker in workers {
                if tokio::time::timeout_at(deadline, worker).await.is_err() {
                    break;
                }
            }
        };
        let work = async {
            let _ = tokio::time::timeout_at(deadline, work).await;
        };
        let interrupted = race(work, readable(interrupt)).await;
        let timed_out = || {
            Err(if interrupted {
                "interrupted by a signal".to_owned()
            } else {
                format!("timed out after {} ms", total.as_millis())
            })
        };
        let answers: Vec<Answer> = lock(&results)
            .iter_mut()
            .map(|a| a.take().unwrap_or_else(timed_out))
            .collect();
        answers
    });
    // Dropping the runtime cancels unfinished lookups; no thread survives this function.
    drop(runtime);
    Ok(answers)
}

/// The distinct servers of `config`, in its order (hickory lists each once per protocol).
fn servers_of(config: &ResolverConfig) -> Vec<std::net::SocketAddr> {
    let mut servers = Vec::new();
    for ns in config.name_servers() {
        if !servers.contains(&ns.socket_addr) {
            servers.push(ns.socket_addr);
        }
    }
    servers
}

/// With several servers, asks each of them for `first` at once and moves the first that
/// answers (addresses or "no such name") to the front; the boot's queries then go to one server
/// each, in that order, falling over to the next only when one does not answer. Without this,
/// hickory asks two servers per query (twice the queries and sockets for every name); and one
/// server per query in resolv.conf order would let a dead first server cost every query its
/// timeout. Also returns the answer for `first` when there was one.
async fn first_server_that_answers(
    config: ResolverConfig,
    mut opts: ResolverOpts,
    first: &str,
) -> (ResolverConfig, ResolverOpts, Option<Answer>) {
    use hickory_resolver::config::{NameServerConfigGroup, ServerOrderingStrategy};
    use hickory_resolver::name_server::TokioConnectionProvider;
    use hickory_resolver::Resolver;

    let servers = servers_of(&config);
    let mut probes = tokio::task::JoinSet::new();
    for (index, server) in servers.iter().enumerate() {
        let group: Vec<_> = config
            .name_servers()
            .iter()
            .filter(|ns| ns.socket_addr == *server)
            .cloned()
            .collect();
        let one = ResolverConfig::from_parts(
            config.domain().cloned(),
            config.search().to_vec(),
            NameServerConfigGroup::from(group),
        );
        let resolver = Resolver::builder_with_config(one, TokioConnectionProvider::default())
            .with_options(opts.clone())
            .build();
        let name = first.to_owned();
        probes.spawn(async move { (index, resolver.lookup_ip(name).await) });
    }
    let mut answered = None;
    while let Some(joined) = probes.join_next().await {
        let Ok((index, result)) = joined else {
            continue;
        };
        match result {
            Ok(found) => answered = Some((index, Ok(found.iter().collect()))),
            Err(e) if e.is_no_records_found() => answered = Some((index, Err(e.to_string()))),
            Err(_) => continue,
        }
        break;
    }
    // Dropping the set cancels the other probes.
    drop(probes);
    let Some((index, answer)) = answered else {
        // Nobody answered: the batch tries them all, fastest first, as hickory does.
        return (config, opts, None);
    };
    let front = servers[index];
    let mut ordered: Vec<_> = config
        .name_servers()
        .iter()
        .filter(|ns| ns.socket_addr == front)
        .cloned()
        .collect();
    ordered.extend(
        config
            .name_servers()
            .iter()
            .filter(|ns| ns.socket_addr != front)
            .cloned(),
    );
    opts.num_concurrent_reqs = 1;
    opts.server_ordering_strategy = ServerOrderingStrategy::UserProvidedOrder;
    let config = ResolverConfig::from_parts(
        config.domain().cloned(),
        config.search().to_vec(),
        NameServerConfigGroup::from(ordered),
    );
    (config, opts, Some(answer))
}

/// Completes when `fd` is readable; never without one.
async fn readable(fd: Option<BorrowedFd<'_>>) {
    let Some(fd) = fd else {
        return std::future::pending().await;
    };
    match crate::sys::watch_readable(fd) {
        Ok(watch) => {
            let _ = watch.readable().await;
        }
        // Cannot watch it: resolution just runs to its bound.
        Err(_) => std::future::pending().await,
    }
}

/// Runs `work` until it completes (false) or `stop` does first (true).
async fn race(work: impl Future<Output = ()>, stop: impl Future<Output = ()>) -> bool {
    let mut work = std::pin::pin!(work);
    let mut stop = std::pin::pin!(stop);
    std::future::poll_fn(|cx| {
        if work.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        stop.as_mut().poll(cx).map(|()| true)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A fake DNS that records what it was asked.
    struct Fake {
        table: HashMap<String, Answer>,
        asked: RefCell<Vec<String>>,
    }

    impl Lookup for Fake {
        fn lookup(&self, _conf: &ResolvConf, names: &[String], _bound: Duration) -> Vec<Answer> {
            self.asked.borrow_mut().extend(names.iter().cloned());
            names
                .iter()
                .map(|n| {
                    self.table
                        .get(n)
                        .cloned()
                        .unwrap_or_else(|| Err("NXDOMAIN".into()))
                })
                .collect()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn hosts_file_first_then_dns_and_failures_are_warnings() {
        let fake = Fake {
            table: HashMap::from([(
                "pypi.org".to_owned(),
                Ok(vec![ip("151.101.0.223"), ip("2a04:4e42::223")]),
            )]),
            asked: RefCell::new(Vec::new()),
        };
        let hosts =
            "127.0.0.1 localhost\n172.17.0.1 host.docker.internal # docker\nfd00::9 Six.Example.\n";
        let names: Vec<String> = [
            "host.docker.internal",
            "pypi.org",
            "gone.example",
            "six.example",
        ]
        .map(String::from)
        .to_vec();
        let conf = ResolvConf::parse("");
        let res = resolve(&names, hosts, &conf, &fake, Duration::from_secs(1));
        assert_eq!(*fake.asked.borrow(), ["pypi.org", "gone.example"]);
        assert_eq!(res.get("host.docker.internal"), [ip("172.17.0.1")]);
        assert_eq!(
            res.get("pypi.org"),
            [ip("151.101.0.223"), ip("2a04:4e42::223")]
        );
        assert_eq!(res.get("six.example"), [ip("fd00::9")]);
        assert!(res.get("gone.example").is_empty());
        assert_eq!(
            res.warnings,
            ["failed to resolve gone.example: NXDOMAIN; it stays blocked"]
        );
    }

    #[test]
    fn nothing_to_ask_means_no_dns_at_all() {
        let fake = Fake {
            table: HashMap::new(),
            asked: RefCell::new(Vec::new()),
        };
        let res = resolve(
            &[],
            "",
            &ResolvConf::parse(""),
            &fake,
            Duration::from_secs(1),
        );
        assert!(fake.asked.borrow().is_empty());
        assert_eq!(res, Resolution::default());
    }

    #[test]
    fn nameservers_in_order_with_scope_stripped() {
        let conf =
            "# docker\nsearch corp.example\nnameserver 127.0.0.11\nnameserver fe80::1%eth0\n\
                    nameserver bogus\noptions ndots:0\nnameserver 127.0.0.11\n";
        assert_eq!(
            ResolvConf::parse(conf).nameservers,
            [ip("127.0.0.11"), ip("fe80::1")]
        );
    }

    #[test]
    fn only_names_beyond_ndots_or_absolute_are_asked_as_is() {
        let asked = |name: &str, ndots| asked_as_is(name, ndots).map(|n| n.to_string());
        assert_eq!(
            asked("api.github.com", 1),
            Some("api.github.com.".to_owned())
        );
        assert_eq!(asked("db", 1), None); // the search list comes first
        assert_eq!(asked("api.github.com", 5), None); // Kubernetes' ndots:5
        assert_eq!(asked("db.", 5), Some("db.".to_owned()));
    }

    #[test]
    fn a_name_settles_like_a_dual_stack_lookup() {
        use batch::Settled::{Addresses, NoData, NoSuchName};
        let v4 = || Some(Addresses(vec![ip("203.0.113.1")]));
        let v6 = || Some(Addresses(vec![ip("2001:db8::1")]));
        assert_eq!(
            settle(v4(), v6(), true),
            Some(Ok(vec![ip("203.0.113.1"), ip("2001:db8::1")]))
        );
        // One family is enough, whatever became of the other.
        assert_eq!(settle(None, v6(), false), Some(Ok(vec![ip("2001:db8::1")])));
        assert_eq!(
            settle(v4(), Some(NoData), false),
            Some(Ok(vec![ip("203.0.113.1")]))
        );
        // Negatives are final only without a search list, and need both families.
        assert_eq!(
            settle(Some(NoSuchName), Some(NoSuchName), true),
            Some(Err("no such name (NXDOMAIN)".to_owned()))
        );
        assert_eq!(
            settle(Some(NoData), Some(NoSuchName), true),
            Some(Err("no A or AAAA record".to_owned()))
        );
        assert_eq!(settle(Some(NoSuchName), Some(NoSuchName), false), None);
        assert_eq!(settle(Some(NoSuchName), None, true), None);
    }

    #[test]
    fn a_resolv_conf_without_servers_fails_every_name_quickly() {
        let names = ["a.example".to_owned(), "b.example".to_owned()];
        let answers = HickoryLookup::default().lookup(
            &ResolvConf::parse("search example.com\n"),
            &names,
            Duration::from_millis(200),
        );
        assert_eq!(answers.len(), 2);
        for a in answers {
            let e = a.expect_err("no servers");
            assert!(e.starts_with("failed to read resolv.conf: "), "{e}");
        }
    }
}
