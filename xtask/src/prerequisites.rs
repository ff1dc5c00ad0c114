//! What the test suite needs from the machine, installed from the distribution's packages when possible.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

fn found(program: &str) -> bool {
    found_with(program, "--version")
}

/// Whether `program` runs and answers `flag` with success.
fn found_with(program: &str, flag: &str) -> bool {
    Command::new(program)
        .arg(flag)
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

/// The tests spawn their own `redis-server` processes (standalone, cluster nodes, sentinels) and form clusters
/// with `redis-cli` (package `redis-tools`, a dependency of `redis-server`); make sure both programs exist.
pub(crate) fn ensure_redis_server() -> anyhow::Result<()> {
    if found("redis-server") && found("redis-cli") {
        return Ok(());
    }
    if is_root() && found("apt-get") {
        apt_install(&["redis-server", "redis-tools"])?;
        if found("redis-server") && found("redis-cli") {
            return Ok(());
        }
        bail!(
            "redis-server or redis-cli is still missing after installing redis-server and redis-tools"
        );
    }
    bail!(
        "redis-server or redis-cli is not installed and this user cannot install them: install the Debian/Ubuntu \
         packages `redis-server` and `redis-tools` (sudo apt-get install redis-server redis-tools), or put both on \
         PATH"
    )
}

/// The OCR tests run the `tesseract` program with its English data (Debian package `tesseract-ocr`).
pub(crate) fn ensure_tesseract() -> anyhow::Result<()> {
    if found("tesseract") {
        return Ok(());
    }
    if is_root() && found("apt-get") {
        apt_install(&["tesseract-ocr", "tesseract-ocr-eng"])?;
        if found("tesseract") {
            return Ok(());
        }
        bail!("tesseract is still missing after installing the tesseract-ocr package");
    }
    bail!(
        "tesseract is not installed and this user cannot install it: install the Debian/Ubuntu package \
         `tesseract-ocr` (sudo apt-get install tesseract-ocr), or put tesseract on PATH"
    )
}

/// The tests need PostgreSQL at `FERNANDO_TEST_POSTGRES_URL` (default 127.0.0.1:5432, user `postgres`, trust
/// authentication). Start it if it is installed but stopped; install it as root if it is missing.
pub(crate) fn ensure_postgres() -> anyhow::Result<()> {
    let addr = "127.0.0.1:5432";
    let reachable = || {
        std::net::TcpStream::connect_timeout(
            &addr.parse().expect("address"),
            std::time::Duration::from_secs(1),
        )
        .is_ok()
    };
    if std::env::var_os("FERNANDO_TEST_POSTGRES_URL").is_some() || reachable() {
        return Ok(());
    }
    let installed = || std::path::Path::new("/usr/lib/postgresql").is_dir();
    if !installed() {
        if !(is_root() && found("apt-get")) {
            bail!(
                "PostgreSQL is not running at {addr} and this user cannot install it: install the Debian/Ubuntu \
                 package `postgresql`, or set FERNANDO_TEST_POSTGRES_URL to a server the tests may create \
                 databases on"
            );
        }
        apt_install(&["postgresql"])?;
        trust_local_tcp()?;
    }
    start_clusters()?;
    for _ in 0..100 {
        if reachable() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("PostgreSQL did not come up at {addr}")
}

fn start_clusters() -> anyhow::Result<()> {
    for entry in std::fs::read_dir("/etc/postgresql").context("reading /etc/postgresql")? {
        let version = entry?.file_name().to_string_lossy().into_owned();
        eprintln!("xtask: starting PostgreSQL {version}");
        let s = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "start"])
            .status()
            .context("running pg_ctlcluster")?;
        if !s.success() {
            eprintln!("xtask: pg_ctlcluster {version} main start exited with {s}");
        }
    }
    Ok(())
}

/// A fresh Debian install asks for passwords over TCP; the tests connect as `postgres` without one.
fn trust_local_tcp() -> anyhow::Result<()> {
    for entry in std::fs::read_dir("/etc/postgresql").context("reading /etc/postgresql")? {
        let hba = entry?.path().join("main/pg_hba.conf");
        let text =
            std::fs::read_to_string(&hba).with_context(|| format!("reading {}", hba.display()))?;
        let trusted =
            format!("host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n{text}");
        std::fs::write(&hba, trusted).with_context(|| format!("writing {}", hba.display()))?;
    }
    Ok(())
}

/// The scanned-PDF tests render pages with `pdftoppm` (Debian package `poppler-utils`), which answers `-v`.
pub(crate) fn ensure_pdftoppm() -> anyhow::Result<()> {
    if found_with("pdftoppm", "-v") {
        return Ok(());
    }
    if is_root() && found("apt-get") {
        apt_install(&["poppler-utils"])?;
        if found_with("pdftoppm", "-v") {
            return Ok(());
        }
        bail!("pdftoppm is still missing after installing the poppler-utils package");
    }
    bail!(
        "pdftoppm is not installed and this user cannot install it: install the Debian/Ubuntu package \
         `poppler-utils` (sudo apt-get install poppler-utils), or put pdftoppm on PATH"
    )
}

/// The dashboard's browser test drives Debian's Chromium through ChromeDriver (packages `chromium` and
/// `chromium-driver`).
pub(crate) fn ensure_chromium() -> anyhow::Result<()> {
    if found_with("chromium", "--version") && found_with("chromedriver", "--version") {
        return Ok(());
    }
    if is_root() && found("apt-get") {
        apt_install(&["chromium", "chromium-driver"])?;
        if found_with("chromium", "--version") && found_with("chromedriver", "--version") {
            return Ok(());
        }
        bail!(
            "chromium or chromedriver is still missing after installing chromium and chromium-driver"
        );
    }
    bail!(
        "chromium and chromedriver are not installed and this user cannot install them: install the Debian/Ubuntu \
         packages `chromium` and `chromium-driver` (sudo apt-get install chromium chromium-driver)"
    )
}
