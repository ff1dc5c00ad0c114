//! The attribute options: parsing and validation, with errors spanned at the offending token.

use proc_macro2::Span;
use syn::{Expr, Ident, LitInt, LitStr, Path, meta::ParseNestedMeta, spanned::Spanned};

/// Options shared by `#[cached]` and its presets.
#[derive(Default)]
pub(crate) struct CachedOptions {
    pub(crate) cache_type: Option<LitStr>,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) tenant: Option<Expr>,
    pub(crate) global: Option<Span>,
    pub(crate) key: Option<LitStr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) store: Option<Expr>,
    pub(crate) version: Option<u32>,
    pub(crate) cache_none: bool,
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<Path>,
    /// `tag = <expr>`, repeatable: a `Display` value the entry is written with, evaluated only when the body runs
    /// for the cache (a miss), never on a hit.
    pub(crate) tags: Vec<Expr>,
}

const CACHED_OPTIONS: &str =
    "cache_type, ttl, tenant, global, key, skip(...), store, version, cache_none, name, tag, crate";

impl CachedOptions {
    pub(crate) fn parse_one(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let span = meta.path.span();
        let Some(ident) = meta.path.get_ident().map(ToString::to_string) else {
            return Err(meta.error(format!("unknown option; expected one of: {CACHED_OPTIONS}")));
        };
        match ident.as_str() {
            "cache_type" => set(&mut self.cache_type, cache_type(&meta)?, span),
            "ttl" => set(&mut self.ttl_ms, ttl(&meta)?, span),
            "tenant" => set(&mut self.tenant, meta.value()?.parse()?, span),
            "global" => set(&mut self.global, span, span),
            "key" => set(&mut self.key, meta.value()?.parse()?, span),
            "skip" => {
                meta.parse_nested_meta(|inner| match inner.path.get_ident() {
                    Some(i) => {
                        self.skip.push(i.clone());
                        Ok(())
                    }
                    None => Err(inner.error("expected an argument name")),
                })?;
                Ok(())
            }
            "store" => set(&mut self.store, meta.value()?.parse()?, span),
            "version" => {
                let lit: LitInt = meta.value()?.parse()?;
                set(&mut self.version, lit.base10_parse()?, span)
            }
            "cache_none" => {
                if self.cache_none {
                    return Err(syn::Error::new(span, "option `cache_none` is given twice"));
                }
                self.cache_none = true;
                Ok(())
            }
            "name" => set(&mut self.name, meta.value()?.parse()?, span),
            "tag" => {
                self.tags.push(meta.value()?.parse()?);
                Ok(())
            }
            "crate" => set(&mut self.krate, meta.value()?.parse()?, span),
            other => Err(syn::Error::new(
                span,
                format!("unknown option `{other}`; expected one of: {CACHED_OPTIONS}"),
            )),
        }
    }
}

/// Options of `#[invalidates]`.
#[derive(Default)]
pub(crate) struct InvalidatesOptions {
    pub(crate) cache_types: Vec<LitStr>,
    pub(crate) tenant: Option<Expr>,
    pub(crate) global: Option<Span>,
    pub(crate) strategy: Option<LitStr>,
    pub(crate) store: Option<Expr>,
    pub(crate) krate: Option<Path>,
    /// `tag = <expr>`, repeatable: these tags of the scope are invalidated instead of cache types.
    pub(crate) tags: Vec<Expr>,
}

const INVALIDATES_OPTIONS: &str = "cache_type, tenant, global, strategy, tag, store, crate";

impl InvalidatesOptions {
    pub(crate) fn parse_one(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let span = meta.path.span();
        let Some(ident) = meta.path.get_ident().map(ToString::to_string) else {
            return Err(meta.error(format!(
                "unknown option; expected one of: {INVALIDATES_OPTIONS}"
            )));
        };
        match ident.as_str() {
            "cache_type" => {
                self.cache_types.push(cache_type(&meta)?);
                Ok(())
            }
            "tenant" => set(&mut self.tenant, meta.value()?.parse()?, span),
            "global" => set(&mut self.global, span, span),
            "strategy" => {
                let lit: LitStr = meta.value()?.parse()?;
                if !matches!(lit.value().as_str(), "eager" | "lazy" | "hybrid") {
                    return Err(syn::Error::new(
                        lit.span(),
                        "unknown strategy; expected \"eager\", \"lazy\" or \"hybrid\"",
                    ));
                }
                set(&mut self.strategy, lit, span)
            }
            "store" => set(&mut self.store, meta.value()?.parse()?, span),
            "tag" => {
                self.tags.push(meta.value()?.parse()?);
                Ok(())
            }
            "crate" => set(&mut self.krate, meta.value()?.parse()?, span),
            other => Err(syn::Error::new(
                span,
                format!("unknown option `{other}`; expected one of: {INVALIDATES_OPTIONS}"),
            )),
        }
    }
}

fn set<T>(slot: &mut Option<T>, value: T, span: Span) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(span, "this option is given twice"));
    }
    *slot = Some(value);
    Ok(())
}

/// A cache type name, checked with the rules of `CacheType::new`.
fn cache_type(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    let lit: LitStr = meta.value()?.parse()?;
    let name = lit.value();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(syn::Error::new(
            lit.span(),
            "a cache type is 1 to 64 characters of a-z, 0-9 and '_', starting with a letter",
        ));
    }
    Ok(lit)
}

/// A TTL such as `"10m"` or `"1h 30m"`, in milliseconds.
fn ttl(meta: &ParseNestedMeta<'_>) -> syn::Result<u64> {
    let lit: LitStr = meta.value()?.parse()?;
    let d = humantime::parse_duration(&lit.value()).map_err(|e| {
        syn::Error::new(
            lit.span(),
            format!("invalid TTL: {e} (write it like \"90s\", \"10m\" or \"1h 30m\")"),
        )
    })?;
    // Its bounds are the store's (`TtlTable::in_bounds`), checked where the generated `static` is evaluated:
    // this crate depends on no fernando-cache crate.
    if d.is_zero() {
        return Err(syn::Error::new(
            lit.span(),
            "a TTL must be longer than zero",
        ));
    }
    u64::try_from(d.as_millis()).map_err(|_| syn::Error::new(lit.span(), "TTL too long"))
}
