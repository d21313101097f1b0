//! Limits properties: GCRA bound and exact retry, reservation overspend bound, windows against a naive calendar, cost rounding.

use proptest::prelude::*;
use serde_json::json;

use crate::limits::{
    Counter, Gcra, Prices, Usage, Window, civil_from_days, cost_micros, estimate_prompt_tokens,
    release, reserve, settle, try_reserve, window_ends_at, window_key,
};

fn gcra() -> impl Strategy<Value = Gcra> {
    (1u64..20, 1u64..5_000).prop_map(|(n, period_ms)| Gcra::per_period(n, period_ms))
}

/// `(ms since the previous attempt, cost)` per attempt.
fn attempts() -> impl Strategy<Value = Vec<(i64, u32)>> {
    prop::collection::vec((0i64..400, 0u32..4), 1..60)
}

/// Run attempts from `start_ms`; returns the admitted `(now_ms, cost)` and the final state.
fn run(g: &Gcra, start_ms: i64, attempts: &[(i64, u32)]) -> (Vec<(i64, u32)>, Option<i64>) {
    let (mut now, mut tat, mut admitted) = (start_ms, None, Vec::new());
    for &(dt, cost) in attempts {
        now += dt;
        if let Ok(new_tat) = g.check(tat, now, cost) {
            tat = Some(new_tat);
            admitted.push((now, cost));
        }
    }
    (admitted, tat)
}

/// Naive calendar: walk years and months from 1970.
fn naive_civil(mut days: i64) -> (i64, u32, u32) {
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let year_len = |y: i64| if leap(y) { 366 } else { 365 };
    let mut year = 1970;
    while days < 0 {
        year -= 1;
        days += year_len(year);
    }
    while days >= year_len(year) {
        days -= year_len(year);
        year += 1;
    }
    let lens = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= lens[month] {
        days -= lens[month];
        month += 1;
    }
    (year, month as u32 + 1, days as u32 + 1)
}

/// One request of a reservation simulation.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Start a request: reserve `estimate`; it will use `estimate + overrun - underrun`.
    Start {
        estimate: u64,
        overrun: u64,
        underrun: u64,
    },
    /// Finish the in-flight request at this index (modulo), settling its usage.
    Settle(usize),
    /// Fail the in-flight request at this index (modulo), releasing it.
    Release(usize),
}

const MAX_ERROR: u64 = 10;

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        (0u64..60, 0..=MAX_ERROR, 0u64..30).prop_map(|(estimate, overrun, underrun)| Op::Start {
            estimate,
            overrun,
            underrun
        }),
        any::<usize>().prop_map(Op::Settle),
        any::<usize>().prop_map(Op::Release),
    ];
    prop::collection::vec(op, 0..80)
}

proptest! {
    #[test]
    fn gcra_never_exceeds_burst_plus_elapsed(g in gcra(), start in -1_000_000i64..1_000_000, a in attempts()) {
        let (admitted, _) = run(&g, start, &a);
        let t = i128::from(g.emission_interval_us);
        for i in 0..admitted.len() {
            let mut total = 0u64;
            for j in i..admitted.len() {
                total += u64::from(admitted[j].1);
                let elapsed_us = i128::from(admitted[j].0 - admitted[i].0) * 1000;
                let bound = i128::from(g.burst) + elapsed_us / t;
                prop_assert!(i128::from(total) <= bound, "{} units in {} us (burst {}, T {})", total, elapsed_us, g.burst, t);
            }
        }
    }

    #[test]
    fn gcra_retry_after_is_exact(g in gcra(), start in -1_000_000i64..1_000_000, a in attempts(), cost in 1u32..4) {
        let (admitted, tat) = run(&g, start, &a);
        let now = start + a.iter().map(|x| x.0).sum::<i64>();
        match g.check(tat, now, cost) {
            Ok(_) => prop_assert!(cost <= g.burst),
            Err(r) if cost > g.burst => prop_assert_eq!(r.ms, u64::MAX),
            Err(r) => {
                prop_assert!(r.ms >= 1 && !admitted.is_empty());
                let at = now + i64::try_from(r.ms).unwrap();
                prop_assert!(g.check(tat, at, cost).is_ok(), "retry at +{} ms refused", r.ms);
                prop_assert!(g.check(tat, at - 1, cost).is_err(), "retry_after {} not minimal", r.ms);
            }
        }
    }

    #[test]
    fn gcra_fresh_key_admits_a_full_burst(g in gcra(), now in any::<i32>()) {
        let mut tat = None;
        for _ in 0..g.burst {
            tat = Some(g.check(tat, i64::from(now), 1).unwrap());
        }
        prop_assert!(g.check(tat, i64::from(now), 1).is_err());
    }

    #[test]
    fn reservations_bound_overspend(limit in 0u64..200, ops in ops()) {
        let mut c = Counter::default();
        // in flight: (reserved, actual, overrun)
        let mut flying: Vec<(u64, u64, u64)> = Vec::new();
        let mut bound = limit;
        for op in ops {
            match op {
                Op::Start { estimate, overrun, underrun } => {
                    let fits = c.spent + c.reserved + estimate <= limit;
                    let got = reserve(Some(limit), &mut c, estimate);
                    prop_assert_eq!(got.is_ok(), fits, "admission must be exact");
                    if let Ok(amount) = got {
                        flying.push((amount, estimate.saturating_sub(underrun) + overrun, overrun));
                        bound = limit + flying.iter().map(|f| f.2).sum::<u64>();
                    }
                }
                Op::Settle(i) if !flying.is_empty() => {
                    let (reserved, actual, _) = flying.remove(i % flying.len());
                    settle(&mut c, reserved, actual);
                }
                Op::Release(i) if !flying.is_empty() => {
                    let (reserved, _, _) = flying.remove(i % flying.len());
                    release(&mut c, reserved);
                }
                Op::Settle(_) | Op::Release(_) => {}
            }
            prop_assert_eq!(c.reserved, flying.iter().map(|f| f.0).sum::<u64>());
            prop_assert!(c.spent <= bound, "spent {} > bound {}", c.spent, bound);
            prop_assert!(c.spent <= limit + MAX_ERROR * 80);
        }
        for (reserved, actual, _) in flying.drain(..) {
            settle(&mut c, reserved, actual);
        }
        prop_assert_eq!(c.reserved, 0);
        // once everything settled, whatever still fits is admitted
        let room = limit.saturating_sub(c.spent);
        prop_assert!(try_reserve(Some(limit), &c, room).is_ok() || c.spent > limit);
        prop_assert!(try_reserve(Some(limit), &c, room + 1).is_err());
    }

    #[test]
    fn sequential_reservations_overspend_at_most_one_error(
        limit in 0u64..500,
        reqs in prop::collection::vec((0u64..60, 0..=MAX_ERROR, 0u64..30), 0..60),
    ) {
        let mut c = Counter::default();
        for (estimate, overrun, underrun) in reqs {
            if let Ok(amount) = reserve(Some(limit), &mut c, estimate) {
                settle(&mut c, amount, estimate.saturating_sub(underrun) + overrun);
            }
            prop_assert!(c.spent <= limit + MAX_ERROR);
        }
    }

    #[test]
    fn window_key_matches_a_naive_calendar(days in -110_000i64..110_000, ms_in_day in 0i64..86_400_000) {
        let (y, m, d) = naive_civil(days);
        prop_assert_eq!(civil_from_days(days), (y, m, d));
        let now = days * 86_400_000 + ms_in_day;
        let year = if y < 0 { format!("{y:05}") } else { format!("{y:04}") };
        prop_assert_eq!(window_key(Window::Day, now), format!("d:{year}-{m:02}-{d:02}"));
        prop_assert_eq!(window_key(Window::Month, now), format!("m:{year}-{m:02}"));
        let day_end = window_ends_at(Window::Day, now).unwrap();
        prop_assert_eq!(day_end, (days + 1) * 86_400_000);
        let month_end = window_ends_at(Window::Month, now).unwrap();
        prop_assert!(month_end > now);
        prop_assert_ne!(window_key(Window::Month, month_end), window_key(Window::Month, now));
        prop_assert_eq!(window_key(Window::Month, month_end - 1), window_key(Window::Month, now));
    }

    #[test]
    fn cost_rounds_up_exactly(
        input in 0u64..1 << 40, output in 0u64..1 << 40, cached in 0u64..1 << 40,
        pi in 0u64..1 << 40, po in 0u64..1 << 40, pc in prop::option::of(0u64..1 << 40),
    ) {
        let prices = Prices { input_per_million_micros: pi, output_per_million_micros: po, cached_input_per_million_micros: pc };
        let usage = Usage { input_tokens: input, output_tokens: output, cached_tokens: cached };
        let cached = cached.min(input);
        let exact = u128::from(input - cached) * u128::from(pi)
            + u128::from(cached) * u128::from(pc.unwrap_or(pi))
            + u128::from(output) * u128::from(po);
        let cost = u128::from(cost_micros(&prices, &usage));
        prop_assert!(cost * 1_000_000 >= exact);
        prop_assert!(cost == 0 || (cost - 1) * 1_000_000 < exact);
    }

    #[test]
    fn cost_is_monotonic(
        input in 0u64..1 << 40, output in 0u64..1 << 40, cached in 0u64..1 << 40,
        pi in 0u64..1 << 40, po in 0u64..1 << 40, discount in 0u64..1 << 40,
        more in 0u64..1 << 30, field in 0usize..5,
    ) {
        let pc = pi.saturating_sub(discount);
        let prices = Prices { input_per_million_micros: pi, output_per_million_micros: po, cached_input_per_million_micros: Some(pc) };
        let usage = Usage { input_tokens: input, output_tokens: output, cached_tokens: cached };
        let (mut p2, mut u2) = (prices, usage);
        match field {
            0 => u2.input_tokens += more,
            1 => u2.output_tokens += more,
            2 => p2.input_per_million_micros += more,
            3 => p2.output_per_million_micros += more,
            _ => p2.cached_input_per_million_micros = Some(pc + more),
        }
        prop_assert!(cost_micros(&prices, &usage) <= cost_micros(&p2, &u2));
        // reading more from a cache that is no dearer never costs more
        let cheaper = Usage { cached_tokens: cached.saturating_add(more), ..usage };
        prop_assert!(cost_micros(&prices, &cheaper) <= cost_micros(&prices, &usage));
    }

    #[test]
    fn estimates_grow_with_content(texts in prop::collection::vec("[a-zé ]{0,40}", 0..8), extra in "[a-z]{0,40}") {
        let messages: Vec<_> = texts.iter().map(|t| json!({"role": "user", "content": t})).collect();
        let body = json!({"messages": messages});
        let base = estimate_prompt_tokens(&body);
        let text_bytes: usize = texts.iter().map(String::len).sum();
        prop_assert!(base >= (text_bytes as u64).div_ceil(4) + 4 * texts.len() as u64);
        let mut longer = messages.clone();
        longer.push(json!({"role": "user", "content": extra}));
        let longer = json!({"messages": longer});
        prop_assert!(estimate_prompt_tokens(&longer) > base);
    }
}
