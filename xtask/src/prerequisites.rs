//! What the test suite needs from the machine, installed from the distribution's packages when possible.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

fn found(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: installing {} with apt-get", packages.join(" "));
    let update = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .context("running apt-get update")?;
    if !update.success() {
        bail!("apt-get update failed ({update})");
    }
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get install")?;
    if !install.success() {
        bail!("apt-get install {} failed ({install})", packages.join(" "));
    }
    Ok(())
}

/// The tests spawn their own `redis-server` processes; make sure the program exists.
pub(crate) fn ensure_redis_server() -> anyhow::Result<()> {
    if found("redis-server") {
        return Ok(());
    }
    if is_root() && found("apt-get") {
        apt_install(&["redis-server"])?;
        if found("redis-server") {
            return Ok(());
        }
        bail!("redis-server is still missing after installing the redis-server package");
    }
    bail!(
        "redis-server is not installed and this user cannot install it: install the Debian/Ubuntu package \
         `redis-server` (sudo apt-get install redis-server), or put redis-server on PATH"
    )
}
