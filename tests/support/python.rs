//! The reference implementations for tests: Python interpreters with a Stateful
//! Functions Python SDK installed, 2.2.2 (the 2.2 protocol) or 3.3.0 (the 3.x protocol).
//!
//! [`python`] returns the interpreter with the 2.2.2 SDK, [`python3`] the one with the
//! 3.3.0 SDK. When the environment variable `STATEFUN_PYTHON` (for 2.2.2) or
//! `STATEFUN_PYTHON3` (for 3.3.0) names one, that one is used; it must already have the
//! [`REFERENCE_PACKAGES`] or [`REFERENCE3_PACKAGES`]. Otherwise a virtualenv at
//! `<CARGO_TARGET_TMPDIR>/python-reference` (or `python-reference-3`) is made on first
//! use (`python3 -m venv`, then `pip install` from PyPI, so that first run needs network
//! access) and reused by every later run. [`python_with`] also installs extra pip packages
//! into the 2.2.2 one.
//!
//! Several test binaries, and several tests in one binary, may ask at once: within a
//! process a mutex per SDK serialises them, and across processes whoever changes a
//! virtualenv holds a lock directory next to it (`python-reference.lock`,
//! `python-reference-3.lock`) while the others wait.
//!
//! Every failure panics with what went wrong and what to install or fix: a test that
//! needs a reference implementation never skips silently.
//!
//! [`PythonApp`] runs a Python function as a remote function: a program that serves its
//! SDK's handler over HTTP with `serve` of `tests/support/http_app.py`.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The pip requirements of the 2.2 reference implementation.
pub const REFERENCE_PACKAGES: &[&str] = &["apache-flink-statefun==2.2.2", "protobuf==3.20.3"];

/// The environment variable that names a ready 2.2 interpreter, skipping the virtualenv.
pub const PYTHON_ENV: &str = "STATEFUN_PYTHON";

/// The pip requirements of the 3.x reference implementation. The SDK asks for
/// `protobuf>=3.11.3,<4`, but its generated code needs 3.20 (PROTOCOL3.md).
pub const REFERENCE3_PACKAGES: &[&str] = &["apache-flink-statefun==3.3.0", "protobuf==3.20.3"];

/// The environment variable that names a ready 3.x interpreter, skipping the virtualenv.
pub const PYTHON3_ENV: &str = "STATEFUN_PYTHON3";

/// One reference SDK: what to install, where, and how to recognise it.
struct Reference {
    /// For messages, e.g. "the reference Python SDK 2.2.2".
    title: &'static str,
    packages: &'static [&'static str],
    /// The variable that names a ready interpreter.
    env: &'static str,
    /// The virtualenv's directory under `CARGO_TARGET_TMPDIR`; its lock is `<dir>.lock`.
    dir: &'static str,
    /// The versions `importlib.metadata` must report for `apache-flink-statefun`, and
    /// `google.protobuf.__version__`.
    versions: (&'static str, &'static str),
}

const SDK_2: Reference = Reference {
    title: "the reference Python SDK 2.2.2",
    packages: REFERENCE_PACKAGES,
    env: PYTHON_ENV,
    dir: "python-reference",
    versions: ("2.2.2", "3.20.3"),
};

const SDK_3: Reference = Reference {
    title: "the reference Python SDK 3.3.0",
    packages: REFERENCE3_PACKAGES,
    env: PYTHON3_ENV,
    dir: "python-reference-3",
    versions: ("3.3.0", "3.20.3"),
};

/// How long to wait for another process that is building the virtualenv.
const LOCK_WAIT: Duration = Duration::from_secs(15 * 60);
/// A lock directory older than this was left by a process that died holding it.
const STALE_LOCK: Duration = Duration::from_secs(30 * 60);

/// The Python interpreter that has [`REFERENCE_PACKAGES`] (the 2.2.2 SDK):
/// `$STATEFUN_PYTHON`, or the test virtualenv, created on first use.
///
/// # Panics
///
/// If there is no usable interpreter: `python3` (with its `venv` module) is missing, pip
/// cannot install the packages (no network access to PyPI), or `$STATEFUN_PYTHON` lacks
/// the packages. The message says what to install.
pub fn python() -> PathBuf {
    python_with(&[])
}

/// As [`python`], with the pip requirements `packages` (e.g. `&["flask==2.2.5"]`)
/// installed too, into the virtualenv or into `$STATEFUN_PYTHON`'s environment. Each
/// requirement is installed once per test process; pip does nothing (and needs no
/// network) when it is already satisfied.
///
/// # Panics
///
/// As [`python`], and if pip cannot install one of `packages`.
pub fn python_with(packages: &[&str]) -> PathBuf {
    static READY: Mutex<Option<Ready>> = Mutex::new(None);
    // A panic while preparing leaves `None` or a complete `Ready`, so a poisoned lock is
    // still consistent.
    let mut ready = READY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match prepare(&SDK_2, &mut ready, packages) {
        Ok(python) => python,
        Err(message) => panic!("{} is not available: {message}", SDK_2.title),
    }
}

/// The Python interpreter that has [`REFERENCE3_PACKAGES`] (the 3.3.0 SDK, whose
/// `RequestReplyHandler.handle_sync` speaks the 3.x protocol): `$STATEFUN_PYTHON3`, or its
/// own test virtualenv, created on first use.
///
/// # Panics
///
/// As [`python`]: if there is no usable interpreter, pip cannot install the packages, or
/// `$STATEFUN_PYTHON3` lacks them. The message says what to install.
pub fn python3() -> PathBuf {
    static READY: Mutex<Option<Ready>> = Mutex::new(None);
    // As in `python_with`: a poisoned lock still holds `None` or a complete `Ready`.
    let mut ready = READY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match prepare(&SDK_3, &mut ready, &[]) {
        Ok(python) => python,
        Err(message) => panic!("{} is not available: {message}", SDK_3.title),
    }
}

/// The interpreter found in this process, and the requirements installed into it.
struct Ready {
    python: PathBuf,
    installed: BTreeSet<String>,
}

fn prepare(
    sdk: &Reference,
    ready: &mut Option<Ready>,
    packages: &[&str],
) -> Result<PathBuf, String> {
    if ready.is_none() {
        *ready = Some(reference(sdk)?);
    }
    let ready = ready.as_mut().expect("set above");
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| !ready.installed.contains(*package))
        .collect();
    if !missing.is_empty() {
        let _lock = DirLock::acquire(&lock_path(sdk)?)?;
        pip_install(&ready.python, &missing)?;
        ready
            .installed
            .extend(missing.iter().map(|package| package.to_string()));
    }
    Ok(ready.python.clone())
}

fn reference(sdk: &Reference) -> Result<Ready, String> {
    let python = match std::env::var_os(sdk.env) {
        Some(python) if !python.is_empty() => PathBuf::from(python),
        _ => reference_venv(sdk)?,
    };
    check_reference(sdk, &python)?;
    Ok(Ready {
        python,
        installed: sdk.packages.iter().map(|p| p.to_string()).collect(),
    })
}

/// Where the virtualenv and its lock live.
fn work_dir() -> Result<PathBuf, String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The lock directory of `sdk`'s virtualenv.
fn lock_path(sdk: &Reference) -> Result<PathBuf, String> {
    Ok(work_dir()?.join(format!("{}.lock", sdk.dir)))
}

/// The interpreter of `sdk`'s test virtualenv, built if it is not complete yet.
fn reference_venv(sdk: &Reference) -> Result<PathBuf, String> {
    let dir = work_dir()?.join(sdk.dir);
    let python = venv_python(&dir);
    // Written last, so its presence means the virtualenv is complete.
    let marker = dir.join("statefun-sync-complete");
    let pins = sdk.packages.join(" ");
    let complete = || fs::read_to_string(&marker).is_ok_and(|content| content == pins);
    if complete() {
        return Ok(python);
    }
    let _lock = DirLock::acquire(&lock_path(sdk)?)?;
    if complete() {
        return Ok(python); // another process built it while this one waited
    }
    if dir.exists() {
        // Left half-made by an interrupted run, or made for other pins.
        fs::remove_dir_all(&dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    let base = base_interpreter(sdk)?;
    run(
        Command::new(&base).arg("-m").arg("venv").arg(&dir),
        &format!("`{} -m venv {}`", base, dir.display()),
        "install the venv module (Debian/Ubuntu: `apt-get install python3-venv`)",
    )?;
    pip_install(&python, sdk.packages)?;
    fs::write(&marker, &pins).map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    Ok(python)
}

fn venv_python(dir: &Path) -> PathBuf {
    if cfg!(windows) {
        dir.join("Scripts").join("python.exe")
    } else {
        dir.join("bin").join("python")
    }
}

/// The first of `python3` and `python` that is a Python 3.7 or newer with `venv`.
fn base_interpreter(sdk: &Reference) -> Result<String, String> {
    let check = "import sys, venv; sys.exit(0 if sys.version_info >= (3, 7) else 1)";
    for candidate in ["python3", "python"] {
        let works = Command::new(candidate)
            .args(["-c", check])
            .output()
            .is_ok_and(|output| output.status.success());
        if works {
            return Ok(candidate.to_owned());
        }
    }
    Err(format!(
        "no Python 3.7+ with the venv module on PATH (tried `python3` and `python`). \
         Install Python 3 with venv and pip (Debian/Ubuntu: `apt-get install python3 \
         python3-venv python3-pip`), or set {} to an interpreter that has `pip install {}`",
        sdk.env,
        sdk.packages.join(" ")
    ))
}

fn pip_install(python: &Path, packages: &[&str]) -> Result<(), String> {
    run(
        Command::new(python)
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(["--no-input", "--quiet"])
            .args(packages),
        &format!(
            "`{} -m pip install {}`",
            python.display(),
            packages.join(" ")
        ),
        "pip needs network access to PyPI the first time",
    )
}

/// Checks that `python` imports `sdk`, at the pinned versions.
fn check_reference(sdk: &Reference, python: &Path) -> Result<(), String> {
    let (statefun, protobuf) = sdk.versions;
    let check = format!(
        "import statefun, google.protobuf\n\
         from importlib.metadata import version\n\
         found = (version('apache-flink-statefun'), google.protobuf.__version__)\n\
         assert found == ('{statefun}', '{protobuf}'), found"
    );
    run(
        Command::new(python).args(["-c", &check]),
        &format!("importing statefun with {}", python.display()),
        &format!(
            "that interpreter needs `pip install {}`; unset {} to let the tests build their \
             own virtualenv, or delete {} to rebuild it",
            sdk.packages.join(" "),
            sdk.env,
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(sdk.dir)
                .display()
        ),
    )
}

/// Runs `command` to completion; a failure to start or a non-zero exit is an error
/// naming `what`, with the command's stderr and `hint`.
fn run(command: &mut Command, what: &str, hint: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what} did not start: {e}; {hint}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = {
        let chars: Vec<char> = stderr.trim().chars().collect();
        chars[chars.len().saturating_sub(3000)..].iter().collect()
    };
    Err(format!(
        "{what} failed ({}): {hint}\n--- stderr ---\n{tail}",
        output.status
    ))
}

/// A lock held by creating a directory (atomic on every file system), released by
/// removing it when dropped.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path) -> Result<DirLock, String> {
        let start = Instant::now();
        loop {
            match fs::create_dir(path) {
                Ok(()) => {
                    // For whoever finds the lock: which process holds it.
                    let _ = fs::write(path.join("pid"), std::process::id().to_string());
                    return Ok(DirLock(path.to_owned()));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if is_stale(path) {
                        // Its owner died holding it. (Two waiters may both see this; the
                        // worst case is two pip runs at once, after a 30-minute stall.)
                        let _ = fs::remove_dir_all(path);
                        continue;
                    }
                    if start.elapsed() > LOCK_WAIT {
                        return Err(format!(
                            "waited {LOCK_WAIT:?} for {}, held by another test process; if \
                             none is running, delete that directory",
                            path.display()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    return Err(format!("cannot create the lock {}: {e}", path.display()));
                }
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn is_stale(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > STALE_LOCK)
}

/// A Python app serving remote functions over HTTP on 127.0.0.1, killed when dropped (it
/// also exits by itself when its stdin closes, or after 120 seconds). It serves with
/// `serve(handle)` of `tests/support/http_app.py`, which it can import: that directory
/// comes first on its `PYTHONPATH`.
pub struct PythonApp {
    child: Child,
    port: u16,
}

impl PythonApp {
    /// Runs the script `script` (relative to the crate, e.g.
    /// `tests/local_runtime/python_app.py`) with `python`.
    ///
    /// # Panics
    ///
    /// As [`PythonApp::program`].
    pub fn script(python: &Path, script: &str) -> PythonApp {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
        PythonApp::start(python, &[path.as_os_str()], &path.display().to_string())
    }

    /// Runs `program` (Python source) with `python`; `what` names it in messages.
    ///
    /// # Panics
    ///
    /// If it does not start, or does not print its port as its first line.
    pub fn program(python: &Path, program: &str, what: &str) -> PythonApp {
        PythonApp::start(python, &[OsStr::new("-c"), OsStr::new(program)], what)
    }

    fn start(python: &Path, args: &[&OsStr], what: &str) -> PythonApp {
        let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
        let paths = std::iter::once(support).chain(
            std::env::var_os("PYTHONPATH")
                .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        let pythonpath = std::env::join_paths(paths)
            .unwrap_or_else(|e| panic!("cannot put tests/support on PYTHONPATH: {e}"));
        let mut child = Command::new(python)
            .args(args)
            .env("PYTHONPATH", pythonpath)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let mut first_line = String::new();
        let stdout = child.stdout.take().expect("stdout is piped");
        let read = BufReader::new(stdout).read_line(&mut first_line);
        let port = read.ok().and_then(|_| first_line.trim().parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not print its port; it printed {first_line:?}");
        };
        PythonApp { child, port }
    }

    /// The URL of its functions, `http://127.0.0.1:<port>/statefun`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/statefun", self.port)
    }
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
