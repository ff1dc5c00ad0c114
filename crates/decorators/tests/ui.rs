//! Compile-fail tests: every misuse of the attributes is an error pointing at the offending token.

#[test]
fn misuse_is_a_compile_error_at_the_offending_token() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
