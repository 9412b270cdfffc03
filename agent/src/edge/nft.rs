//! The kernel data plane of the edge switch: nftables DNAT, one chain per service.
//!
//! Design: table `ip gantry` holds
//! - `prerouting` (nat, priority dstnat - 5: before Docker's own DNAT) and `output` (nat,
//!   priority -105, for connections from this host), both jumping to `routes`;
//! - `routes`: one `jump` per service chain, rebuilt with every change;
//! - one chain per service, `g/<stack>/<service>`, one rule per switched port:
//!   `ip daddr 127.0.0.1 tcp dport 18080 ct mark set M dnat ip to numgen random mod 100 map
//!   { 0-49 : A . 8080, 50-99 : B . 8080 }` (`fib daddr type local` for every address);
//! - `postrouting` (nat): flows it switched (ct mark M) that come from loopback or from a
//!   container are masqueraded, so the answer comes back through the host (loopback and
//!   hairpin). Flows from other hosts keep their source address;
//! - `martians` (filter, raw priority): packets for 127.0.0.0/8 that arrive on any interface but
//!   `lo` are dropped: loopback DNAT needs `route_localnet`, and this keeps that safe;
//! - `handover` (nat, priority dstnat - 6) and its map `handover_map` (address → address,
//!   each element with a timeout, so that a process that dies leaves none for long): while
//!   a start-first replacement moves a service name from one container to another on a Docker
//!   network, new connections to the address leaving DNS (or to the one joining it before its
//!   interface answers) go to the other container. Traffic between containers of one bridge
//!   passes these hooks through `br_netfilter` (`bridge-nf-call-iptables`, which Docker sets);
//!   the answer is un-NATed by conntrack on its way back.
//!
//! Every change is one `nft -f -` transaction, so a switch is atomic: a new connection sees
//! the old rules or the new ones. NAT applies to the first packet of a flow only: conntrack
//! keeps established connections on their backend whatever the rules say later. Docker's
//! `FORWARD` chain drops what it did not publish; one rule in `DOCKER-USER` (through the
//! `iptables` program Docker itself uses) accepts flows carrying the mark.
//!
//! Limits: needs `nft` and `iptables` on `PATH` and CAP_NET_ADMIN; IPv4 only. The table is not
//! persistent: after a reboot the daemon rebuilds it from the running containers.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{Edge, EdgeError, Listen, Routes};

/// The conntrack mark of switched flows ("GANT").
pub const MARK: u32 = 0x4741_4e54;
const TABLE: &str = "ip gantry";
const TIMEOUT: Duration = Duration::from_secs(10);

/// The nftables switch. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NftEdge {
    nft: String,
    iptables: String,
    /// One change at a time from this process: `routes` is rebuilt from the chain list.
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    base: std::sync::Arc<tokio::sync::OnceCell<()>>,
}

fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// CAP_NET_ADMIN (bit 12) in this process's effective set.
fn has_net_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

impl NftEdge {
    /// A switch driven through `nft` and `iptables` on `PATH`, if this process looks able to:
    /// both programs exist and it holds CAP_NET_ADMIN. `Err` says why not (published ports then
    /// fall back to Docker). The table itself is set up on first use, so a command that touches
    /// no published port pays nothing.
    pub fn detect() -> Result<Self, String> {
        for program in ["nft", "iptables"] {
            if find_program(program).is_none() {
                return Err(format!(
                    "`{program}` is not installed (the nftables and iptables packages)"
                ));
            }
        }
        if !has_net_admin() {
            return Err(
                "this process lacks CAP_NET_ADMIN (run gantryd as packaged, or as root)".into(),
            );
        }
        Ok(Self {
            nft: "nft".into(),
            iptables: "iptables".into(),
            lock: Default::default(),
            base: Default::default(),
        })
    }

    /// The base table, set up once per process (and again by [`Self::table`] when it went).
    async fn base(&self) -> Result<(), EdgeError> {
        self.base
            .get_or_try_init(|| async { self.ensure_base().await })
            .await
            .map(|_| ())
    }

    /// The text of the table; set up again first when it is gone (`nft flush ruleset`, a
    /// restart of the nftables service): the routes written next then work again, and the
    /// others come back with their stacks' next sync.
    async fn table(&self) -> Result<String, EdgeError> {
        self.base().await?;
        let list = ["list", "table", "ip", "gantry"];
        match self.run(&self.nft, &list, None).await {
            Ok(text) => Ok(text),
            Err(e) => {
                tracing::warn!(error = %e, "edge switch: table gone; setting it up again");
                self.ensure_base().await?;
                self.run(&self.nft, &list, None).await
            }
        }
    }

    async fn ensure_base(&self) -> Result<(), EdgeError> {
        let mut script = String::new();
        let _ = writeln!(script, "add table {TABLE}");
        for (chain, spec) in [
            (
                "prerouting",
                "type nat hook prerouting priority dstnat - 5; policy accept;",
            ),
            (
                "output",
                "type nat hook output priority -105; policy accept;",
            ),
            (
                "postrouting",
                "type nat hook postrouting priority srcnat - 5; policy accept;",
            ),
            (
                "martians",
                "type filter hook prerouting priority raw; policy accept;",
            ),
            (
                "handover",
                "type nat hook prerouting priority dstnat - 6; policy accept;",
            ),
        ] {
            let _ = writeln!(script, "add chain {TABLE} {chain} {{ {spec} }}");
            let _ = writeln!(script, "flush chain {TABLE} {chain}");
        }
        // Not flushed: other processes (the daemon, a `--local` deploy) may be handing over
        // now; each element expires by itself.
        let _ = writeln!(
            script,
            "add map {TABLE} handover_map {{ type ipv4_addr : ipv4_addr; flags timeout; }}"
        );
        let _ = writeln!(
            script,
            "add rule {TABLE} handover dnat ip to ip daddr map @handover_map"
        );
        let _ = writeln!(script, "add chain {TABLE} routes");
        let _ = writeln!(script, "add rule {TABLE} prerouting jump routes");
        let _ = writeln!(script, "add rule {TABLE} output jump routes");
        let _ = writeln!(
            script,
            "add rule {TABLE} postrouting ct mark {MARK:#x} ip saddr 127.0.0.0/8 masquerade"
        );
        for bridge in ["docker0", "br-*"] {
            let _ = writeln!(
                script,
                "add rule {TABLE} postrouting ct mark {MARK:#x} iifname \"{bridge}\" masquerade"
            );
        }
        let _ = writeln!(
            script,
            "add rule {TABLE} martians iifname != \"lo\" ip daddr 127.0.0.0/8 drop"
        );
        self.run_nft(&script).await?;
        self.ensure_forward_accept().await?;
        enable_route_localnet()?;
        Ok(())
    }

    /// One rule in Docker's `DOCKER-USER` chain (first in `FORWARD`) accepts switched flows;
    /// Docker drops forwarded traffic to ports it did not publish.
    async fn ensure_forward_accept(&self) -> Result<(), EdgeError> {
        let rule = [
            "DOCKER-USER",
            "-m",
            "connmark",
            "--mark",
            &format!("{MARK:#x}"),
            "-m",
            "comment",
            "--comment",
            "gantry edge switch",
            "-j",
            "ACCEPT",
        ];
        let mut check = vec!["-w", "5", "-C"];
        check.extend(rule);
        let out = self.exec(&self.iptables, &check, None).await?;
        match rule_check(out.status.code()) {
            RuleCheck::Present => return Ok(()),
            RuleCheck::Absent => {}
            RuleCheck::Unknown => {
                return Err(EdgeError::Command {
                    command: format!("{} {}", self.iptables, check.join(" ")),
                    message: format!(
                        "{} ({}); whether Docker's DOCKER-USER chain accepts switched flows is \
                         unknown, so no rule was added (hint: exit status 4 is the xtables lock \
                         held by another program for over 5 s; the next route change checks \
                         again)",
                        out.status,
                        stderr(&out)
                    ),
                });
            }
        }
        // Docker creates DOCKER-USER when it starts; create it if it is not there yet.
        let _ = self
            .run(&self.iptables, &["-w", "5", "-N", "DOCKER-USER"], None)
            .await;
        let mut insert = vec!["-w", "5", "-I"];
        insert.extend(rule);
        self.run(&self.iptables, &insert, None).await.map(|_| ())
    }

    async fn run_nft(&self, script: &str) -> Result<String, EdgeError> {
        self.run(&self.nft, &["-f", "-"], Some(script)).await
    }

    /// Runs `program`, `Err` when it did not succeed.
    async fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, EdgeError> {
        let out = self.exec(program, args, stdin).await?;
        if !out.status.success() {
            return Err(EdgeError::Command {
                command: format!("{program} {}", args.join(" ")),
                message: format!("{} ({})", out.status, stderr(&out)),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `program` to its end, whatever its exit status; `Err` when it could not be run or
    /// gave no answer within [`TIMEOUT`].
    async fn exec(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<std::process::Output, EdgeError> {
        let command = format!("{program} {}", args.join(" "));
        let fail = |message: String| EdgeError::Command {
            command: command.clone(),
            message,
        };
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        tokio::time::timeout(TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| fail(format!("no answer within {}s", TIMEOUT.as_secs())))?
            .map_err(|e| fail(e.to_string()))
    }

    /// The service chains now in the table.
    async fn chains(&self) -> Result<Vec<String>, EdgeError> {
        let text = self.run(&self.nft, &["list", "chains", "ip"], None).await?;
        Ok(parse_chains(&text))
    }

    /// Reads the service chains, runs the script `make` writes from them (`None`: nothing to
    /// do). Another process (a second `gantry --local`, the daemon) may add or delete a chain
    /// between the read and the write, which fails the whole transaction and changes nothing:
    /// it is then read and written again, up to three times.
    async fn with_chains(
        &self,
        mut make: impl FnMut(&[String]) -> Option<String>,
    ) -> Result<(), EdgeError> {
        let mut attempt = 0;
        loop {
            let chains = self.chains().await?;
            let Some(script) = make(&chains) else {
                return Ok(());
            };
            match self.run_nft(&script).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 2 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "edge switch: chains changed under us; again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Rebuilds `routes` to jump to `chains`, in one script.
    fn write_dispatch(script: &mut String, chains: &[String]) {
        let _ = writeln!(script, "flush chain {TABLE} routes");
        for c in chains {
            let _ = writeln!(script, "add rule {TABLE} routes jump {c}");
        }
    }
}

/// A program's error output, for a message.
fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .trim()
        .chars()
        .take(600)
        .collect()
}

/// What `iptables -C` says of a rule, by its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleCheck {
    Present,
    /// Exit status 1: the rule (or its chain) is not there.
    Absent,
    /// Anything else (the xtables lock still held after `-w`, exit 4; a bad option; killed):
    /// adding the rule then could add it twice.
    Unknown,
}

fn rule_check(code: Option<i32>) -> RuleCheck {
    match code {
        Some(0) => RuleCheck::Present,
        Some(1) => RuleCheck::Absent,
        _ => RuleCheck::Unknown,
    }
}

/// `g/<stack>/<service>`: nft identifiers take letters, digits and `/ - _ .`, which is all a
/// Compose project or service name can hold; `/` separates them.
pub fn chain_name(stack: &str, service: &str) -> String {
    format!("g/{stack}/{service}")
}

/// The service chains of table `gantry` in `nft list chains ip` output.
fn parse_chains(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_table = false;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("table ip ") {
            in_table = rest.trim_end_matches('{').trim() == "gantry";
        } else if in_table && let Some(rest) = line.strip_prefix("chain ") {
            let name = rest.trim_end_matches('{').trim();
            if name.starts_with("g/") {
                out.push(name.to_owned());
            }
        }
    }
    out
}

/// The rules of one service chain.
pub fn render_rules(routes: &Routes) -> Vec<String> {
    let chain = chain_name(&routes.stack, &routes.service);
    let backends: Vec<_> = routes.backends.iter().filter(|b| b.weight > 0).collect();
    let mut out = Vec::new();
    if backends.is_empty() {
        return out;
    }
    for port in &routes.ports {
        let matcher = match_listen(port.listen);
        // Each backend at its own container port; one that does not serve this host port gets
        // none of its connections (if none serves it, all of them, at the routes' port).
        let mut serving: Vec<(Ipv4Addr, u8, u16)> = backends
            .iter()
            .filter_map(|b| Some((b.ip, b.weight, b.target(port)?)))
            .collect();
        if serving.is_empty() {
            serving = backends
                .iter()
                .map(|b| (b.ip, b.weight, port.target))
                .collect();
        }
        let target = if let [(ip, _, target)] = serving[..] {
            format!("{ip}:{target}")
        } else {
            let weights: Vec<u8> = serving.iter().map(|(_, w, _)| *w).collect();
            let mut elements = Vec::new();
            let mut from = 0u32;
            for ((ip, _, target), to) in serving.iter().zip(boundaries(&weights)) {
                if to > from {
                    elements.push(format!("{}-{} : {ip} . {target}", from, to - 1));
                }
                from = to;
            }
            format!("numgen random mod 100 map {{ {} }}", elements.join(", "))
        };
        out.push(format!(
            "add rule {TABLE} {chain} {matcher} tcp dport {} ct mark set {MARK:#x} dnat ip to {target} comment \"{}\"",
            port.listen.port,
            comment(routes, port.listen),
        ));
    }
    out
}

/// Where each backend's range of `numgen random mod 100` ends (exclusive), for `weights` in
/// order: weights scaled to 100 (those of the backends serving a port may add up to less),
/// each boundary rounded from the running total, so that no backend's range is off its exact
/// share by a whole point or more, weights that add up to 100 get exactly their width, and the
/// last boundary is 100.
fn boundaries(weights: &[u8]) -> Vec<u32> {
    let total: u32 = weights.iter().map(|w| u32::from(*w)).sum::<u32>().max(1);
    let mut running = 0u32;
    weights
        .iter()
        .map(|w| {
            running += u32::from(*w);
            (200 * running + total) / (2 * total)
        })
        .collect()
}

fn match_listen(listen: Listen) -> String {
    match listen.ip {
        Some(ip) => format!("ip daddr {ip}"),
        None => "fib daddr type local".into(),
    }
}

fn comment(routes: &Routes, listen: Listen) -> String {
    let s = format!("{}/{} {listen}", routes.stack, routes.service);
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| *c != '"')
        .take(120)
        .collect()
}

/// Sets `net.ipv4.conf.all.route_localnet` (loopback addresses may be DNATed to containers).
/// Packaging also sets it through sysctl.d, for a daemon whose /proc/sys is read-only.
fn enable_route_localnet() -> Result<(), EdgeError> {
    let path = "/proc/sys/net/ipv4/conf/all/route_localnet";
    let now = std::fs::read_to_string(path).map_err(|source| EdgeError::Io {
        what: format!("reading {path}"),
        source,
    })?;
    if now.trim() == "1" {
        return Ok(());
    }
    std::fs::write(path, "1\n").map_err(|source| EdgeError::Io {
        what: format!(
            "setting {path} (loopback ports need it; packaging ships \
             /usr/lib/sysctl.d/60-gantry-edge.conf)"
        ),
        source,
    })
}

#[async_trait]
impl Edge for NftEdge {
    fn available(&self) -> Result<(), String> {
        Ok(())
    }

    async fn set_routes(&self, routes: &Routes) -> Result<(), EdgeError> {
        let _one = self.lock.lock().await;
        let _host = host_lock().await;
        let chain = chain_name(&routes.stack, &routes.service);
        // Checked before anything changed, checked again here, under the host's lock: two
        // stacks deploying side by side may both have found the port free.
        let table = self.table().await?;
        for p in &routes.ports {
            routed_by_another(&table, &routes.stack, &routes.service, p.listen)?;
        }
        // Docker may have been restarted (DOCKER-USER recreated) since the daemon started.
        self.ensure_forward_accept().await?;
        self.with_chains(|chains| {
            let mut chains = chains.to_vec();
            if !chains.contains(&chain) {
                chains.push(chain.clone());
                chains.sort();
            }
            let mut script = String::new();
            let _ = writeln!(script, "add chain {TABLE} {chain}");
            let _ = writeln!(script, "flush chain {TABLE} {chain}");
            for rule in render_rules(routes) {
                let _ = writeln!(script, "{rule}");
            }
            Self::write_dispatch(&mut script, &chains);
            Some(script)
        })
        .await?;
        tracing::info!(
            stack = %routes.stack,
            service = %routes.service,
            backends = %routes
                .backends
                .iter()
                .map(|b| format!("{}={}%", b.container, b.weight))
                .collect::<Vec<_>>()
                .join(","),
            "edge routes set"
        );
        Ok(())
    }

    async fn retain_services(&self, stack: &str, keep: &[String]) -> Result<(), EdgeError> {
        self.base().await?;
        let _one = self.lock.lock().await;
        let _host = host_lock().await;
        let prefix = format!("g/{stack}/");
        let mut removed = Vec::new();
        self.with_chains(|chains| {
            let (gone, kept): (Vec<String>, Vec<String>) = chains.iter().cloned().partition(|c| {
                c.strip_prefix(&prefix)
                    .is_some_and(|svc| !keep.iter().any(|k| k == svc))
            });
            if gone.is_empty() {
                return None;
            }
            let mut script = String::new();
            Self::write_dispatch(&mut script, &kept);
            for c in &gone {
                let _ = writeln!(script, "flush chain {TABLE} {c}");
                let _ = writeln!(script, "delete chain {TABLE} {c}");
            }
            removed = gone;
            Some(script)
        })
        .await?;
        if removed.is_empty() {
            return Ok(());
        }
        tracing::info!(stack, removed = %removed.join(","), "edge routes removed");
        Ok(())
    }

    async fn hand_over(
        &self,
        from: Ipv4Addr,
        to: Option<Ipv4Addr>,
        at_most: Duration,
    ) -> Result<(), EdgeError> {
        self.base().await?;
        // An element is replaced by deleting it first; deleting one that is not there fails
        // (nothing to undo then).
        let _ = self
            .run_nft(&format!(
                "delete element {TABLE} handover_map {{ {from} }}\n"
            ))
            .await;
        if let Some(to) = to {
            let secs = at_most.as_secs().max(1);
            let add =
                format!("add element {TABLE} handover_map {{ {from} timeout {secs}s : {to} }}\n");
            if self.run_nft(&add).await.is_err() {
                // The table may be gone (see `table`): set up again, then once more.
                self.table().await?;
                self.run_nft(&add).await?;
            }
        }
        tracing::debug!(%from, to = ?to, "edge hand-over");
        Ok(())
    }

    async fn open_connections(&self, pid: u32, port: u16) -> Option<usize> {
        tokio::task::spawn_blocking(move || super::drain::established(pid, port).ok())
            .await
            .ok()
            .flatten()
    }

    async fn check_free(
        &self,
        stack: &str,
        service: &str,
        listen: Listen,
    ) -> Result<(), EdgeError> {
        match super::drain::listener(listen.ip, listen.port) {
            Ok(Some(_)) => {
                return Err(EdgeError::PortTaken {
                    listen,
                    by: "another process on this host (see `ss -ltnp`)".into(),
                    key: None,
                });
            }
            Ok(None) => {}
            Err(source) => {
                return Err(EdgeError::Io {
                    what: "reading /proc/self/net/tcp".into(),
                    source,
                });
            }
        }
        let table = self.table().await?;
        routed_by_another(&table, stack, service, listen)
    }
}

/// `Err(PortTaken)` when a service other than `stack/service` routes `listen` in `table` (the
/// text of `nft list table ip gantry`): the same port on the same address, or on every address
/// for either (as Docker, which binds `127.0.0.1:8080` and `10.0.0.5:8080` side by side).
fn routed_by_another(
    table: &str,
    stack: &str,
    service: &str,
    listen: Listen,
) -> Result<(), EdgeError> {
    let me = format!("{stack}/{service}");
    match route_owners(table)
        .into_iter()
        .find(|(owner, theirs)| overlap(*theirs, listen) && *owner != me)
    {
        Some((owner, theirs)) => Err(EdgeError::PortTaken {
            listen,
            by: format!("service {owner} (its edge route on {theirs})"),
            key: None,
        }),
        None => Ok(()),
    }
}

/// Whether a connection could match both `a` and `b`: one port, and one address or every
/// address on either side.
fn overlap(a: Listen, b: Listen) -> bool {
    a.port == b.port && (a.ip.is_none() || b.ip.is_none() || a.ip == b.ip)
}

/// Where processes on this host take turns at the switch's read-modify-write (`routes` is
/// rebuilt from the chain list they read): the daemon, a `gantry --local`, several of them.
const HOST_LOCK: &str = "/run/gantry/edge.lock";

/// Takes [`HOST_LOCK`] (waiting for another process's change, which is one `nft` run). A lock
/// that cannot be taken (no /run/gantry to create: not root) is logged, and this process's
/// own lock is all there is.
async fn host_lock() -> Option<nix::fcntl::Flock<std::fs::File>> {
    let taken = tokio::task::spawn_blocking(|| {
        let path = std::path::Path::new(HOST_LOCK);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| std::io::Error::from(e))
    })
    .await;
    match taken {
        Ok(Ok(lock)) => Some(lock),
        Ok(Err(e)) => {
            tracing::warn!(path = HOST_LOCK, error = %e, "edge switch: no host-wide lock; changes from other processes may race");
            None
        }
        Err(_) => None,
    }
}

/// `(stack/service, where it listens)` of every route rule, from their comments
/// (`app/web 127.0.0.1:8080`; `0.0.0.0`: every address).
fn route_owners(table: &str) -> Vec<(String, Listen)> {
    table
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once("comment \"")?;
            let text = rest.strip_suffix('"').unwrap_or(rest);
            let (owner, listen) = text.split_once(' ')?;
            let (ip, port) = listen.rsplit_once(':')?;
            let ip: Ipv4Addr = ip.parse().ok()?;
            let listen = Listen {
                ip: (!ip.is_unspecified()).then_some(ip),
                port: port.parse().ok()?,
            };
            Some((owner.to_owned(), listen))
        })
        .collect()
}

#[cfg(test)]
mod tests;
