//! The order on policies ([`GrantPolicy::is_within`]) and the meet used at consent ([`GrantPolicy::narrow`]).
//!
//! `a.is_within(b)` is *sound*: when it returns `true`, every request [`crate::check`]
//! allows under `a` is allowed under `b` with at most the same output tokens, every limit
//! of `a` is at least as tight as `b`'s, and every resource plugin `a` can reach gets the
//! same limits object it gets under `b`. It is conservative (may say `false` for policies
//! that are in fact narrower), reflexive and transitive.

use std::collections::BTreeMap;

use super::{Budget, GrantPolicy, OutputMode, endpoint};
use crate::{glob, net};

/// Provider entries are exact ids or `*` (no other globbing), see [`crate::check`].
fn provider_within(inner: &str, outer: &str) -> bool {
    outer == "*" || inner == outer
}

/// Every entry of `inner` is within some entry of `outer`.
fn list_within(inner: &[String], outer: &[String], within: fn(&str, &str) -> bool) -> bool {
    inner.iter().all(|i| outer.iter().any(|o| within(i, o)))
}

/// A limit where `None` means unlimited: `inner <= outer`.
fn limit_within<T: Ord>(inner: Option<T>, outer: Option<T>) -> bool {
    match (inner, outer) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(i), Some(o)) => i <= o,
    }
}

fn budget_within(inner: &Budget, outer: &Budget) -> bool {
    limit_within(inner.daily, outer.daily)
        && limit_within(inner.monthly, outer.monthly)
        && limit_within(inner.lifetime, outer.lifetime)
}

/// `inner` may clamp only where `outer` would clamp too (or has no maximum at all).
fn mode_within(inner: &GrantPolicy, outer: &GrantPolicy) -> bool {
    outer.max_output_tokens.is_none()
        || inner.output_tokens_mode == OutputMode::Reject
        || outer.output_tokens_mode == OutputMode::Clamp
}

/// `self_ips` allows no address that `outer_ips` refuses (empty = any address).
fn ips_within(inner: &[String], outer: &[String]) -> bool {
    outer.is_empty() || (!inner.is_empty() && list_within(inner, outer, net::entry_within))
}

/// `true` when some endpoint of `endpoints` may reach resource plugin `plugin`.
fn reaches_plugin(endpoints: &[String], plugin: &str) -> bool {
    let plugin_glob = endpoint::plugin_glob(plugin);
    endpoints.iter().any(|e| glob::may_overlap(e, &plugin_glob))
}

/// For every plugin `outer` configures and `inner` can reach, `inner` passes the same object.
fn resources_within(inner: &GrantPolicy, outer: &GrantPolicy) -> bool {
    outer.resources.iter().all(|(plugin, limits)| {
        inner.resources.get(plugin) == Some(limits) || !reaches_plugin(&inner.endpoints, plugin)
    })
}

fn min_limit<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Entries allowed by both lists that the relation can express: for each pair, the one
/// within the other. Entries within another kept entry are dropped (same language).
fn intersect_lists(
    requested: &[String],
    owner: &[String],
    within: fn(&str, &str) -> bool,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for o in owner {
        for r in requested {
            let candidate = if within(o, r) {
                o
            } else if within(r, o) {
                r
            } else {
                continue;
            };
            if out.iter().any(|kept| within(candidate, kept)) {
                continue;
            }
            out.retain(|kept| !within(kept, candidate));
            out.push(candidate.clone());
        }
    }
    out
}

impl GrantPolicy {
    /// `true` when `self` grants nothing `outer` does not (sound, conservative).
    ///
    /// * A policy that [grants nothing](GrantPolicy::grants_nothing) is within every policy.
    /// * Every provider, model and endpoint entry of `self` is within an entry of `outer`
    ///   ([`glob::is_within`] for models and endpoints; providers are equal or `outer`
    ///   has `*`). Coverage by a union of several outer entries is not recognised.
    /// * Every numeric limit and budget of `self` is `<=` `outer`'s (`None` = unlimited).
    /// * `self` clamps output tokens only if `outer` has no maximum or clamps too.
    /// * Flags: `allow_*` of `self` imply `outer`'s; `require_body_hash` of `outer`
    ///   implies `self`'s.
    /// * The validity window of `self` lies inside `outer`'s.
    /// * If `outer` restricts `source_ips`, every block of `self` is inside a block of
    ///   `outer` (an empty list means any address, so it is not within a non-empty one).
    /// * For each plugin in `outer.resources` that an endpoint of `self` may reach,
    ///   `self.resources` holds an equal object (limits objects are opaque; a plugin
    ///   absent from `outer` is unconstrained by `outer`).
    pub fn is_within(&self, outer: &GrantPolicy) -> bool {
        if self.grants_nothing() {
            return true;
        }
        list_within(&self.providers, &outer.providers, provider_within)
            && list_within(&self.models, &outer.models, glob::is_within)
            && list_within(&self.endpoints, &outer.endpoints, glob::is_within)
            && limit_within(self.max_output_tokens, outer.max_output_tokens)
            && mode_within(self, outer)
            && (!self.allow_streaming || outer.allow_streaming)
            && (!self.allow_tools || outer.allow_tools)
            && (!self.allow_images || outer.allow_images)
            && limit_within(self.requests_per_minute, outer.requests_per_minute)
            && limit_within(self.requests_per_day, outer.requests_per_day)
            && limit_within(self.tokens_per_minute, outer.tokens_per_minute)
            && limit_within(self.max_concurrent, outer.max_concurrent)
            && budget_within(&self.token_budget, &outer.token_budget)
            && budget_within(&self.cost_budget_micros, &outer.cost_budget_micros)
            && (outer.not_before.is_none()
                || self.not_before.is_some_and(|s| Some(s) >= outer.not_before))
            && limit_within(self.expires_at, outer.expires_at)
            && ips_within(&self.source_ips, &outer.source_ips)
            && (self.require_body_hash || !outer.require_body_hash)
            && resources_within(self, outer)
    }

    /// The policy granted when the owner approves the app's `requested` policy with the
    /// edits in `owner`: their intersection, always within both (`is_within` holds for
    /// each; a property test checks this).
    ///
    /// * Lists: for each pair of entries, the one within the other. Where the
    ///   intersection of two globs is not expressible (neither within the other), the
    ///   pair contributes nothing, so what survives are the owner's entries within the
    ///   request and the request's entries within the owner's.
    /// * Limits and budgets: the smaller; the validity window: the overlap; flags: both
    ///   must allow; `require_body_hash`: either requires; output mode: `reject` if
    ///   either rejects.
    /// * `source_ips`: the blocks inside a block of the other side (blocks nest or are
    ///   disjoint, so this is exact).
    /// * `resources`: the union; where both sides configure a plugin differently, the
    ///   owner's object is kept and every endpoint entry that may reach that plugin is
    ///   dropped (opaque objects cannot be intersected).
    /// * When the windows or the address sets do not overlap, the result
    ///   [grants nothing](GrantPolicy::grants_nothing) (its lists are empty; its window
    ///   and addresses are the owner's so it still validates).
    ///
    /// When both inputs validate, so does the result.
    pub fn narrow(requested: &GrantPolicy, owner: &GrantPolicy) -> GrantPolicy {
        let (r, o) = (requested, owner);
        let mut resources = BTreeMap::new();
        let mut conflicts = Vec::new();
        for (plugin, limits) in &o.resources {
            if r.resources.get(plugin).is_some_and(|rl| rl != limits) {
                conflicts.push(plugin.clone());
            }
            resources.insert(plugin.clone(), limits.clone());
        }
        for (plugin, limits) in &r.resources {
            resources
                .entry(plugin.clone())
                .or_insert_with(|| limits.clone());
        }
        let mut endpoints = intersect_lists(&r.endpoints, &o.endpoints, glob::is_within);
        endpoints.retain(|e| {
            conflicts
                .iter()
                .all(|plugin| !glob::may_overlap(e, &endpoint::plugin_glob(plugin)))
        });

        let source_ips = match (r.source_ips.is_empty(), o.source_ips.is_empty()) {
            (true, _) => o.source_ips.clone(),
            (false, true) => r.source_ips.clone(),
            (false, false) => intersect_lists(&r.source_ips, &o.source_ips, net::entry_within),
        };
        let ips_disjoint =
            source_ips.is_empty() && !(r.source_ips.is_empty() && o.source_ips.is_empty());

        let not_before = r.not_before.max(o.not_before);
        let expires_at = min_limit(r.expires_at, o.expires_at);
        let window_empty = matches!((not_before, expires_at), (Some(nb), Some(exp)) if nb >= exp);

        let either_rejects = r.output_tokens_mode == OutputMode::Reject
            || o.output_tokens_mode == OutputMode::Reject;
        let mut out = GrantPolicy {
            providers: intersect_lists(&r.providers, &o.providers, provider_within),
            models: intersect_lists(&r.models, &o.models, glob::is_within),
            endpoints,
            max_output_tokens: min_limit(r.max_output_tokens, o.max_output_tokens),
            output_tokens_mode: if either_rejects {
                OutputMode::Reject
            } else {
                OutputMode::Clamp
            },
            allow_streaming: r.allow_streaming && o.allow_streaming,
            allow_tools: r.allow_tools && o.allow_tools,
            allow_images: r.allow_images && o.allow_images,
            requests_per_minute: min_limit(r.requests_per_minute, o.requests_per_minute),
            requests_per_day: min_limit(r.requests_per_day, o.requests_per_day),
            tokens_per_minute: min_limit(r.tokens_per_minute, o.tokens_per_minute),
            max_concurrent: min_limit(r.max_concurrent, o.max_concurrent),
            token_budget: Budget::min(&r.token_budget, &o.token_budget),
            cost_budget_micros: Budget::min(&r.cost_budget_micros, &o.cost_budget_micros),
            not_before,
            expires_at,
            source_ips,
            require_body_hash: r.require_body_hash || o.require_body_hash,
            resources,
        };
        if window_empty || ips_disjoint {
            out.providers.clear();
            out.models.clear();
            out.endpoints.clear();
            if window_empty {
                (out.not_before, out.expires_at) = (o.not_before, o.expires_at);
            }
            if ips_disjoint {
                out.source_ips.clone_from(&o.source_ips);
            }
        }
        out
    }
}

impl Budget {
    /// The tighter of two budgets, window by window.
    pub fn min(a: &Budget, b: &Budget) -> Budget {
        Budget {
            daily: min_limit(a.daily, b.daily),
            monthly: min_limit(a.monthly, b.monthly),
            lifetime: min_limit(a.lifetime, b.lifetime),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: serde_json::Value) -> GrantPolicy {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn within_table() {
        let cases: Vec<(serde_json::Value, serde_json::Value, bool)> = vec![
            (json!({}), json!({}), true),
            (json!({"providers": ["openai"]}), json!({}), true),
            (json!({}), json!({"providers": ["openai"]}), false),
            (
                json!({"models": ["openai/gpt-4o*"]}),
                json!({"models": ["openai/*"]}),
                true,
            ),
            (
                json!({"models": ["openai/*"]}),
                json!({"models": ["openai/gpt-4o*"]}),
                false,
            ),
            (json!({"endpoints": ["chat"]}), json!({}), true),
            (
                json!({"endpoints": ["resource:resend/send"]}),
                json!({}),
                false,
            ),
            (
                json!({"endpoints": ["resource:resend/send"]}),
                json!({"endpoints": ["resource:*"]}),
                true,
            ),
            (
                json!({"max_output_tokens": 10}),
                json!({"max_output_tokens": 20}),
                true,
            ),
            (
                json!({"max_output_tokens": 30}),
                json!({"max_output_tokens": 20}),
                false,
            ),
            (json!({}), json!({"max_output_tokens": 20}), false),
            (
                json!({"max_output_tokens": 10}),
                json!({"max_output_tokens": 20, "output_tokens_mode": "reject"}),
                false,
            ),
            (
                json!({"max_output_tokens": 10, "output_tokens_mode": "reject"}),
                json!({"max_output_tokens": 20, "output_tokens_mode": "reject"}),
                true,
            ),
            (
                json!({"output_tokens_mode": "reject", "max_output_tokens": 5}),
                json!({}),
                true,
            ),
            (json!({"allow_tools": false}), json!({}), true),
            (json!({}), json!({"allow_images": false}), false),
            (
                json!({"requests_per_minute": 5}),
                json!({"requests_per_minute": 5}),
                true,
            ),
            (
                json!({"tokens_per_minute": 6}),
                json!({"tokens_per_minute": 5}),
                false,
            ),
            (
                json!({"token_budget": {"daily": 5}}),
                json!({"token_budget": {"monthly": 5}}),
                false,
            ),
            (
                json!({"cost_budget_micros": {"lifetime": 5}}),
                json!({}),
                true,
            ),
            (
                json!({"not_before": 10, "expires_at": 20}),
                json!({"not_before": 5, "expires_at": 30}),
                true,
            ),
            (
                json!({"not_before": 1, "expires_at": 20}),
                json!({"not_before": 5}),
                false,
            ),
            (json!({"expires_at": 20}), json!({"expires_at": 10}), false),
            (json!({"not_before": 5}), json!({"expires_at": 10}), false),
            (
                json!({"source_ips": ["10.1.0.0/16"]}),
                json!({"source_ips": ["10.0.0.0/8"]}),
                true,
            ),
            (json!({}), json!({"source_ips": ["10.0.0.0/8"]}), false),
            (json!({"source_ips": ["10.0.0.0/8"]}), json!({}), true),
            (
                json!({"source_ips": ["2001:db8::1"]}),
                json!({"source_ips": ["10.0.0.0/8"]}),
                false,
            ),
            (json!({"require_body_hash": true}), json!({}), true),
            (json!({}), json!({"require_body_hash": true}), false),
            // resources: equal objects, outer absent, or plugin unreachable
            (
                json!({"endpoints": ["resource:resend/*"], "resources": {"resend": {"max_recipients": 5}}}),
                json!({"endpoints": ["resource:*"], "resources": {"resend": {"max_recipients": 5}}}),
                true,
            ),
            (
                json!({"endpoints": ["resource:resend/*"], "resources": {"resend": {"max_recipients": 2}}}),
                json!({"endpoints": ["resource:*"], "resources": {"resend": {"max_recipients": 5}}}),
                false,
            ),
            (
                json!({"endpoints": ["resource:resend/*"]}),
                json!({"endpoints": ["resource:*"], "resources": {"resend": {"max_recipients": 5}}}),
                false,
            ),
            (
                json!({"endpoints": ["resource:resend/*"], "resources": {"resend": {"max_recipients": 2}}}),
                json!({"endpoints": ["resource:*"]}),
                true,
            ),
            (
                json!({"endpoints": ["chat"]}),
                json!({"endpoints": ["*"], "resources": {"resend": {"x": 1}}}),
                true,
            ),
            // a policy granting nothing is within anything
            (
                json!({"endpoints": [], "max_output_tokens": 99}),
                json!({"providers": [], "max_output_tokens": 1}),
                true,
            ),
        ];
        for (inner, outer, want) in cases {
            assert_eq!(
                policy(inner.clone()).is_within(&policy(outer.clone())),
                want,
                "{inner} within {outer}"
            );
        }
    }

    #[test]
    fn narrow_intersects_lists_and_limits() {
        let requested = policy(json!({
            "providers": ["*"], "models": ["openai/gpt-4o*", "anthropic/*"], "endpoints": ["chat", "embeddings"],
            "max_output_tokens": 4000, "requests_per_minute": 60, "token_budget": {"daily": 1000},
            "allow_tools": false, "not_before": 100, "source_ips": ["10.0.0.0/8"]
        }));
        let owner = policy(json!({
            "providers": ["openai"], "models": ["openai/*", "anthropic/claude-3*", "mistral/*"], "endpoints": ["chat", "models"],
            "max_output_tokens": 1000, "output_tokens_mode": "reject", "token_budget": {"monthly": 9000},
            "expires_at": 500, "source_ips": ["10.1.0.0/16", "192.168.0.0/16"], "require_body_hash": true
        }));
        let n = GrantPolicy::narrow(&requested, &owner);
        assert_eq!(n.providers, ["openai"]);
        assert_eq!(n.models, ["openai/gpt-4o*", "anthropic/claude-3*"]);
        assert_eq!(n.endpoints, ["chat"]);
        assert_eq!(n.max_output_tokens, Some(1000));
        assert_eq!(n.output_tokens_mode, OutputMode::Reject);
        assert_eq!(n.requests_per_minute, Some(60));
        assert_eq!(
            n.token_budget,
            Budget {
                daily: Some(1000),
                monthly: Some(9000),
                lifetime: None
            }
        );
        assert!(!n.allow_tools && n.allow_streaming && n.require_body_hash);
        assert_eq!((n.not_before, n.expires_at), (Some(100), Some(500)));
        assert_eq!(n.source_ips, ["10.1.0.0/16"]);
        assert!(n.is_within(&requested) && n.is_within(&owner));
        assert!(n.validate().is_ok());
    }

    #[test]
    fn narrow_with_inexpressible_glob_keeps_nothing_for_that_pair() {
        let requested = policy(json!({"models": ["openai/*-mini"]}));
        let owner = policy(json!({"models": ["openai/gpt-4o*", "openai/gpt-4o-mini"]}));
        let n = GrantPolicy::narrow(&requested, &owner);
        assert_eq!(n.models, ["openai/gpt-4o-mini"]);
        assert!(n.is_within(&requested) && n.is_within(&owner));
    }

    #[test]
    fn narrow_disjoint_windows_and_addresses_grant_nothing() {
        let cases = [
            (
                json!({"not_before": 0, "expires_at": 10}),
                json!({"not_before": 20, "expires_at": 30}),
            ),
            (
                json!({"source_ips": ["10.0.0.0/8"]}),
                json!({"source_ips": ["192.168.0.0/16"]}),
            ),
        ];
        for (r, o) in cases {
            let (r, o) = (policy(r), policy(o));
            let n = GrantPolicy::narrow(&r, &o);
            assert!(n.grants_nothing());
            assert!(n.is_within(&r) && n.is_within(&o));
            assert!(n.validate().is_ok(), "{n:?}");
        }
    }

    #[test]
    fn narrow_resource_conflict_drops_the_plugin_endpoints() {
        let requested = policy(json!({
            "endpoints": ["chat", "resource:resend/*", "resource:s3/get"],
            "resources": {"resend": {"max_recipients": 5}, "s3": {"bucket": "a"}}
        }));
        let owner = policy(json!({
            "endpoints": ["chat", "resource:*"],
            "resources": {"resend": {"max_recipients": 2}, "slack": {"channels": ["x"]}}
        }));
        let n = GrantPolicy::narrow(&requested, &owner);
        assert_eq!(n.endpoints, ["chat", "resource:s3/get"]);
        assert_eq!(
            serde_json::to_value(&n.resources).unwrap(),
            json!({"resend": {"max_recipients": 2}, "s3": {"bucket": "a"}, "slack": {"channels": ["x"]}})
        );
        assert!(n.is_within(&requested) && n.is_within(&owner));
    }

    #[test]
    fn narrow_of_equal_policies_is_the_policy() {
        let p = policy(
            json!({"models": ["openai/*"], "source_ips": ["10.0.0.0/8"], "max_output_tokens": 5}),
        );
        assert_eq!(GrantPolicy::narrow(&p, &p), p);
        assert_eq!(
            GrantPolicy::narrow(&GrantPolicy::default(), &GrantPolicy::default()),
            GrantPolicy::default()
        );
    }
}
