//! Budget counters in memory (local backend): reserve and settle without a database statement.
//!
//! One counter per (grant, kind, window) holds `spent` and `reserved`. A counter's `spent` is read
//! from the database the first time this process uses it (one statement for every window a
//! request lacks); from then on this process is its only writer (the local backend serves one
//! gateway process), so the book is the truth and the database follows it: an answered request's
//! spend is written by the usage ledger's group commit together with its row, and only once that
//! has committed does the book move the request's reservation into `spent` ([`Hold::commit`]).
//! A hold dropped without commit (refusal, failure, a batch the ledger gave up on) releases its
//! reservation. Reservations are never persisted: a crash releases them at once.
//!
//! The check is the one the SQL reservation made: every line must fit (`spent + reserved +
//! amount <= limit`), lines checked in (kind, window) order, all reserved or none, atomically
//! under one lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use pairgate_store::budgets::clamp_amount;
use pairgate_store::{Spend, SpendLine, Store, StoreError};

/// (grant, kind, window key).
type Key = (String, &'static str, String);

#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    spent: u64,
    reserved: u64,
}

/// Every counter this process has used.
#[derive(Debug, Default)]
pub struct Book {
    counters: Mutex<HashMap<Key, Counter>>,
}

/// One window a request reserves against.
#[derive(Debug, Clone)]
pub struct Line {
    pub kind: &'static str,
    pub window_key: String,
    pub amount: u64,
    pub limit: u64,
}

/// Which line refused, with its counter as it stood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub index: usize,
    pub spent: u64,
    pub reserved: u64,
}

/// A request's reservations, held until [`Hold::commit`] or drop (which releases them).
#[derive(Debug)]
pub struct Hold {
    book: Arc<Book>,
    grant: String,
    /// (kind, window key, reserved amount, actual usage to charge at commit)
    lines: Vec<(&'static str, String, u64, u64)>,
}

fn key(grant: &str, kind: &'static str, window: &str) -> Key {
    (grant.to_owned(), kind, window.to_owned())
}

impl Book {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Counter>> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the counters of `windows` this process has not used yet from the database.
    async fn load(
        &self,
        store: &Store,
        grant: &str,
        windows: &[(&'static str, &str)],
    ) -> Result<(), StoreError> {
        let missing: Vec<(&'static str, &str)> = {
            let counters = self.lock();
            windows
                .iter()
                .filter(|(k, w)| !counters.contains_key(&key(grant, k, w)))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let spent = store.budget_spent(grant, &missing).await?;
        let mut counters = self.lock();
        for ((kind, window), spent) in missing.into_iter().zip(spent) {
            counters
                .entry(key(grant, kind, window))
                .or_insert(Counter { spent, reserved: 0 });
        }
        Ok(())
    }

    /// Reserves every line for one request, or none (the first line in (kind, window) order
    /// that does not fit refuses).
    pub async fn reserve(
        self: &Arc<Self>,
        store: &Store,
        grant: &str,
        lines: &[Line],
    ) -> Result<Result<Hold, Refused>, StoreError> {
        let windows: Vec<_> = lines
            .iter()
            .map(|l| (l.kind, l.window_key.as_str()))
            .collect();
        self.load(store, grant, &windows).await?;
        let mut order: Vec<usize> = (0..lines.len()).collect();
        order.sort_by(|&a, &b| windows[a].cmp(&windows[b]));
        let mut counters = self.lock();
        for &i in &order {
            let l = &lines[i];
            let c = counters
                .get(&key(grant, l.kind, &l.window_key))
                .copied()
                .unwrap_or_default();
            let used = clamp_amount(c.spent).saturating_add(clamp_amount(c.reserved));
            if used.saturating_add(clamp_amount(l.amount)) > clamp_amount(l.limit) {
                return Ok(Err(Refused {
                    index: i,
                    spent: c.spent,
                    reserved: c.reserved,
                }));
            }
        }
        for l in lines {
            let c = counters
                .entry(key(grant, l.kind, &l.window_key))
                .or_default();
            c.reserved = c.reserved.saturating_add(l.amount);
        }
        Ok(Ok(Hold {
            book: Arc::clone(self),
            grant: grant.to_owned(),
            lines: lines
                .iter()
                .map(|l| (l.kind, l.window_key.clone(), l.amount, 0))
                .collect(),
        }))
    }

    /// Each window's (spent, reserved), loading counters not used yet.
    pub async fn counters(
        &self,
        store: &Store,
        grant: &str,
        windows: &[(&'static str, &str)],
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        self.load(store, grant, windows).await?;
        let counters = self.lock();
        Ok(windows
            .iter()
            .map(|(k, w)| {
                let c = counters.get(&key(grant, k, w)).copied().unwrap_or_default();
                (c.spent, c.reserved)
            })
            .collect())
    }

    /// Forgets counters of ended windows (the database's are pruned with the same keys) that
    /// hold no reservation; returns how many went.
    pub fn prune(&self, before: &[String]) -> usize {
        let mut counters = self.lock();
        let n = counters.len();
        counters.retain(|(_, _, window), c| {
            c.reserved > 0
                || !before.iter().any(|b| {
                    b.split_once(':').is_some_and(|(prefix, _)| {
                        window.split_once(':').is_some_and(|(p, _)| p == prefix)
                            && window.as_str() < b.as_str()
                    })
                })
        });
        n - counters.len()
    }

    fn release(&self, grant: &str, lines: &[(&'static str, String, u64, u64)], charge: bool) {
        let mut counters = self.lock();
        for (kind, window, reserved, actual) in lines {
            let c = counters.entry(key(grant, kind, window)).or_default();
            c.reserved = c.reserved.saturating_sub(*reserved);
            if charge {
                c.spent = c.spent.saturating_add(*actual);
            }
        }
    }
}

impl Hold {
    /// Sets what each line (in the order reserved) really used, charged at [`Hold::commit`].
    pub fn set_actual(&mut self, actual: impl Fn(usize) -> u64) {
        for (i, line) in self.lines.iter_mut().enumerate() {
            line.3 = actual(i);
        }
    }

    /// What the database must add for this hold, carried by the ledger row of `request_id`;
    /// `None` when nothing was used.
    pub fn spend(&self, request_id: &str) -> Option<Spend> {
        let lines: Vec<SpendLine> = self
            .lines
            .iter()
            .filter(|l| l.3 > 0)
            .map(|(kind, window, _, actual)| SpendLine {
                kind,
                window_key: window.clone(),
                amount: *actual,
            })
            .collect();
        (!lines.is_empty()).then(|| Spend {
            request_id: request_id.to_owned(),
            grant_id: self.grant.clone(),
            lines,
        })
    }

    /// The spend is persisted: release the reservation and add the usage to `spent`.
    pub fn commit(mut self) {
        let lines = std::mem::take(&mut self.lines);
        self.book.release(&self.grant, &lines, true);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.lines.is_empty() {
            self.book.release(&self.grant, &self.lines, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::limits::test_support::{Sql, db};

    fn line(window: &str, amount: u64, limit: u64) -> Line {
        Line {
            kind: "tokens",
            window_key: window.into(),
            amount,
            limit,
        }
    }

    #[tokio::test]
    async fn all_lines_or_none_and_a_dropped_hold_gives_its_room_back() {
        let db = db(Sql::Sqlite).await;
        let book = Arc::new(Book::default());
        let lines = [line("life", 60, 100), line("d:2026-12-06", 60, 1000)];
        let held = book.reserve(&db.store, "g", &lines).await.unwrap().unwrap();
        // the lifetime line cannot take 60 more: nothing is reserved, not even the day's
        let refused = book
            .reserve(&db.store, "g", &lines)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            refused,
            Refused {
                index: 0,
                spent: 0,
                reserved: 60
            }
        );
        let windows = [("tokens", "d:2026-12-06"), ("tokens", "life")];
        assert_eq!(
            book.counters(&db.store, "g", &windows).await.unwrap(),
            vec![(0, 60), (0, 60)]
        );
        drop(held);
        assert_eq!(
            book.counters(&db.store, "g", &windows).await.unwrap(),
            vec![(0, 0), (0, 0)]
        );
    }

    #[tokio::test]
    async fn a_committed_hold_moves_its_actual_usage_into_spent() {
        let db = db(Sql::Sqlite).await;
        let book = Arc::new(Book::default());
        let mut held = book
            .reserve(&db.store, "g", &[line("life", 60, 100)])
            .await
            .unwrap()
            .unwrap();
        held.set_actual(|_| 25);
        let spend = held.spend("req_1").unwrap();
        assert_eq!(
            (spend.request_id.as_str(), spend.lines[0].amount),
            ("req_1", 25)
        );
        held.commit();
        let windows = [("tokens", "life")];
        assert_eq!(
            book.counters(&db.store, "g", &windows).await.unwrap(),
            vec![(25, 0)]
        );
        // 25 spent + 75 fits the limit of 100; 76 does not
        let fits = book.reserve(&db.store, "g", &[line("life", 75, 100)]).await;
        assert!(fits.unwrap().is_ok());
    }

    #[tokio::test]
    async fn spent_is_read_from_the_database_once_and_ended_windows_are_pruned() {
        let db = db(Sql::Sqlite).await;
        db.store
            .add_spent(&Spend {
                request_id: String::new(),
                grant_id: "g".into(),
                lines: vec![SpendLine {
                    kind: "tokens",
                    window_key: "d:2026-12-05".into(),
                    amount: 40,
                }],
            })
            .await
            .unwrap();
        let book = Book::default();
        let windows = [("tokens", "d:2026-12-05"), ("tokens", "d:2026-12-06")];
        assert_eq!(
            book.counters(&db.store, "g", &windows).await.unwrap(),
            vec![(40, 0), (0, 0)]
        );
        assert_eq!(book.prune(&["d:2026-12-06".into()]), 1);
        assert_eq!(book.prune(&["d:2026-12-06".into()]), 0);
    }
}
