//! Field extraction by any OpenAI-compatible chat completions endpoint (OpenAI, Azure OpenAI, vLLM, Ollama,
//! llama.cpp server …): the model is asked for a JSON object with the fields, which is then validated.

use std::time::Duration;

use async_trait::async_trait;
use fernando_cache_config::{ExposeSecret, ModelPrice, OpenAiSettings, Prices, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::{
    EngineError, EngineId, ExtractedFields, Extraction, FieldExtractor, TokenUsage,
    engine::cut_to_limit,
};

const PROMPT: &str = "You extract fields from business documents. Answer with one JSON object and nothing \
else, with exactly these keys: invoice_number (string or null), dates (array of ISO 8601 dates, \
YYYY-MM-DD), total (string like \"1234.56 EUR\" or null), vat_ids (array of strings), ibans (array of \
strings without spaces), emails (array of lowercase strings).";

/// Calls `{url}/chat/completions` with the document's text (its first `max_input_chars` characters), and
/// prices the answer's `usage` with the model's configured price.
pub struct OpenAiExtractor {
    client: reqwest::Client,
    endpoint: String,
    model: String,
    api_key: Option<SecretString>,
    timeout: Duration,
    max_input_chars: usize,
    price: Option<ModelPrice>,
}

impl std::fmt::Debug for OpenAiExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiExtractor")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    /// Absent from some servers' answers; then only the call is known, not its tokens.
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
}

/// What the model answers; lists may be missing.
#[derive(Deserialize)]
struct Answer {
    invoice_number: Option<String>,
    #[serde(default)]
    dates: Vec<String>,
    total: Option<String>,
    #[serde(default)]
    vat_ids: Vec<String>,
    #[serde(default)]
    ibans: Vec<String>,
    #[serde(default)]
    emails: Vec<String>,
}

impl OpenAiExtractor {
    /// An extractor for the configured endpoint, priced from `prices` (a model without a price costs tokens
    /// only, and says so once in the log).
    pub fn new(settings: &OpenAiSettings, prices: &Prices) -> Self {
        let price = prices.of(&settings.model).cloned();
        if price.is_none() {
            tracing::warn!(
                model = settings.model.as_str(),
                "no [[prices.models]] entry for the model: its tokens are counted, its money is not"
            );
        }
        OpenAiExtractor {
            client: reqwest::Client::new(),
            endpoint: format!("{}/chat/completions", settings.url.trim_end_matches('/')),
            model: settings.model.clone(),
            api_key: settings.api_key.clone(),
            timeout: settings.timeout,
            max_input_chars: settings.max_input_chars,
            price,
        }
    }

    fn upstream(&self, reason: impl Into<String>) -> EngineError {
        EngineError::Upstream {
            engine: format!("openai-compatible extractor ({})", self.model),
            reason: reason.into(),
        }
    }
}

#[async_trait]
impl FieldExtractor for OpenAiExtractor {
    fn id(&self) -> EngineId {
        // The model decides what is extracted; the prompt's version too.
        EngineId::new("openai", format!("{}+prompt1", self.model))
    }

    fn max_input_chars(&self) -> Option<usize> {
        Some(self.max_input_chars)
    }

    async fn extract(&self, text: &str) -> Result<Extraction, EngineError> {
        let (text, truncated) = cut_to_limit(text, Some(self.max_input_chars));
        let body = json!({
            "model": self.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": PROMPT},
                {"role": "user", "content": text},
            ],
        });
        let mut req = self.client.post(&self.endpoint).json(&body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key.expose_secret());
        }
        let resp = tokio::time::timeout(self.timeout, req.send())
            .await
            .map_err(|_| EngineError::Timeout {
                engine: "openai-compatible extractor".into(),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|e| self.upstream(format!("request failed: {e}")))?;
        let status = resp.status();
        let bytes = tokio::time::timeout(self.timeout, resp.bytes())
            .await
            .map_err(|_| EngineError::Timeout {
                engine: "openai-compatible extractor".into(),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|e| self.upstream(format!("reading the answer failed: {e}")))?;
        if !status.is_success() {
            let snippet: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            return Err(self.upstream(format!("HTTP {status}: {snippet}")));
        }
        let completion: Completion = serde_json::from_slice(&bytes)
            .map_err(|e| self.upstream(format!("not a chat completion: {e}")))?;
        let usage = completion.usage.map(|u| TokenUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        });
        let cost_micros = match (&self.price, usage) {
            (Some(p), Some(u)) => p.cost_micros(u.prompt_tokens, u.completion_tokens),
            _ => 0,
        };
        let content = completion
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| self.upstream("the answer has no message content"))?;
        // Some servers wrap JSON in a Markdown fence despite response_format.
        let json_text = content
            .trim()
            .trim_start_matches("```json")
            .trim_start_matches("```")
            .trim_end_matches("```")
            .trim();
        let answer: Answer = serde_json::from_str(json_text)
            .map_err(|e| self.upstream(format!("the model's answer is not the asked JSON: {e}")))?;
        let fields = ExtractedFields {
            invoice_number: answer.invoice_number.filter(|s| !s.trim().is_empty()),
            dates: answer.dates,
            total: answer.total.filter(|s| !s.trim().is_empty()),
            vat_ids: answer.vat_ids.into_iter().collect(),
            ibans: answer
                .ibans
                .into_iter()
                .map(|i| i.replace(' ', ""))
                .collect(),
            emails: answer
                .emails
                .into_iter()
                .map(|e| e.to_lowercase())
                .collect(),
        };
        Ok(Extraction {
            fields,
            usage,
            cost_micros,
            truncated,
        })
    }
}
