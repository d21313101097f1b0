//! Raw configuration values as read from TOML or text (env, flags), and their typed parsers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A value before it is typed: TOML keeps its type, env and flags are text.
#[derive(Debug, Clone)]
pub enum RawValue {
    Toml(toml::Value),
    Text(String),
}

impl RawValue {
    fn text(&self) -> Result<String, String> {
        match self {
            RawValue::Text(s) => Ok(s.clone()),
            RawValue::Toml(toml::Value::String(s)) => Ok(s.clone()),
            RawValue::Toml(other) => Err(format!("expected a string, found {}", other.type_str())),
        }
    }

    /// A string value, shown in errors when `secret` is false.
    pub fn string(&self) -> Result<String, String> {
        let s = self.text()?;
        if s.trim().is_empty() {
            return Err("must not be empty".into());
        }
        Ok(s)
    }

    pub fn socket_addr(&self) -> Result<SocketAddr, String> {
        let s = self.text()?;
        s.trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an address like 127.0.0.1:8787"))
    }

    /// A path, made absolute against the working directory at start (a relative `--data-dir`
    /// means the folder the user is in, and the plugin cache needs an absolute path).
    pub fn path(&self) -> Result<PathBuf, String> {
        let p = PathBuf::from(self.string()?);
        std::path::absolute(&p)
            .map_err(|e| format!("`{}` cannot be made absolute: {e}", p.display()))
    }

    pub fn url(&self) -> Result<url::Url, String> {
        let s = self.text()?;
        let url = url::Url::parse(s.trim()).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "`{s}` must be an http:// or https:// URL with a host"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("`{s}` must not have a query or fragment"));
        }
        Ok(url)
    }

    /// A duration: TOML integer seconds, or text like `90s`, `10m`, `30d`.
    pub fn duration(&self) -> Result<Duration, String> {
        match self {
            RawValue::Toml(toml::Value::Integer(n)) if *n > 0 => Ok(Duration::from_secs(*n as u64)),
            RawValue::Toml(toml::Value::Integer(n)) => Err(format!("{n} must be positive")),
            _ => {
                let s = self.text()?;
                let d = humantime::parse_duration(s.trim())
                    .map_err(|_| format!("`{s}` is not a duration like 30s, 10m or 7d"))?;
                if d.is_zero() {
                    return Err("must be longer than zero".into());
                }
                Ok(d)
            }
        }
    }

    /// A byte size: TOML integer, or text like `4MiB`, `512KiB`, `1048576`.
    pub fn bytes(&self) -> Result<usize, String> {
        let n = match self {
            RawValue::Toml(toml::Value::Integer(n)) => *n,
            _ => {
                let s = self.text()?;
                parse_size(s.trim()).ok_or_else(|| format!("`{s}` is not a size like 4MiB"))?
            }
        };
        if n <= 0 {
            return Err("must be positive".into());
        }
        usize::try_from(n).map_err(|_| "is too large".to_string())
    }

    /// A positive whole number.
    pub fn count(&self) -> Result<usize, String> {
        match self.whole()? {
            0 => Err("must be positive".into()),
            n => Ok(n),
        }
    }

    /// A whole number, zero or more.
    pub fn whole(&self) -> Result<usize, String> {
        let n = match self {
            RawValue::Toml(toml::Value::Integer(n)) => *n,
            _ => {
                let s = self.text()?;
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("`{s}` is not a whole number"))?
            }
        };
        if n < 0 {
            return Err("must not be negative".into());
        }
        usize::try_from(n).map_err(|_| "is too large".to_string())
    }

    pub fn boolean(&self) -> Result<bool, String> {
        match self {
            RawValue::Toml(toml::Value::Boolean(b)) => Ok(*b),
            _ => match self.text()?.trim() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                s => Err(format!("`{s}` is not true or false")),
            },
        }
    }

    /// A list of strings: a TOML array, or a JSON array in text (`["op","read","x"]`).
    pub fn string_list(&self) -> Result<Vec<String>, String> {
        match self {
            RawValue::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(format!(
                        "list items must be strings, found {}",
                        other.type_str()
                    )),
                })
                .collect(),
            _ => {
                let s = self.text()?;
                serde_json::from_str::<Vec<String>>(&s)
                    .map_err(|_| "must be a list of strings, as a JSON array in text".to_string())
            }
        }
    }

    pub fn one_of(&self, allowed: &[&str]) -> Result<String, String> {
        let s = self.text()?;
        if allowed.contains(&s.as_str()) {
            Ok(s)
        } else {
            Err(format!("`{s}` is not one of: {}", allowed.join(", ")))
        }
    }
}

fn parse_size(s: &str) -> Option<i64> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: i64 = num.parse().ok()?;
    let mult: i64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Flattens nested TOML tables into dotted paths (`[master_key] source` -> `master_key.source`).
pub fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}
