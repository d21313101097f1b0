//! The benchmark's load generator: open-loop sends on a fixed schedule (latency measured from the
//! scheduled time, so a slow server cannot hide its queue: no coordinated omission), closed-loop
//! maximum throughput, and streamed requests timed chunk by chunk; the same code drives the
//! direct path (app -> fake provider) and the gateway path (app -> pairgate -> fake provider).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use pairgate_protocol::keys::SigningKey;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

/// A new latency histogram in microseconds (1 µs to 10 min, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// How an app signs its requests to the gateway: a fresh DPoP proof per request, carrying the
/// access token's hash and the body's digest.
#[derive(Debug)]
pub struct Signer {
    pub key: SigningKey,
    pub token: String,
    /// The proof's `htu`: the gateway's public URL of the route.
    pub htu: String,
}

impl Signer {
    pub fn sign(&self, body: &[u8]) -> String {
        let jti = crate::app::jti();
        pairgate_protocol::dpop::create_proof(
            &self.key,
            &pairgate_protocol::dpop::ProofInput {
                htm: "POST",
                htu: &self.htu,
                iat: crate::app::now(),
                jti: &jti,
                access_token: Some(&self.token),
                nonce: None,
                body: Some(body),
            },
        )
    }
}

/// One way to send the benchmark's request: straight to the fake, or signed through the gateway.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: &'static str,
    pub client: reqwest::Client,
    pub url: String,
    pub body: Arc<[u8]>,
    auth: HeaderValue,
    signer: Option<Arc<Signer>>,
}

impl Route {
    /// Direct to the fake provider with the provider key as a bearer token.
    pub fn direct(client: reqwest::Client, url: String, body: &[u8], key: &str) -> Route {
        Route {
            name: "direct",
            client,
            url,
            body: body.into(),
            auth: HeaderValue::from_str(&format!("Bearer {key}")).expect("ascii key"),
            signer: None,
        }
    }

    /// Through the nginx one-hop baseline, which injects the provider key itself (the client's
    /// `Authorization` is replaced).
    pub fn nginx(client: reqwest::Client, url: String, body: &[u8]) -> Route {
        Route {
            name: "nginx",
            client,
            url,
            body: body.into(),
            auth: HeaderValue::from_static("Bearer replaced-by-nginx"),
            signer: None,
        }
    }

    /// Through the gateway, signed by `signer`.
    pub fn gateway(client: reqwest::Client, url: String, body: &[u8], signer: Signer) -> Route {
        Route {
            name: "gateway",
            client,
            url,
            body: body.into(),
            auth: HeaderValue::from_str(&format!("DPoP {}", signer.token)).expect("ascii token"),
            signer: Some(Arc::new(signer)),
        }
    }

    /// The same route with another body (the streamed request).
    pub fn with_body(&self, body: &[u8]) -> Route {
        Route {
            body: body.into(),
            ..self.clone()
        }
    }

    /// Proofs for `n` requests, signed now (outside the timed window), and the mean time one
    /// signature took. The direct route needs none.
    pub fn presign(&self, n: usize) -> (Vec<Option<String>>, Duration) {
        let Some(signer) = &self.signer else {
            return (vec![None; n], Duration::ZERO);
        };
        let start = Instant::now();
        let proofs: Vec<Option<String>> = (0..n).map(|_| Some(signer.sign(&self.body))).collect();
        let mean = start.elapsed() / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        (proofs, mean)
    }

    /// A proof signed now (the warm-up signs inline, as an app does).
    pub fn sign_now(&self) -> Option<String> {
        self.signer.as_ref().map(|s| s.sign(&self.body))
    }

    fn request(&self, proof: Option<String>) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .post(&self.url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(self.body.to_vec());
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        req
    }

    /// Sends one request and reads the whole answer; `Err` describes a failure.
    pub async fn send(&self, proof: Option<String>) -> Result<(), String> {
        let res = self
            .request(proof)
            .send()
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = res.status();
        let body = res.bytes().await.map_err(|e| format!("body: {e}"))?;
        if status.is_success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&body);
            Err(format!(
                "{status}: {}",
                text.chars().take(200).collect::<String>()
            ))
        }
    }
}

/// What one phase of load measured.
#[derive(Debug, Clone)]
pub struct Phase {
    pub route: &'static str,
    /// Requests per second asked for (`None`: as fast as possible).
    pub rate: Option<u32>,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    /// From the first scheduled send to the last answer.
    pub elapsed: Duration,
    /// Latency of answered requests (µs), from the scheduled send time.
    pub latency: Histogram<u64>,
    /// A few error descriptions, for the report.
    pub sample_errors: Vec<String>,
    /// Mean time to sign one proof (gateway route), measured while pre-signing.
    pub sign_mean: Duration,
    /// Gateway requests whose proof was signed during the phase, inline, because the proofs
    /// signed before it ran out ([`closed_loop`]; 0 elsewhere).
    pub signed_inline: u64,
    /// CPU time (user + system, every thread) the gateway process used during the phase, where
    /// measured ([`super::setup::cpu_during`]).
    pub gateway_cpu: Option<Duration>,
    /// The gateway threads' context switches during the phase, where measured.
    pub gateway_switches: Option<Switches>,
}

/// Context switches of a process's threads (voluntary and not), by kind of thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Switches {
    /// The tokio runtime's workers.
    pub workers: u64,
    /// sqlx's SQLite worker threads (one per connection).
    pub sqlite: u64,
    /// Every other thread (tokio's blocking pool, the plugin epoch ticker, ...).
    pub other: u64,
}

impl Switches {
    pub fn total(&self) -> u64 {
        self.workers + self.sqlite + self.other
    }

    /// What happened between `earlier` and this reading.
    pub fn since(&self, earlier: Switches) -> Switches {
        Switches {
            workers: self.workers.saturating_sub(earlier.workers),
            sqlite: self.sqlite.saturating_sub(earlier.sqlite),
            other: self.other.saturating_sub(earlier.other),
        }
    }
}

impl Phase {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The gateway threads' context switches per answered request, where measured.
    pub fn switches_per_request(&self) -> Option<f64> {
        self.gateway_switches
            .map(|n| n.total() as f64 / (self.ok + self.errors).max(1) as f64)
    }

    /// [`Phase::switches_per_request`] by kind of thread: tokio workers, SQLite threads, others.
    pub fn switches_per_request_by_thread(&self) -> Option<[f64; 3]> {
        let n = (self.ok + self.errors).max(1) as f64;
        self.gateway_switches.map(|s| {
            [
                s.workers as f64 / n,
                s.sqlite as f64 / n,
                s.other as f64 / n,
            ]
        })
    }

    /// The gateway's CPU time per answered request (µs), where measured.
    pub fn cpu_per_request_us(&self) -> Option<f64> {
        self.gateway_cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / (self.ok + self.errors).max(1) as f64)
    }
}

#[derive(Debug)]
struct Tally {
    latency: Mutex<Histogram<u64>>,
    ok: AtomicU64,
    errors: AtomicU64,
    sample: Mutex<Vec<String>>,
}

impl Tally {
    fn new() -> Arc<Tally> {
        Arc::new(Tally {
            latency: Mutex::new(histogram()),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            sample: Mutex::new(Vec::new()),
        })
    }

    fn record(&self, result: Result<(), String>, latency: Duration) {
        match result {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut h) = self.latency.lock() {
                    h.saturating_record(micros(latency));
                }
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut s) = self.sample.lock()
                    && s.len() < 5
                {
                    s.push(e);
                }
            }
        }
    }

    fn phase(
        &self,
        route: &'static str,
        rate: Option<u32>,
        sent: u64,
        elapsed: Duration,
        sign_mean: Duration,
    ) -> Phase {
        Phase {
            route,
            rate,
            sent,
            ok: self.ok.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            elapsed,
            latency: self
                .latency
                .lock()
                .map(|h| h.clone())
                .unwrap_or_else(|_| histogram()),
            sample_errors: self.sample.lock().map(|s| s.clone()).unwrap_or_default(),
            gateway_cpu: None,
            gateway_switches: None,
            sign_mean,
            signed_inline: 0,
        }
    }
}

/// Calls `f(i, scheduled)` for i in 0..n at `rate` per second from a dispatcher thread
/// (`std::thread::sleep` is accurate to tens of µs, tokio's timer only to 1 ms), spawning each
/// call on the current runtime; returns when every call has finished.
async fn open_loop_schedule<F, Fut>(n: usize, rate: u32, f: F) -> (Instant, Instant)
where
    F: Fn(usize, Instant) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let start = Instant::now() + Duration::from_millis(20);
    let rate = f64::from(rate.max(1));
    let handles = tokio::task::spawn_blocking(move || {
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let at = start + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            handles.push(handle.spawn(f(i, at)));
        }
        handles
    })
    .await
    .unwrap_or_default();
    for h in handles {
        let _ = h.await;
    }
    (start, Instant::now())
}

/// Sends `rate` requests per second for `duration` on a fixed schedule.
pub async fn open_loop(route: &Route, rate: u32, duration: Duration) -> Phase {
    let n = ((f64::from(rate) * duration.as_secs_f64()).round() as usize).max(1);
    let (proofs, sign_mean) = route.presign(n);
    let proofs = Arc::new(Mutex::new(proofs));
    let tally = Tally::new();
    let (r, t) = (route.clone(), tally.clone());
    let (start, end) = open_loop_schedule(n, rate, move |i, at| {
        let (r, t) = (r.clone(), t.clone());
        let proof = proofs
            .lock()
            .ok()
            .and_then(|mut p| p.get_mut(i).and_then(Option::take));
        async move {
            let result = r.send(proof).await;
            t.record(result, at.elapsed());
        }
    })
    .await;
    tally.phase(route.name, Some(rate), n as u64, end - start, sign_mean)
}

/// Proofs signed before a closed-loop phase, per second of it: more than the gateway answers
/// on this kind of machine (under 6,000 requests a second so far), so none is signed during it.
pub const PRESIGNED_PER_SEC: f64 = 10_000.0;

/// `concurrency` workers send back to back for `duration`. Each gateway request carries a fresh
/// proof (its own `jti`, `iat` at most a few seconds old) signed before the phase began, as the
/// open-loop phases do: the app's signing is the app's cost, and on this machine it would take
/// the gateway's CPUs (the direct and nginx routes sign nothing). Should the proofs run out, the
/// rest are signed inline and counted ([`Phase::signed_inline`]).
pub async fn closed_loop(route: &Route, concurrency: usize, duration: Duration) -> Phase {
    let supply = (PRESIGNED_PER_SEC * duration.as_secs_f64()).ceil() as usize;
    let (proofs, sign_mean) = route.presign(supply);
    let proofs: Arc<Vec<Mutex<Option<String>>>> =
        Arc::new(proofs.into_iter().map(Mutex::new).collect());
    let next = Arc::new(AtomicU64::new(0));
    let inline = Arc::new(AtomicU64::new(0));
    let tally = Tally::new();
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (r, t, sent) = (route.clone(), tally.clone(), sent.clone());
        let (proofs, next, inline) = (proofs.clone(), next.clone(), inline.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let began = Instant::now();
                sent.fetch_add(1, Ordering::Relaxed);
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let proof = match proofs.get(i) {
                    Some(slot) => slot.lock().ok().and_then(|mut p| p.take()),
                    None if r.signer.is_some() => {
                        inline.fetch_add(1, Ordering::Relaxed);
                        r.sign_now()
                    }
                    None => None,
                };
                let result = r.send(proof).await;
                t.record(result, began.elapsed());
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let mut phase = tally.phase(
        route.name,
        None,
        sent.load(Ordering::Relaxed),
        start.elapsed(),
        sign_mean,
    );
    phase.signed_inline = inline.load(Ordering::Relaxed);
    phase
}

/// `n` requests by `concurrency` workers, signed inline (warm-up).
pub async fn closed_loop_count(route: &Route, concurrency: usize, n: usize) -> Phase {
    let tally = Tally::new();
    let left = Arc::new(AtomicU64::new(n as u64));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (r, t, left) = (route.clone(), tally.clone(), left.clone());
        workers.push(tokio::spawn(async move {
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1))
                .is_ok()
            {
                let began = Instant::now();
                let result = r.send(r.sign_now()).await;
                t.record(result, began.elapsed());
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    tally.phase(route.name, None, n as u64, start.elapsed(), Duration::ZERO)
}

/// One request from each app (each its own grant), `concurrency` at a time, through `like`'s
/// client and body.
pub async fn each_app_once(like: &Route, apps: Vec<Signer>, concurrency: usize) -> Phase {
    let tally = Tally::new();
    let sent = apps.len() as u64;
    let queue = Arc::new(Mutex::new(apps));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (like, t, queue) = (like.clone(), tally.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(signer) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                    break;
                };
                let route =
                    Route::gateway(like.client.clone(), like.url.clone(), &like.body, signer);
                let began = Instant::now();
                let result = route.send(route.sign_now()).await;
                t.record(result, began.elapsed());
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    tally.phase("gateway", None, sent, start.elapsed(), Duration::ZERO)
}

/// What streamed requests measured.
#[derive(Debug, Clone)]
pub struct StreamPhase {
    pub route: &'static str,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    /// Scheduled send to the first `data:` event (µs).
    pub first_chunk: Histogram<u64>,
    /// Time between consecutive `data:` events of one answer (µs; 1 when they came together).
    pub gaps: Histogram<u64>,
    /// `data:` events per answer (mean).
    pub events_mean: f64,
    /// Share of events that arrived in the same read as the event before them.
    pub coalesced: f64,
    pub sample_errors: Vec<String>,
}

#[derive(Debug, Default)]
struct StreamTally {
    first: Vec<Duration>,
    gaps: Vec<Duration>,
    events: u64,
    coalesced: u64,
    ok: u64,
    errors: Vec<String>,
}

/// Reads one streamed answer, noting when each `data:` event arrived.
async fn stream_one(route: &Route, proof: Option<String>) -> Result<Vec<(Instant, usize)>, String> {
    let mut res = route
        .request(proof)
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    if !res.status().is_success() {
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        return Err(format!(
            "{status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    let mut arrivals = Vec::new();
    let mut carry = String::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| format!("stream: {e}"))? {
        let now = Instant::now();
        carry.push_str(&String::from_utf8_lossy(&chunk));
        // Complete events end with a blank line; count the `data:` events completed by this read.
        let mut complete = 0;
        while let Some(pos) = carry.find("\n\n") {
            let event: String = carry.drain(..pos + 2).collect();
            if event.lines().any(|l| l.starts_with("data:")) {
                complete += 1;
            }
        }
        if complete > 0 {
            arrivals.push((now, complete));
        }
    }
    Ok(arrivals)
}

/// Streamed requests at `rate` per second, `n` of them.
pub async fn stream(route: &Route, n: usize, rate: u32) -> StreamPhase {
    let (proofs, _) = route.presign(n);
    let proofs = Arc::new(Mutex::new(proofs));
    let tally = Arc::new(Mutex::new(StreamTally::default()));
    let (r, t) = (route.clone(), tally.clone());
    open_loop_schedule(n, rate, move |i, at| {
        let (r, t) = (r.clone(), t.clone());
        let proof = proofs
            .lock()
            .ok()
            .and_then(|mut p| p.get_mut(i).and_then(Option::take));
        async move {
            let result = stream_one(&r, proof).await;
            let Ok(mut t) = t.lock() else { return };
            match result {
                Ok(arrivals) if !arrivals.is_empty() => {
                    t.ok += 1;
                    t.first.push(arrivals[0].0.saturating_duration_since(at));
                    let mut previous: Option<Instant> = None;
                    for (when, count) in arrivals {
                        if let Some(p) = previous {
                            t.gaps.push(when.saturating_duration_since(p));
                        }
                        t.events += count as u64;
                        t.coalesced += count as u64 - 1;
                        for _ in 1..count {
                            t.gaps.push(Duration::ZERO);
                        }
                        previous = Some(when);
                    }
                }
                Ok(_) => t.errors.push("a stream with no data event".into()),
                Err(e) => t.errors.push(e),
            }
        }
    })
    .await;
    let t = tally
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    let mut first_chunk = histogram();
    let mut gaps = histogram();
    for d in &t.first {
        first_chunk.saturating_record(micros(*d));
    }
    for d in &t.gaps {
        gaps.saturating_record(micros(*d));
    }
    StreamPhase {
        route: route.name,
        sent: n as u64,
        ok: t.ok,
        errors: t.errors.len() as u64,
        first_chunk,
        gaps,
        events_mean: t.events as f64 / (t.ok.max(1)) as f64,
        coalesced: t.coalesced as f64 / (t.events.max(1)) as f64,
        sample_errors: t.errors.into_iter().take(5).collect(),
    }
}
