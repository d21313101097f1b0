//! Which price a model is charged at: the owner's prices, the plugin's catalogue, a dated snapshot's family, the owner's fallback.
//!
//! A request under a money budget must be priced before it is admitted; a model nobody can
//! price would otherwise be free. [`resolve`] looks, in this order, at:
//! 1. the owner's price list for the provider (globs, first matching entry wins);
//! 2. the plugin's catalogue, by exact id;
//! 3. the catalogue entry of the model's family when the id is a dated snapshot
//!    (`gpt-4o-2024-08-06` is priced as `gpt-4o`, `claude-sonnet-4-5-20250929` as
//!    `claude-sonnet-4-5`; see [`snapshot_family`]);
//! 4. the owner's fallback price for the provider.
//!
//! `None` means unpriced: the gateway refuses such a model for a grant with a money budget.

use crate::glob;

use super::cost::Prices;

/// One entry of an owner's price list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceEntry {
    /// Glob over the model id as the provider knows it (`gpt-4o*`), without the provider prefix.
    pub model: String,
    pub prices: Prices,
    /// Output tokens reserved for a request that bounds none; `None`: the catalogue's, or the
    /// gateway's default.
    pub max_output_tokens: Option<u32>,
}

/// A catalogue entry: prices and the model's output limit (`0`: unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueEntry {
    pub prices: Prices,
    pub max_output_tokens: u32,
}

/// Where a price came from (shown in logs and refusals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceSource {
    /// The owner's price list.
    Owner,
    /// The plugin's catalogue.
    Catalogue,
    /// The catalogue entry of this family (a dated snapshot of it).
    Family(String),
    /// The owner's fallback price.
    Fallback,
}

/// The price a model is charged at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    pub prices: Prices,
    /// The model's output limit, when known (`None` or absent: unknown).
    pub max_output_tokens: Option<u32>,
    pub source: PriceSource,
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// The family of a dated snapshot id: `gpt-4o-2024-08-06` -> `gpt-4o` (OpenAI's
/// `-YYYY-MM-DD`), `claude-sonnet-4-5-20250929` -> `claude-sonnet-4-5` (Anthropic's
/// `-YYYYMMDD`), `claude-3-5-haiku-latest` -> `claude-3-5-haiku` (Anthropic's alias).
/// `None` when the id carries no such suffix.
pub fn snapshot_family(model: &str) -> Option<&str> {
    if let Some(base) = model.strip_suffix("-latest") {
        return (!base.is_empty()).then_some(base);
    }
    let (base, last) = model.rsplit_once('-')?;
    if is_digits(last, 8) && last.starts_with("20") {
        return (!base.is_empty()).then_some(base);
    }
    // -YYYY-MM-DD: the last three dash-separated parts
    let (rest, day) = (base, last);
    let (rest, month) = rest.rsplit_once('-')?;
    let (family, year) = rest.rsplit_once('-')?;
    (is_digits(year, 4)
        && year.starts_with("20")
        && is_digits(month, 2)
        && is_digits(day, 2)
        && !family.is_empty())
    .then_some(family)
}

/// The price of `model` (see the module documentation for the order).
pub fn resolve(
    model: &str,
    owner: &[&[PriceEntry]],
    catalogue: impl Fn(&str) -> Option<CatalogueEntry>,
    fallback: Option<&PriceEntry>,
) -> Option<ModelPrice> {
    let known = |n: u32| (n > 0).then_some(n);
    if let Some(e) = owner
        .iter()
        .flat_map(|list| list.iter())
        .find(|e| glob::matches(&e.model, model))
    {
        let max_output_tokens = e
            .max_output_tokens
            .or_else(|| catalogue(model).and_then(|c| known(c.max_output_tokens)));
        return Some(ModelPrice {
            prices: e.prices,
            max_output_tokens,
            source: PriceSource::Owner,
        });
    }
    if let Some(c) = catalogue(model) {
        return Some(ModelPrice {
            prices: c.prices,
            max_output_tokens: known(c.max_output_tokens),
            source: PriceSource::Catalogue,
        });
    }
    if let Some(family) = snapshot_family(model)
        && let Some(c) = catalogue(family)
    {
        return Some(ModelPrice {
            prices: c.prices,
            max_output_tokens: known(c.max_output_tokens),
            source: PriceSource::Family(family.to_owned()),
        });
    }
    fallback.map(|f| ModelPrice {
        prices: f.prices,
        max_output_tokens: f.max_output_tokens,
        source: PriceSource::Fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(input: u64, output: u64) -> Prices {
        Prices {
            input_per_million_micros: input,
            output_per_million_micros: output,
            cached_input_per_million_micros: None,
        }
    }

    fn catalogue(id: &str) -> Option<CatalogueEntry> {
        match id {
            "gpt-4o" => Some(CatalogueEntry {
                prices: p(2_500_000, 10_000_000),
                max_output_tokens: 16_384,
            }),
            "claude-sonnet-4-5" => Some(CatalogueEntry {
                prices: p(3_000_000, 15_000_000),
                max_output_tokens: 64_000,
            }),
            _ => None,
        }
    }

    #[test]
    fn snapshot_families() {
        let cases = [
            ("gpt-4o-2024-08-06", Some("gpt-4o")),
            ("gpt-4o-mini-2024-07-18", Some("gpt-4o-mini")),
            ("claude-sonnet-4-5-20250929", Some("claude-sonnet-4-5")),
            ("claude-3-5-haiku-latest", Some("claude-3-5-haiku")),
            ("gpt-4o", None),
            ("o3", None),
            ("gpt-4-0613", None),
            ("model-1234-56-78", None),
            ("-2024-08-06", None),
            ("-latest", None),
            ("x-20241022", Some("x")),
            ("x-19991022", None),
        ];
        for (id, family) in cases {
            assert_eq!(snapshot_family(id), family, "{id}");
        }
    }

    #[test]
    fn resolution_order() {
        let owner = vec![
            PriceEntry {
                model: "gpt-4o-2024-05-13".into(),
                prices: p(5_000_000, 15_000_000),
                max_output_tokens: None,
            },
            PriceEntry {
                model: "ft:*".into(),
                prices: p(1, 2),
                max_output_tokens: Some(1_000),
            },
        ];
        let fallback = PriceEntry {
            model: "*".into(),
            prices: p(10_000_000, 30_000_000),
            max_output_tokens: Some(8_192),
        };
        let r = |m: &str, fb: Option<&PriceEntry>| resolve(m, &[&[], &owner], catalogue, fb);
        // the owner's entry beats the family, keeps the catalogue's output limit when silent
        let got = r("gpt-4o-2024-05-13", None).unwrap();
        assert_eq!(
            (got.prices, got.source, got.max_output_tokens),
            (p(5_000_000, 15_000_000), PriceSource::Owner, None)
        );
        let got = r("ft:gpt-4o:acme", None).unwrap();
        assert_eq!(got.max_output_tokens, Some(1_000));
        let got = r("gpt-4o", None).unwrap();
        assert_eq!(
            (got.source, got.max_output_tokens),
            (PriceSource::Catalogue, Some(16_384))
        );
        let got = r("gpt-4o-2024-08-06", None).unwrap();
        assert_eq!(got.source, PriceSource::Family("gpt-4o".into()));
        assert_eq!(got.prices, p(2_500_000, 10_000_000));
        assert_eq!(r("o9-preview", None), None, "unpriced without a fallback");
        let got = r("o9-preview", Some(&fallback)).unwrap();
        assert_eq!(
            (got.source, got.max_output_tokens),
            (PriceSource::Fallback, Some(8_192))
        );
    }
}
