//! Fetching secret bytes from files and helper programs, into wiped-on-drop buffers.
//!
//! Programs run without a shell, with stdin at `/dev/null`, stderr discarded (never echoed:
//! helpers may print secrets there on failure), `kill_on_drop` and a hard timeout. Output is
//! read into one preallocated zeroizing buffer (no reallocation copies), capped at 64 KiB.

use std::io::Read as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use zeroize::Zeroizing;

use crate::error::{CustodyError, Result};

/// Largest secret accepted from a file or a command's stdout.
pub(crate) const LIMIT: usize = 64 * 1024;

/// Bytes read from a secret file plus its permission bits (Unix; `None` elsewhere).
pub(crate) struct FileSecret {
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    pub(crate) mode: Option<u32>,
}

/// Reads a secret file (blocking work runs on the blocking pool).
pub(crate) async fn read_file(path: &Path) -> Result<FileSecret> {
    let owned = path.to_owned();
    blocking(move || read_file_sync(&owned)).await
}

fn read_file_sync(path: &Path) -> Result<FileSecret> {
    let what = || format!("file {}", path.display());
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            CustodyError::NotFound { what: what() }
        } else {
            CustodyError::Io {
                what: what(),
                source,
            }
        }
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(CustodyError::InvalidConfig {
            reason: format!("{} is not a regular file", what()),
        });
    }
    let mut buf = Zeroizing::new(vec![0u8; LIMIT + 1]);
    let mut len = 0;
    loop {
        let n = match file.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        if n == 0 {
            break;
        }
        len += n;
        if len > LIMIT {
            return Err(too_large(what()));
        }
    }
    buf.truncate(len);
    Ok(FileSecret {
        bytes: buf,
        mode: file_mode(&meta),
    })
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    Some(meta.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn file_mode(_meta: &std::fs::Metadata) -> Option<u32> {
    None
}

/// Runs `program args...` and returns its stdout. See the module docs for the rules.
pub(crate) async fn run_command(
    program: &str,
    args: &[String],
    timeout: Duration,
) -> Result<Zeroizing<Vec<u8>>> {
    if program.is_empty() {
        return Err(CustodyError::InvalidConfig {
            reason: "command source has an empty program name".into(),
        });
    }
    if timeout.is_zero() {
        return Err(CustodyError::InvalidConfig {
            reason: format!("command `{program}` has a zero timeout"),
        });
    }
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                CustodyError::NotFound {
                    what: format!("program `{program}`"),
                }
            } else {
                CustodyError::Io {
                    what: format!("starting command `{program}`"),
                    source,
                }
            }
        })?;
    let io = |source| CustodyError::Io {
        what: format!("output of command `{program}`"),
        source,
    };
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| io(std::io::Error::other("stdout was not captured")))?;

    let work = async {
        let mut buf = Zeroizing::new(vec![0u8; LIMIT + 1]);
        let mut len = 0;
        loop {
            let n = stdout.read(&mut buf[len..]).await.map_err(io)?;
            if n == 0 {
                break;
            }
            len += n;
            if len > LIMIT {
                return Err(too_large(format!("output of command `{program}`")));
            }
        }
        buf.truncate(len);
        let status = child.wait().await.map_err(io)?;
        Ok((buf, status))
    };
    let outcome = tokio::time::timeout(timeout, work).await;
    match outcome {
        Ok(Ok((buf, status))) if status.success() => Ok(buf),
        Ok(Ok((_, status))) => Err(CustodyError::CommandFailed {
            program: program.to_owned(),
            status,
        }),
        Ok(Err(e)) => {
            reap(&mut child).await;
            Err(e)
        }
        Err(_elapsed) => {
            reap(&mut child).await;
            Err(CustodyError::CommandTimeout {
                program: program.to_owned(),
                timeout,
            })
        }
    }
}

/// Kills a child we gave up on and waits briefly so it does not linger as a zombie.
async fn reap(child: &mut tokio::process::Child) {
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
}

fn too_large(source_desc: String) -> CustodyError {
    CustodyError::BadSecret {
        source_desc,
        reason: "larger than 64 KiB",
    }
}

/// Runs blocking work on Tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CustodyError::Io {
            what: "background task".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// Strips trailing `\r`/`\n` characters.
pub(crate) fn trim_newlines(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// Turns fetched bytes into UTF-8 text without copying; invalid bytes are wiped.
pub(crate) fn into_text(
    mut bytes: Zeroizing<Vec<u8>>,
    source_desc: impl FnOnce() -> String,
) -> Result<Zeroizing<String>> {
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(s) => Ok(Zeroizing::new(s)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(CustodyError::BadSecret {
                source_desc: source_desc(),
                reason: "not valid UTF-8",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn command_output_is_captured_and_stderr_never_surfaces() {
        let out = run_command(
            "/bin/sh",
            &["-c".into(), "echo ok; echo SECRET >&2".into()],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out.as_slice(), b"ok\n");
        let err = run_command(
            "/bin/sh",
            &["-c".into(), "echo SECRET; echo SECRET >&2; exit 3".into()],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CustodyError::CommandFailed { .. }), "{msg}");
        assert!(
            msg.contains("`/bin/sh`") && msg.contains('3') && !msg.contains("SECRET"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn command_errors_are_specific() {
        let err = run_command("/nonexistent/helper", &[], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, CustodyError::NotFound { .. }), "{err}");
        let err = run_command("", &[], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, CustodyError::InvalidConfig { .. }), "{err}");
        let err = run_command("/bin/true", &[], Duration::ZERO)
            .await
            .unwrap_err();
        assert!(matches!(err, CustodyError::InvalidConfig { .. }), "{err}");
    }

    #[tokio::test]
    async fn oversized_output_is_rejected_quickly() {
        let start = Instant::now();
        let err = run_command("/bin/cat", &["/dev/zero".into()], Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CustodyError::BadSecret {
                    reason: "larger than 64 KiB",
                    ..
                }
            ),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn text_helpers() {
        assert_eq!(trim_newlines("abc \r\n\n"), "abc ");
        let t = into_text(Zeroizing::new(b"hi".to_vec()), || "x".into()).unwrap();
        assert_eq!(t.as_str(), "hi");
        let err = into_text(Zeroizing::new(vec![0xff, 0xfe]), || "file /x".into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unusable secret from file /x: not valid UTF-8"
        );
    }
}
