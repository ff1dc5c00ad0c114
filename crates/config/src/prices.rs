//! What model calls cost: prices per model, per 1 000 tokens of input and of output, in one currency. The
//! pipeline prices each LLM answer's `usage` with them and stores that cost with the cached value, so the
//! statistics can say what was spent on misses and saved by hits.

use serde::Deserialize;

use crate::ConfigError;

/// `[prices]`: the currency figures are reported in, and a price per model.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Prices {
    /// ISO 4217 code money is reported in, e.g. `USD`.
    pub currency: String,
    /// One entry per model (`[[prices.models]]`); a model without one costs tokens but no money.
    #[serde(default)]
    pub models: Vec<ModelPrice>,
}

/// One model's price list entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ModelPrice {
    /// The model name as sent to the endpoint, e.g. `gpt-4o-mini`.
    pub model: String,
    /// Price of 1 000 prompt tokens, in the currency unit.
    pub input_per_1k: f64,
    /// Price of 1 000 completion tokens, in the currency unit.
    pub output_per_1k: f64,
}

impl ModelPrice {
    /// A price for `model`.
    pub fn new(model: impl Into<String>, input_per_1k: f64, output_per_1k: f64) -> Self {
        ModelPrice {
            model: model.into(),
            input_per_1k,
            output_per_1k,
        }
    }

    /// What `prompt` input and `completion` output tokens cost, in millionths of the currency unit, rounded
    /// to the nearest.
    pub fn cost_micros(&self, prompt: u64, completion: u64) -> u64 {
        // Per token in micro-units: price per 1 000 tokens × 1 000 000 / 1 000.
        let micros = prompt as f64 * self.input_per_1k * 1_000.0
            + completion as f64 * self.output_per_1k * 1_000.0;
        // Validated prices are finite and non-negative; `as` saturates anything out of range.
        micros.round() as u64
    }
}

impl Prices {
    /// `micros` millionths of the currency unit, written out with the currency: `0.004512 USD`.
    pub fn amount(&self, micros: u64) -> String {
        format!("{} {}", Self::decimal(micros), self.currency)
    }

    /// `micros` millionths of a currency unit as a decimal number with six places: `0.004512`.
    pub fn decimal(micros: u64) -> String {
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }

    /// The price of `model`, if configured.
    pub fn of(&self, model: &str) -> Option<&ModelPrice> {
        self.models.iter().find(|p| p.model == model)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.currency;
        if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
            return Err(ConfigError::invalid(
                "prices.currency",
                format!("{c:?} is not a three-letter ISO 4217 code such as USD"),
            ));
        }
        for (i, p) in self.models.iter().enumerate() {
            if p.model.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("prices.models[{i}].model"),
                    "is empty",
                ));
            }
            for (what, v) in [
                ("input_per_1k", p.input_per_1k),
                ("output_per_1k", p.output_per_1k),
            ] {
                if !v.is_finite() || !(0.0..=1_000.0).contains(&v) {
                    return Err(ConfigError::invalid(
                        format!("prices.models[{i}].{what}"),
                        format!("{v} is not a price between 0 and 1000 per 1 000 tokens"),
                    ));
                }
            }
            if self.models[..i].iter().any(|q| q.model == p.model) {
                return Err(ConfigError::invalid(
                    format!("prices.models[{i}].model"),
                    format!("{:?} is priced twice", p.model),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_rounded_micro_units() {
        let p = ModelPrice::new("m", 0.00015, 0.0006);
        // 1 000 prompt tokens: 0.00015 → 150 micro; 500 completion tokens: 0.0003 → 300 micro.
        assert_eq!(p.cost_micros(1_000, 500), 450);
        assert_eq!(p.cost_micros(1, 1), 1); // 0.15 + 0.6 = 0.75 → 1
        assert_eq!(p.cost_micros(0, 0), 0);
    }

    #[test]
    fn amounts_are_written_with_six_decimals_and_the_currency() {
        let p = Prices {
            currency: "EUR".into(),
            models: vec![],
        };
        assert_eq!(p.amount(4_512), "0.004512 EUR");
        assert_eq!(p.amount(12_000_001), "12.000001 EUR");
        assert_eq!(p.amount(0), "0.000000 EUR");
    }

    #[test]
    fn bad_prices_name_their_key() {
        let mut prices = Prices {
            currency: "usd".into(),
            models: vec![],
        };
        assert!(
            prices
                .validate()
                .unwrap_err()
                .to_string()
                .contains("prices.currency")
        );
        prices.currency = "EUR".into();
        prices.models = vec![ModelPrice::new("a", f64::NAN, 0.0)];
        assert!(
            prices
                .validate()
                .unwrap_err()
                .to_string()
                .contains("prices.models[0].input_per_1k")
        );
        prices.models = vec![
            ModelPrice::new("a", 0.1, 0.2),
            ModelPrice::new("a", 0.1, 0.2),
        ];
        assert!(
            prices
                .validate()
                .unwrap_err()
                .to_string()
                .contains("priced twice")
        );
    }
}
