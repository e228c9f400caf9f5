//! Runs the `mbls` binary on a case and measures how it ended: exit code or signal, peak
//! resident memory (from `wait4`), and whether it overran its time.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a run of the binary ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Peak resident set size, bytes.
    pub max_rss: u64,
    /// Killed after overrunning the time limit.
    pub timed_out: bool,
    /// The last part of its standard error.
    pub stderr_tail: String,
}

/// Runs `mbls args...` with a time limit, standard output discarded.
pub fn run(mbls: &Path, args: &[String], limit: Duration) -> std::io::Result<Outcome> {
    let mut child = Command::new(mbls)
        .args(args)
        .env("MBLS_OFFLINE", "1")
        .env("RAYON_NUM_THREADS", "1")
        .env("OMP_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut timed_out = false;
    let (status, usage) = loop {
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own child, not yet reaped; the pointers are to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if !timed_out && start.elapsed() > limit {
            timed_out = true;
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = reader.join().unwrap_or_default();
    let text = String::from_utf8_lossy(&stderr);
    let tail: String = text
        .chars()
        .rev()
        .take(600)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    Ok(Outcome {
        code,
        signal,
        // ru_maxrss is in kilobytes on Linux
        max_rss: (usage.ru_maxrss.max(0) as u64) * 1024,
        timed_out,
        stderr_tail: tail,
    })
}
