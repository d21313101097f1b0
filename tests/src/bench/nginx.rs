//! The benchmark's one-hop baseline: Debian's nginx as a plain reverse proxy in front of the fake
//! provider (one worker, upstream keepalive, buffering off, the provider key injected as the
//! `Authorization` header), so every figure of a run can be set against direct and nginx alike.
//! `cargo xtask bench` installs `nginx-light` when missing; `PAIRGATE_NGINX` names another binary.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running nginx, stopped on drop.
#[derive(Debug)]
pub struct Nginx {
    child: tokio::process::Child,
    /// Its prefix dir (config, pid, temp dirs, error log).
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

fn binary() -> PathBuf {
    std::env::var_os("PAIRGATE_NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

/// The configuration: one worker process, as the gateway's load shares the same two cores.
fn config(dir: &std::path::Path, port: u16, upstream: &str, key: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\ndaemon off;\nmaster_process on;\nuser root;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           keepalive_requests 1000000;\n\
           upstream fake {{ server {upstream}; keepalive 256; keepalive_requests 1000000; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
               proxy_pass http://fake;\n      proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n\
               proxy_set_header Authorization \"Bearer {key}\";\n\
               proxy_buffering off;\n      proxy_request_buffering off;\n    }}\n  }}\n}}\n"
    )
}

impl Nginx {
    /// Starts nginx proxying to `upstream` (`127.0.0.1:PORT`) and waits until it answers.
    pub async fn start(upstream: &str, key: &str) -> Result<Nginx> {
        let bin = binary();
        if !bin.exists() {
            bail!(
                "{} is missing: `cargo xtask bench` installs Debian's nginx-light (or set PAIRGATE_NGINX)",
                bin.display()
            );
        }
        let dir = tempfile::tempdir().context("nginx prefix dir")?;
        let port = crate::gateway::free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), port, upstream, key)).context("nginx.conf")?;
        let child = tokio::process::Command::new(&bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                bail!("nginx did not start listening within 10 s: {log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Nginx {
            child,
            _dir: dir,
            url,
        })
    }

    /// Stops nginx: SIGTERM to the master, which stops its worker before it exits (a SIGKILL of
    /// the master alone would leave the worker running, orphaned, into the next phases); SIGKILL
    /// only if it has not exited within 5 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_one_worker_with_keepalive_and_the_key_injected() {
        let c = config(std::path::Path::new("/tmp/x"), 8080, "127.0.0.1:9", "sk-k");
        for want in [
            "worker_processes 1;",
            "keepalive 256;",
            "proxy_buffering off;",
            "proxy_set_header Authorization \"Bearer sk-k\";",
            "listen 127.0.0.1:8080;",
            "server 127.0.0.1:9;",
        ] {
            assert!(c.contains(want), "{want}\n{c}");
        }
    }
}
