//! Policy properties: `narrow` is within both inputs, `is_within` is a sound preorder, JSON roundtrips.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;
use serde_json::json;

use crate::decide::{RequestFacts, check, model_allowed};
use crate::glob;
use crate::grant::{Budget, GrantPolicy, OutputMode};
use crate::net::{self, IpNet};

const PROVIDERS: &[&str] = &["*", "openai", "anthropic", "mistral"];
const MODELS: &[&str] = &[
    "*",
    "openai/*",
    "openai/gpt-4o*",
    "openai/gpt-4o",
    "openai/gpt-4o-mini",
    "openai/*-mini",
    "anthropic/*",
    "anthropic/claude-?",
    "*/gpt-4o",
    "mistral/large",
];
const ENDPOINTS: &[&str] = &[
    "*",
    "chat",
    "embeddings",
    "models",
    "resource:*",
    "resource:resend/*",
    "resource:resend/send",
    "resource:s3/get",
    "resource:*/get",
];
const IPS: &[&str] = &[
    "10.0.0.0/8",
    "10.0.0.0/16",
    "10.1.0.0/16",
    "10.1.2.3",
    "192.168.0.0/16",
    "0.0.0.0/0",
    "::/0",
    "2001:db8::/32",
    "2001:db8::/48",
    "2001:db8::1",
];

/// A few entries of `pool`, or (more often) just `*`: policies that let requests through.
fn list(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    let some = prop::sample::subsequence(pool, 0..=pool.len().min(4))
        .prop_map(|v| v.into_iter().map(str::to_owned).collect());
    prop_oneof![1 => Just(vec!["*".to_owned()]), 2 => some]
}

fn ip_list() -> impl Strategy<Value = Vec<String>> {
    let some = prop::sample::subsequence(IPS, 1..=3)
        .prop_map(|v| v.into_iter().map(str::to_owned).collect());
    prop_oneof![1 => Just(Vec::new()), 1 => some]
}

fn limit() -> impl Strategy<Value = Option<u32>> {
    prop::option::of(1u32..100)
}

fn budget() -> impl Strategy<Value = Budget> {
    (
        prop::option::of(1u64..1000),
        prop::option::of(1u64..1000),
        prop::option::of(1u64..1000),
    )
        .prop_map(|(daily, monthly, lifetime)| Budget {
            daily,
            monthly,
            lifetime,
        })
}

fn resources() -> impl Strategy<Value = BTreeMap<String, serde_json::Value>> {
    let value = prop::sample::select(vec![json!({}), json!({"max": 1}), json!({"max": 2})]);
    prop::collection::btree_map(
        prop::sample::select(vec!["resend".to_owned(), "s3".to_owned()]),
        value,
        0..=2,
    )
}

/// Valid policies over small pools, so that relations between them are common.
fn policy() -> impl Strategy<Value = GrantPolicy> {
    let lists = (list(PROVIDERS), list(MODELS), list(ENDPOINTS), ip_list());
    let limits = (
        limit(),
        limit(),
        limit(),
        prop::option::of(1u64..100),
        limit(),
        any::<bool>(),
    );
    let flag = || prop::bool::weighted(0.8);
    let flags = (flag(), flag(), flag(), any::<bool>());
    let window = (
        prop::option::weighted(0.4, 0i64..150),
        prop::option::weighted(0.4, 1i64..100),
    );
    (
        lists,
        limits,
        flags,
        window,
        budget(),
        budget(),
        resources(),
    )
        .prop_map(
            |(lists, limits, flags, window, token_budget, cost_budget_micros, resources)| {
                let (providers, models, endpoints, source_ips) = lists;
                let (max_output_tokens, rpm, rpd, tokens_per_minute, max_concurrent, reject) =
                    limits;
                let (allow_streaming, allow_tools, allow_images, require_body_hash) = flags;
                let (not_before, length) = window;
                GrantPolicy {
                    providers,
                    models,
                    endpoints,
                    max_output_tokens,
                    output_tokens_mode: if reject {
                        OutputMode::Reject
                    } else {
                        OutputMode::Clamp
                    },
                    allow_streaming,
                    allow_tools,
                    allow_images,
                    requests_per_minute: rpm,
                    requests_per_day: rpd,
                    tokens_per_minute,
                    max_concurrent,
                    token_budget,
                    cost_budget_micros,
                    not_before,
                    expires_at: length.map(|l| not_before.unwrap_or(0) + l),
                    source_ips,
                    require_body_hash,
                    resources,
                }
            },
        )
}

#[derive(Debug, Clone)]
struct Facts {
    provider: &'static str,
    model: Option<&'static str>,
    endpoint: &'static str,
    stream: bool,
    has_tools: bool,
    has_images: bool,
    requested_max_tokens: Option<u32>,
    source_ip: Option<IpAddr>,
    now_ms: i64,
}

impl Facts {
    fn get(&self) -> RequestFacts<'_> {
        RequestFacts {
            provider: self.provider,
            model: self.model,
            endpoint: self.endpoint,
            stream: self.stream,
            has_tools: self.has_tools,
            has_images: self.has_images,
            requested_max_tokens: self.requested_max_tokens,
            source_ip: self.source_ip,
            now_ms: self.now_ms,
        }
    }
}

const PROVIDER_NAMES: &[&str] = &["openai", "anthropic", "mistral", "other"];
const MODEL_NAMES: &[&str] = &["gpt-4o", "gpt-4o-mini", "claude-3", "large", "x/gpt-4o"];
const ENDPOINT_NAMES: &[&str] = &[
    "chat",
    "embeddings",
    "models",
    "resource:resend/send",
    "resource:s3/get",
    "resource:s3/put",
    "completions",
];
const IP_NAMES: &[&str] = &[
    "10.1.2.3",
    "10.0.0.1",
    "10.2.0.1",
    "192.168.1.1",
    "8.8.8.8",
    "2001:db8::1",
    "2001:db8:1::1",
    "2001:db9::1",
    "::ffff:10.1.2.3",
];

/// The items `keep` accepts, or all of them when it accepts none.
fn preferring<T: Copy>(items: &[T], keep: impl Fn(T) -> bool) -> Vec<T> {
    let kept: Vec<T> = items.iter().copied().filter(|&i| keep(i)).collect();
    if kept.is_empty() {
        items.to_vec()
    } else {
        kept
    }
}

/// Request facts that mostly pass the list, address and window checks of `p`, so that
/// the later checks (flags, max tokens) are reached often.
fn facts_near(p: &GrantPolicy) -> impl Strategy<Value = Facts> + use<> {
    let all_endpoints = ENDPOINT_NAMES.to_vec();
    let endpoints = preferring(ENDPOINT_NAMES, |e| {
        p.endpoints.iter().any(|g| glob::matches(g, e))
    });
    let all_pairs: Vec<(&str, &str)> = PROVIDER_NAMES
        .iter()
        .flat_map(|&pr| MODEL_NAMES.iter().map(move |&m| (pr, m)))
        .collect();
    let pairs = preferring(&all_pairs, |(pr, m)| model_allowed(p, &format!("{pr}/{m}")));
    let all_ips: Vec<IpAddr> = IP_NAMES.iter().map(|s| s.parse().unwrap()).collect();
    let ips = preferring(&all_ips, |ip| {
        p.source_ips.is_empty() || net::any_contains(&p.source_ips, ip)
    });
    let (lo, hi) = match (p.not_before.unwrap_or(0), p.expires_at.unwrap_or(300)) {
        (lo, hi) if lo < hi => (lo, hi),
        _ => (0, 300),
    };
    let endpoint =
        prop_oneof![4 => prop::sample::select(endpoints), 1 => prop::sample::select(all_endpoints)];
    let pair = prop_oneof![4 => prop::sample::select(pairs), 1 => prop::sample::select(all_pairs)];
    let ip = prop_oneof![
        4 => prop::sample::select(ips).prop_map(Some),
        1 => prop::sample::select(all_ips).prop_map(Some),
        1 => Just(None),
    ];
    let bools = (
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
    );
    let now = prop_oneof![4 => lo..hi, 1 => 0i64..300];
    (endpoint, pair, bools, prop::option::of(0u32..150), ip, now).prop_map(
        |(
            endpoint,
            (provider, model),
            (stream, has_tools, has_images, no_model),
            requested_max_tokens,
            source_ip,
            now_ms,
        )| {
            Facts {
                provider,
                model: (!no_model).then_some(model),
                endpoint,
                stream,
                has_tools,
                has_images,
                requested_max_tokens,
                source_ip,
                now_ms,
            }
        },
    )
}

/// `(inner, outer, facts near inner)` where inner differs from outer in a few fields.
fn near_miss_with_facts() -> impl Strategy<Value = (GrantPolicy, GrantPolicy, Facts)> {
    (policy(), policy(), mask()).prop_flat_map(|(b, r, m)| {
        let a = mix(&b, &r, &m);
        let f = facts_near(&a);
        (Just(a), Just(b), f)
    })
}

/// `(requested, owner, narrowed, facts near narrowed)`.
fn narrowed_with_facts() -> impl Strategy<Value = (GrantPolicy, GrantPolicy, GrantPolicy, Facts)> {
    (policy(), policy()).prop_flat_map(|(r, o)| {
        let n = GrantPolicy::narrow(&r, &o);
        let f = facts_near(&n);
        (Just(r), Just(o), Just(n), f)
    })
}

fn mask() -> impl Strategy<Value = Vec<bool>> {
    prop::collection::vec(prop::bool::weighted(0.15), 19)
}

/// `base` with the fields flagged in `mask` taken from `other`: policies that differ from
/// `base` in a few fields, within it or not.
fn mix(base: &GrantPolicy, other: &GrantPolicy, mask: &[bool]) -> GrantPolicy {
    let mut p = base.clone();
    let o = other.clone();
    let pick = |i: usize| mask.get(i).copied().unwrap_or(false);
    if pick(0) {
        p.providers = o.providers;
    }
    if pick(1) {
        p.models = o.models;
    }
    if pick(2) {
        p.endpoints = o.endpoints;
    }
    if pick(3) {
        p.max_output_tokens = o.max_output_tokens;
    }
    if pick(4) {
        p.output_tokens_mode = o.output_tokens_mode;
    }
    if pick(5) {
        p.allow_streaming = o.allow_streaming;
    }
    if pick(6) {
        p.allow_tools = o.allow_tools;
    }
    if pick(7) {
        p.allow_images = o.allow_images;
    }
    if pick(8) {
        p.requests_per_minute = o.requests_per_minute;
    }
    if pick(9) {
        p.requests_per_day = o.requests_per_day;
    }
    if pick(10) {
        p.tokens_per_minute = o.tokens_per_minute;
    }
    if pick(11) {
        p.max_concurrent = o.max_concurrent;
    }
    if pick(12) {
        p.token_budget = o.token_budget;
    }
    if pick(13) {
        p.cost_budget_micros = o.cost_budget_micros;
    }
    if pick(14) {
        p.not_before = o.not_before;
    }
    if pick(15) {
        p.expires_at = o.expires_at;
    }
    if pick(16) {
        p.source_ips = o.source_ips;
    }
    if pick(17) {
        p.require_body_hash = o.require_body_hash;
    }
    if pick(18) {
        p.resources = o.resources;
    }
    p
}

/// `None` = unlimited.
fn tokens_le(a: Option<u32>, b: Option<u32>) -> bool {
    match (a, b) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => a <= b,
    }
}

/// What `is_within` promises about [`check`].
fn assert_check_within(
    inner: &GrantPolicy,
    outer: &GrantPolicy,
    f: &Facts,
) -> Result<(), TestCaseError> {
    if let Ok(a) = check(inner, &f.get()) {
        let b = check(outer, &f.get());
        prop_assert!(b.is_ok(), "inner allows, outer denies {:?}: {:?}", b, f);
        let b = b.unwrap();
        prop_assert!(tokens_le(a.max_tokens, b.max_tokens), "{:?} > {:?}", a, b);
        if let Some((plugin, _)) = f
            .endpoint
            .strip_prefix("resource:")
            .and_then(|r| r.split_once('/'))
            && let Some(limits) = outer.resources.get(plugin)
        {
            prop_assert_eq!(
                inner.resources.get(plugin),
                Some(limits),
                "plugin {} reached with other limits",
                plugin
            );
        }
    }
    Ok(())
}

const KNOWN_FIELDS: &[&str] = &[
    "providers",
    "models",
    "endpoints",
    "max_output_tokens",
    "output_tokens_mode",
    "allow_streaming",
    "allow_tools",
    "allow_images",
    "requests_per_minute",
    "requests_per_day",
    "tokens_per_minute",
    "max_concurrent",
    "token_budget",
    "cost_budget_micros",
    "not_before",
    "expires_at",
    "source_ips",
    "require_body_hash",
    "resources",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn generated_policies_validate(p in policy()) {
        prop_assert!(p.validate().is_ok(), "{:?}", p.validate());
    }

    #[test]
    fn narrow_is_within_both(r in policy(), o in policy()) {
        let n = GrantPolicy::narrow(&r, &o);
        prop_assert!(n.is_within(&r), "narrow not within request: {:?}", n);
        prop_assert!(n.is_within(&o), "narrow not within owner: {:?}", n);
        prop_assert!(n.validate().is_ok(), "{:?}", n.validate());
    }

    #[test]
    fn narrow_allows_only_what_both_allow((r, o, n, f) in narrowed_with_facts()) {
        assert_check_within(&n, &r, &f)?;
        assert_check_within(&n, &o, &f)?;
    }

    #[test]
    fn narrow_with_itself_is_equivalent(p in policy()) {
        let n = GrantPolicy::narrow(&p, &p);
        prop_assert!(n.is_within(&p) && p.is_within(&n), "{:?}", n);
        let anywhere = GrantPolicy { source_ips: vec![], ..p.clone() };
        prop_assert_eq!(GrantPolicy::narrow(&p, &anywhere).source_ips, p.source_ips);
    }

    #[test]
    fn within_is_reflexive(p in policy()) {
        prop_assert!(p.is_within(&p));
    }

    #[test]
    fn within_is_transitive(a in policy(), b in policy(), c in policy()) {
        if a.is_within(&b) && b.is_within(&c) {
            prop_assert!(a.is_within(&c));
        }
    }

    #[test]
    fn within_is_transitive_on_narrowed_chains(x in policy(), y in policy(), c in policy()) {
        let b = GrantPolicy::narrow(&x, &c);
        let a = GrantPolicy::narrow(&y, &b);
        prop_assert!(a.is_within(&b) && b.is_within(&c));
        prop_assert!(a.is_within(&c), "a={:?}\nc={:?}", a, c);
    }

    #[test]
    fn within_is_transitive_on_near_misses(c in policy(), r1 in policy(), r2 in policy(), m1 in mask(), m2 in mask()) {
        let b = mix(&c, &r1, &m1);
        let a = mix(&b, &r2, &m2);
        if a.is_within(&b) && b.is_within(&c) {
            prop_assert!(a.is_within(&c), "a={:?}\nc={:?}", a, c);
        }
    }

    #[test]
    fn within_is_sound_for_check((a, b, f) in near_miss_with_facts()) {
        if a.is_within(&b) {
            assert_check_within(&a, &b, &f)?;
        }
    }

    #[test]
    fn cidr_containment_is_sound(
        a in 0u32.., pa in 0u8..=32, other in prop::option::of(0u32..), pb in 0u8..=32, noise in 0u32.., shift in 0u32..32,
    ) {
        let b = other.unwrap_or(a);
        let ip = a ^ (noise >> shift);
        let net = |addr: u32, prefix: u8| {
            let masked = addr & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            format!("{}/{prefix}", std::net::Ipv4Addr::from(masked)).parse::<IpNet>().unwrap()
        };
        let (inner, outer) = (net(a, pa), net(b, pb));
        let ip = IpAddr::from(std::net::Ipv4Addr::from(ip));
        if outer.contains_net(&inner) && inner.contains(ip) {
            prop_assert!(outer.contains(ip));
        }
        prop_assert!(net(a, 0).contains_net(&inner) && inner.contains_net(&inner));
        prop_assert!(inner.contains_net(&net(a, 32)) || !inner.contains(IpAddr::from(std::net::Ipv4Addr::from(a))));
    }

    #[test]
    fn within_is_sound_for_max_tokens(
        max_a in limit(), reject_a in any::<bool>(), max_b in limit(), reject_b in any::<bool>(),
        requested_max_tokens in prop::option::of(0u32..150),
    ) {
        let mode = |reject| if reject { OutputMode::Reject } else { OutputMode::Clamp };
        let a = GrantPolicy { max_output_tokens: max_a, output_tokens_mode: mode(reject_a), ..GrantPolicy::default() };
        let b = GrantPolicy { max_output_tokens: max_b, output_tokens_mode: mode(reject_b), ..GrantPolicy::default() };
        let f = Facts {
            provider: "openai",
            model: Some("gpt-4o"),
            endpoint: "chat",
            stream: false,
            has_tools: false,
            has_images: false,
            requested_max_tokens,
            source_ip: None,
            now_ms: 0,
        };
        if a.is_within(&b) {
            assert_check_within(&a, &b, &f)?;
        }
    }

    #[test]
    fn json_roundtrip(p in policy()) {
        let text = serde_json::to_string(&p).unwrap();
        let back: GrantPolicy = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, p);
    }

    #[test]
    fn unknown_fields_are_rejected(p in policy(), name in "[a-z_]{1,20}", nested in any::<bool>()) {
        prop_assume!(!KNOWN_FIELDS.contains(&name.as_str()));
        let mut v = serde_json::to_value(&p).unwrap();
        let target = if nested { &mut v["token_budget"] } else { &mut v };
        prop_assume!(!["daily", "monthly", "lifetime"].contains(&name.as_str()));
        target.as_object_mut().unwrap().insert(name, json!(1));
        prop_assert!(serde_json::from_value::<GrantPolicy>(v).is_err());
    }
}
