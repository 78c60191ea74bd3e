//! What `kvip lab` needs from the host, and what it must leave behind: nothing.
//!
//! - [`check_privileges`]: namespaces, veth and raw sockets need root (or CAP_NET_ADMIN and
//!   CAP_SYS_ADMIN); without them the lab says what to run instead of failing half-way.
//! - [`on_interrupt`]: Ctrl-C or SIGTERM only raises a flag; the lab's waits see it, return an
//!   error, and the ordinary `Drop`s tear everything down.
//! - [`remove_leftovers`]: a lab that was SIGKILLed had no chance to clean up. Every namespace
//!   and temporary directory the lab creates carries its creator's pid (see
//!   [`super::netns::unique_name`]), so a later run can tell orphans (creator dead) from the
//!   namespaces of a lab or test that is still running, and removes only the orphans.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C (SIGINT) or SIGTERM arrived since [`on_interrupt`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

extern "C" fn raise_flag(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Turns SIGINT and SIGTERM into the [`interrupted`] flag.
pub fn on_interrupt() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, raise_flag as *const () as libc::sighandler_t) };
    }
}

/// Fails with what to run instead unless this process may create namespaces and raw sockets.
pub fn check_privileges() -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(12) && has(21) {
        return Ok(()); // CAP_NET_ADMIN and CAP_SYS_ADMIN
    }
    bail!(
        "kvip lab needs root: it creates network namespaces, veth pairs and raw sockets \
         (CAP_NET_ADMIN and CAP_SYS_ADMIN). Run it as root, e.g. `sudo kvip lab`, or from a \
         checkout `cargo build --release && sudo target/release/kvip lab`"
    )
}

/// Removes namespaces (`kvip-ns<pid>x<n>`) and directories (`kvip-lab<pid>x<n>` in the temp
/// dir) whose creator is dead, killing any process still inside such a namespace. Returns what
/// was removed.
pub fn remove_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    for name in list(Path::new("/run/netns")) {
        if !name.strip_prefix("kvip-ns").is_some_and(creator_is_dead) {
            continue;
        }
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill(2) on a process inside an orphaned lab namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let deleted = Command::new("ip").args(["netns", "del", &name]).status();
        if deleted.is_ok_and(|s| s.success()) {
            removed.push(format!("network namespace {name}"));
        }
    }
    let temp = std::env::temp_dir();
    for name in list(&temp) {
        if name.strip_prefix("kvip-lab").is_some_and(creator_is_dead)
            && std::fs::remove_dir_all(temp.join(&name)).is_ok()
        {
            removed.push(format!("directory {}", temp.join(&name).display()));
        }
    }
    removed
}

fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `rest` is `<pid mod 10^6>x<counter>`: dead when no process with a pid of that residue lives
/// (pids above 10^6 exist where pid_max is raised, so every candidate is checked).
fn creator_is_dead(rest: &str) -> bool {
    let Some((pid, counter)) = rest.split_once('x') else {
        return false;
    };
    let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), counter.parse::<u32>()) else {
        return false;
    };
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4_194_304);
    !(0..=pid_max / 1_000_000)
        .map(|k| pid + k * 1_000_000)
        .any(|candidate| Path::new(&format!("/proc/{candidate}")).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_dead_creators_are_leftovers() {
        let me = std::process::id() % 1_000_000;
        assert!(!creator_is_dead(&format!("{me}x0")));
        assert!(!creator_is_dead("not-a-lab"));
        assert!(!creator_is_dead("12x"));
    }
}
