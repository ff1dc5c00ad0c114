//! The pipeline against real `redis-server` processes, real `tesseract`, the sample corpus, and a local HTTP
//! server speaking the OpenAI chat completions API.

mod daily_trace;
mod support;

mod batches;
mod engines;
mod fail_safe;
mod files;
mod helpers;
mod openai;
mod pdf;
mod stages;
mod warming;
