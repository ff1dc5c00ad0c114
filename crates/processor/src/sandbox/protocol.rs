//! The parser child's protocol, both ends of it in this one file: the request (the child's last argument, JSON),
//! and the answer on its stdout (JSON of `Result<Output, Refusal>`), never longer than [`answer_cap`].

use serde::{Deserialize, Serialize};

use super::{Job, Output, ParseBudget, Refusal};

/// Bumped whenever a request or an answer changes shape: a child of another version refuses the request.
pub(super) const VERSION: u32 = 1;

/// What the parent asks of one child.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Request {
    pub(super) version: u32,
    pub(super) job: Job,
    pub(super) budget: ParseBudget,
    /// The document's length: the child reads exactly this much from stdin.
    pub(super) input_bytes: u64,
}

/// What the child answers.
pub(super) type Answer = Result<Output, Refusal>;

/// Most bytes an answer may take: twice the text cap (JSON escapes control characters) and room for a page
/// list.
pub(super) fn answer_cap(budget: &ParseBudget) -> usize {
    budget
        .max_text_bytes
        .saturating_mul(2)
        .saturating_add(1 << 20)
}

/// `answer` as JSON, or, if that would be longer than `cap`, the refusal that says so.
pub(super) fn encode(answer: &Answer, cap: usize) -> Vec<u8> {
    let refusal = |refusal: Refusal| {
        let answer: Answer = Err(refusal);
        serde_json::to_vec(&answer).unwrap_or_default()
    };
    match serde_json::to_vec(answer) {
        Ok(bytes) if bytes.len() <= cap => bytes,
        Ok(bytes) => refusal(Refusal::OverBudget(format!(
            "the document's text takes {} bytes to send, above the {cap} allowed (processor.max_text_bytes)",
            bytes.len()
        ))),
        Err(e) => refusal(Refusal::Unreadable(format!(
            "the answer could not be written: {e}"
        ))),
    }
}

/// An answer read back.
pub(super) fn decode(bytes: &[u8]) -> Result<Answer, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::Page;

    #[test]
    fn answers_round_trip_and_an_oversized_one_becomes_a_refusal() {
        let pages: Answer = Ok(Output::Pages(vec![
            Page::Text("Invoice \u{1} number".into()),
            Page::Scan {
                width: 1700,
                height: 2200,
            },
        ]));
        let back = decode(&encode(&pages, 4096)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{pages:?}"));

        let long: Answer = Ok(Output::Text("\u{1}".repeat(100)));
        // Each control character takes six bytes in JSON: 600 bytes do not fit in 300.
        match decode(&encode(&long, 300)).unwrap() {
            Err(Refusal::OverBudget(reason)) => {
                assert!(reason.contains("processor.max_text_bytes"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let budget = ParseBudget::default();
        assert_eq!(answer_cap(&budget), (16 << 20) + (1 << 20));
    }

    #[test]
    fn a_request_names_its_job_and_budget() {
        let request = Request {
            version: VERSION,
            job: Job::PdfText {
                max_stream_bytes: 1 << 20,
            },
            budget: ParseBudget::default(),
            input_bytes: 42,
        };
        let text = serde_json::to_string(&request).unwrap();
        assert!(
            text.contains(r#""job":{"pdf_text":{"max_stream_bytes":1048576}}"#),
            "{text}"
        );
        let back: Request = serde_json::from_str(&text).unwrap();
        assert_eq!((back.version, back.input_bytes), (VERSION, 42));
        assert_eq!(back.budget, ParseBudget::default());
    }
}
