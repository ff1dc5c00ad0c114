//! Code generation for `#[cached]` and `#[invalidates]`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{
    FnArg, GenericArgument, Ident, ItemFn, LitStr, Pat, PathArguments, ReturnType, Type,
    spanned::Spanned,
};

use crate::options::{CachedOptions, InvalidatesOptions};

/// What a preset changes about `#[cached]`.
pub(crate) struct Preset {
    /// The attribute's name, for messages.
    pub(crate) attr: &'static str,
    /// The cache type unless the options name one.
    pub(crate) cache_type: &'static str,
    /// The preset isolates tenants: `global` is refused.
    pub(crate) tenant_only: bool,
}

/// How the function's result maps onto a cached value.
enum Mode {
    /// `Result<T, E>` (or an alias): `Ok` is cached.
    Result,
    /// `Option<T>`: `Some` is cached (and `None` with `cache_none`).
    Option,
    /// Anything else: cached as is.
    Plain,
}

struct KeyedArg {
    ident: Ident,
    ty: Type,
}

struct Analysis {
    ret: Type,
    mode: Mode,
    has_receiver: bool,
    /// Every named argument, in order.
    named: Vec<KeyedArg>,
}

fn analyse(func: &ItemFn, attr: &str) -> syn::Result<Analysis> {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            format!("`#[{attr}]` works on `async fn` only; make this function `async`"),
        ));
    }
    let ret: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if let Type::ImplTrait(t) = &ret {
        return Err(syn::Error::new(
            t.span(),
            format!("`#[{attr}]` needs a concrete return type, not `impl Trait`"),
        ));
    }
    let mode = match &ret {
        Type::Path(p) => match p.path.segments.last() {
            Some(s) if s.ident == "Result" => Mode::Result,
            Some(s)
                if s.ident == "Option"
                    && matches!(s.arguments, PathArguments::AngleBracketed(ref a) if a.args.len() == 1 && matches!(a.args[0], GenericArgument::Type(_))) =>
            {
                Mode::Option
            }
            _ => Mode::Plain,
        },
        _ => Mode::Plain,
    };
    let mut has_receiver = false;
    let mut named = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(_) => has_receiver = true,
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) if p.subpat.is_none() => named.push(KeyedArg {
                    ident: p.ident.clone(),
                    ty: (*t.ty).clone(),
                }),
                // An ignored argument cannot change the result.
                Pat::Wild(_) => {}
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        format!(
                            "`#[{attr}]` cannot key on a destructured argument; bind it to a name \
                             and destructure inside the function"
                        ),
                    ));
                }
            },
        }
    }
    Ok(Analysis {
        ret,
        mode,
        has_receiver,
        named,
    })
}

/// The names a key template interpolates (`{name}` or `{name:spec}`; `{{` and `}}` are literal braces).
fn template_names(lit: &LitStr) -> syn::Result<Vec<String>> {
    let text = lit.value();
    let mut names = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => {
                            return Err(syn::Error::new(
                                lit.span(),
                                "unclosed `{` in the key template",
                            ));
                        }
                    }
                }
                let name = inner.split(':').next().unwrap_or("").trim().to_owned();
                if name.is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "key template placeholders must name an argument, like `{user_id}`",
                    ));
                }
                names.push(name);
            }
            '}' => {
                return Err(syn::Error::new(
                    lit.span(),
                    "unmatched `}` in the key template (write `}}` for a literal brace)",
                ));
            }
            _ => {}
        }
    }
    Ok(names)
}

fn runtime(krate: Option<&syn::Path>) -> syn::Result<TokenStream> {
    if let Some(p) = krate {
        return Ok(quote!(#p::__private));
    }
    use proc_macro_crate::{FoundCrate, crate_name};
    match crate_name("fernando-cache-store") {
        Ok(FoundCrate::Itself) => Ok(quote!(crate::__private)),
        Ok(FoundCrate::Name(name)) => {
            let ident = Ident::new(&name, Span::call_site());
            Ok(quote!(::#ident::__private))
        }
        Err(e) => Err(syn::Error::new(
            Span::call_site(),
            format!(
                "the cache attributes need the `fernando-cache-store` crate: add it to [dependencies] ({e})"
            ),
        )),
    }
}

/// The scope expression (a `Result<Scope, CallError>`), from `tenant`, `global`, or an argument named
/// `tenant_id` / `tenant`.
fn scope_expr(
    rt: &TokenStream,
    tenant: Option<&syn::Expr>,
    global: Option<Span>,
    named: &[KeyedArg],
    attr: &str,
    tenant_only: bool,
) -> syn::Result<TokenStream> {
    match (tenant, global) {
        (Some(t), Some(g)) => {
            let mut e = syn::Error::new(g, "`global` and `tenant` exclude each other");
            e.combine(syn::Error::new(t.span(), "the tenant is given here"));
            Err(e)
        }
        (None, Some(g)) if tenant_only => Err(syn::Error::new(
            g,
            format!("`#[{attr}]` isolates tenants; `global` is not allowed"),
        )),
        (None, Some(_)) => Ok(quote!(#rt::global_scope())),
        (Some(t), None) => Ok(quote_spanned!(t.span()=> #rt::scope_of(&(#t)))),
        (None, None) => match named
            .iter()
            .find(|a| a.ident == "tenant_id" || a.ident == "tenant")
        {
            Some(a) => {
                let i = &a.ident;
                Ok(quote_spanned!(a.ty.span()=> #rt::scope_of(&#i)))
            }
            None => Err(syn::Error::new(
                Span::call_site(),
                format!(
                    "`#[{attr}]` needs a tenant: add `tenant = <expr>`, an argument named `tenant_id`{}",
                    if tenant_only {
                        ""
                    } else {
                        ", or `global` for data shared by every tenant"
                    }
                ),
            )),
        },
    }
}

/// The store a call uses: `store = <expr>`, else the installed one.
fn store_expr(rt: &TokenStream, store: Option<&syn::Expr>) -> TokenStream {
    match store {
        Some(e) => quote_spanned!(e.span()=> #rt::store_of(&(#e))),
        None => quote!(#rt::installed()),
    }
}

/// The store of a `#[cached]` call, as `run` takes it. `store = <argument>` naming an argument that is a shared
/// reference is borrowed: a hit then clones no store (the reference is `Copy`, so the body can still use it);
/// any other store is owned, as [`store_expr`] gives it.
fn cached_store_expr(
    rt: &TokenStream,
    store: Option<&syn::Expr>,
    named: &[KeyedArg],
) -> TokenStream {
    if let Some(syn::Expr::Path(p)) = store
        && let Some(i) = p.path.get_ident()
        && named
            .iter()
            .any(|n| n.ident == *i && matches!(&n.ty, Type::Reference(r) if r.mutability.is_none()))
    {
        return quote_spanned!(i.span()=> #rt::store_ref(#i));
    }
    let owned = store_expr(rt, store);
    quote!(#rt::owned_store(#owned))
}

/// The block that fixes an `async` block's output type to the function's, so `?` and `return` in the body
/// keep their meaning.
fn body_block(func: &ItemFn, ret: &Type) -> TokenStream {
    let stmts = &func.block.stmts;
    quote! {
        async move {
            #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::needless_return)]
            if false {
                let __fc_never: #ret = loop {};
                return __fc_never;
            }
            #(#stmts)*
        }
    }
}

pub(crate) fn cached(
    opts: CachedOptions,
    func: ItemFn,
    preset: &Preset,
) -> syn::Result<TokenStream> {
    let attr = preset.attr;
    let a = analyse(&func, attr)?;
    let rt = runtime(opts.krate.as_ref())?;

    // `store = some_argument` names a handle, not an input: it never belongs in the key.
    let mut skip = opts.skip.clone();
    if let Some(syn::Expr::Path(p)) = &opts.store
        && let Some(i) = p.path.get_ident()
        && a.named.iter().any(|n| n.ident == *i)
    {
        skip.push(i.clone());
    }
    // The tenant's namespace already separates tenants: an argument naming the tenant is not hashed again.
    let tenant_arg = match &opts.tenant {
        Some(syn::Expr::Path(p)) => p.path.get_ident().cloned(),
        Some(_) => None,
        None if opts.global.is_none() => a
            .named
            .iter()
            .find(|n| n.ident == "tenant_id" || n.ident == "tenant")
            .map(|n| n.ident.clone()),
        None => None,
    };
    if let Some(t) = tenant_arg.filter(|t| a.named.iter().any(|n| n.ident == *t)) {
        skip.push(t);
    }
    for s in &opts.skip {
        if !a.named.iter().any(|n| n.ident == *s) {
            return Err(syn::Error::new(
                s.span(),
                format!("`skip({s})` names no argument of `{}`", func.sig.ident),
            ));
        }
    }
    if opts.cache_none && !matches!(a.mode, Mode::Option) {
        return Err(syn::Error::new(
            Span::call_site(),
            "`cache_none` applies to functions returning `Option`",
        ));
    }

    let scope = scope_expr(
        &rt,
        opts.tenant.as_ref(),
        opts.global,
        &a.named,
        attr,
        preset.tenant_only,
    )?;

    let key = match &opts.key {
        Some(lit) => {
            for name in template_names(lit)? {
                if !a.named.iter().any(|n| n.ident == name) {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "the key template names `{name}`, which is not an argument of `{}`",
                            func.sig.ident
                        ),
                    ));
                }
            }
            quote!(__FC_SITE.templated_key(#rt::format!(#lit)))
        }
        None => {
            let domain = a
                .has_receiver
                .then(|| quote!(__fc_h.domain(#rt::type_name::<Self>());));
            let args = a
                .named
                .iter()
                .filter(|n| !skip.contains(&n.ident))
                .map(|n| {
                    let i = &n.ident;
                    let name = i.to_string();
                    quote_spanned!(n.ty.span()=> #rt::key_arg(&mut __fc_h, #name, &#i)?;)
                });
            quote!({
                let mut __fc_h = __FC_SITE.hasher();
                #domain
                #(#args)*
                __FC_SITE.derived_key(__fc_h)
            })
        }
    };

    let path = match &opts.name {
        Some(n) => quote!(#n),
        None => {
            let f = func.sig.ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #f))
        }
    };
    let cache_type = opts
        .cache_type
        .as_ref()
        .map_or_else(|| preset.cache_type.to_owned(), LitStr::value);
    let ttl_ms = opts.ttl_ms.unwrap_or(0);
    let version = opts.version.unwrap_or(0);
    let store = cached_store_expr(&rt, opts.store.as_ref(), &a.named);

    let ret = &a.ret;
    let body = body_block(&func, ret);
    // The tags are evaluated from the arguments the body then takes, and only when `run` asks (a miss about to
    // run the body): a hit evaluates no tag expression and allocates no tag.
    let body = if opts.tags.is_empty() {
        quote!(move |_: bool| (#rt::Vec::<#rt::String>::new(), #body))
    } else {
        let tags = &opts.tags;
        quote! {
            move |__fc_tagged: bool| {
                let __fc_tags: #rt::Vec<#rt::String> = if __fc_tagged {
                    #rt::vec![#(#rt::ToString::to_string(&(#tags))),*]
                } else {
                    #rt::Vec::new()
                };
                (__fc_tags, #body)
            }
        }
    };
    // The check comes first and is spanned at the return type, so a value that cannot be cached is reported
    // there before anywhere else.
    let check = match a.mode {
        Mode::Result => {
            quote_spanned!(ret.span()=> #rt::assert_cache_value::<<#ret as #rt::ResultParts>::Ok>();)
        }
        Mode::Option | Mode::Plain => {
            quote_spanned!(ret.span()=> #rt::assert_cache_value::<#ret>();)
        }
    };
    let call = match a.mode {
        Mode::Result => quote! {
            #rt::run(
                __fc_store,
                __fc_call,
                &__FC_SITE,
                {
                    #[allow(unused_imports)]
                    use #rt::{ShareByClone as _, ShareNot as _};
                    (&&#rt::ErrorSharing::<<#ret as #rt::ResultParts>::Err>::new()).sharing()
                },
                #rt::always,
                __fc_body,
            )
            .await
        },
        Mode::Option | Mode::Plain => {
            let should_cache = if matches!(a.mode, Mode::Option) && !opts.cache_none {
                quote!(#rt::is_some)
            } else {
                quote!(#rt::always)
            };
            quote! {
                #rt::run_infallible(__fc_store, __fc_call, &__FC_SITE, #should_cache, __fc_body).await
            }
        }
    };

    let ItemFn {
        attrs, vis, sig, ..
    } = &func;
    let site = format_ident!("__FC_SITE");
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            static #site: #rt::Site = #rt::Site::new(#path, #cache_type, #ttl_ms, #version);
            let __fc_store = #store;
            #[allow(clippy::redundant_closure_call)]
            let __fc_call = match &__fc_store {
                #rt::Option::Some(_) => #rt::Option::Some(
                    (|| -> #rt::Result<_, #rt::CallError> {
                        let __fc_scope = #scope?;
                        let __fc_key = #key;
                        #rt::Result::Ok((__fc_scope, __fc_key))
                    })(),
                ),
                #rt::Option::None => #rt::Option::None,
            };
            // Built only when the body must run, so a hit never moves it.
            let __fc_body = #body;
            #check
            #call
        }
    })
}

pub(crate) fn invalidates(opts: InvalidatesOptions, func: ItemFn) -> syn::Result<TokenStream> {
    let attr = "invalidates";
    let a = analyse(&func, attr)?;
    let rt = runtime(opts.krate.as_ref())?;
    let scope = scope_expr(
        &rt,
        opts.tenant.as_ref(),
        opts.global,
        &a.named,
        attr,
        false,
    )?;
    let types = &opts.cache_types;
    let strategy = opts
        .strategy
        .as_ref()
        .map_or_else(|| "lazy".to_owned(), LitStr::value);
    let store = store_expr(&rt, opts.store.as_ref());
    let tags = &opts.tags;
    let f = func.sig.ident.to_string();
    let ret = &a.ret;
    let body = body_block(&func, ret);
    let succeeded = match a.mode {
        Mode::Result => quote!(#rt::Outcome::succeeded(&__fc_out)),
        _ => quote!(#rt::succeeded_always(&__fc_out)),
    };
    let ItemFn {
        attrs, vis, sig, ..
    } = &func;
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            let __fc_store = #store;
            let __fc_scope = if __fc_store.is_some() { #scope } else { #rt::global_scope() };
            // Evaluated before the body, which may consume the arguments they name.
            let __fc_tags: #rt::Vec<#rt::String> =
                #rt::vec![#(#rt::ToString::to_string(&(#tags))),*];
            let __fc_out: #ret = #body.await;
            if #succeeded {
                #rt::invalidate(
                    __fc_store,
                    __fc_scope,
                    &[#(#types),*],
                    &__fc_tags,
                    #strategy,
                    ::core::concat!(::core::module_path!(), "::", #f),
                )
                .await;
            }
            __fc_out
        }
    })
}
