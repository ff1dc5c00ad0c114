//! The layer on a real axum server over TCP, with a real `redis-server` behind the store: which second
//! requests reach the handler, poisoning and variant flooding attempts, and Redis going away.

mod support;

mod attacks;
mod revalidation;
mod rules;
