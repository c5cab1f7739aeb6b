//! `#[derive(Config)]`: the one reflection mechanism of the Fast-LLM config model.
//!
//! On a struct it generates the field table (name, hint, required), `Default` from the declared
//! defaults, value equality that ignores explicitness, and the `ConfigClass` / `FieldType`
//! implementations that parse a dict, write the three dict forms, walk architecture paths and run
//! validation, and `Reflect` (each field by its Fast-LLM name, without writing a dict). On an
//! enum of one-struct variants it generates the polymorphic dispatch on `type`, and `Reflect`
//! reading the held variant.
//!
//! Struct attributes: `#[config(class = "PythonName", type_name = "name", aliases = ["old"])]`.
//! Field attributes: `#[field(hint = architecture, default = expr, required, check = path)]`.
//! A struct must have a field `explicit: FieldSet`, which records the fields set explicitly.
//! Enum attributes: `#[config(class = "PythonBase", default = Variant)]`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::{Data, DeriveInput, Expr, Fields, Ident, LitStr, Path, Type, parse_macro_input};

#[proc_macro_derive(Config, attributes(config, field))]
pub fn derive_config(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let result = match &input.data {
        Data::Struct(_) => derive_struct(&input),
        Data::Enum(_) => derive_enum(&input),
        Data::Union(_) => Err(syn::Error::new_spanned(
            &input.ident,
            "Config cannot be derived for unions",
        )),
    };
    result.unwrap_or_else(|e| e.to_compile_error()).into()
}

struct ContainerAttrs {
    /// The Python class name (`#[config(class = ...)]`, else the Rust type's).
    class: LitStr,
    type_name: Option<LitStr>,
    aliases: Vec<LitStr>,
    default_variant: Option<Ident>,
}

fn container_attrs(input: &DeriveInput) -> syn::Result<ContainerAttrs> {
    let name = &input.ident;
    let mut out = ContainerAttrs {
        class: LitStr::new(&name.to_string(), name.span()),
        type_name: None,
        aliases: Vec::new(),
        default_variant: None,
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("config")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("class") {
                out.class = meta.value()?.parse()?;
            } else if meta.path.is_ident("type_name") {
                out.type_name = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("default") {
                out.default_variant = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("aliases") {
                let value = meta.value()?;
                let content;
                syn::bracketed!(content in value);
                let list = content.parse_terminated(|p| p.parse::<LitStr>(), syn::Token![,])?;
                out.aliases = list.into_iter().collect();
            } else {
                return Err(meta.error("unknown #[config] key"));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

struct FieldAttrs {
    hint: Ident,
    default: Option<Expr>,
    required: bool,
    checks: Vec<Path>,
}

fn field_attrs(field: &syn::Field) -> syn::Result<FieldAttrs> {
    let mut hint = None;
    let mut default = None;
    let mut required = false;
    let mut checks = Vec::new();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("field")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("hint") {
                hint = Some(meta.value()?.parse::<Ident>()?);
            } else if meta.path.is_ident("default") {
                default = Some(meta.value()?.parse::<Expr>()?);
            } else if meta.path.is_ident("required") {
                required = true;
            } else if meta.path.is_ident("check") {
                checks.push(meta.value()?.parse::<Path>()?);
            } else {
                return Err(meta.error("unknown #[field] key"));
            }
            Ok(())
        })?;
    }
    // Fast-LLM's `Field` defaults to the `unknown` hint; we keep that rule.
    let hint = hint.unwrap_or_else(|| Ident::new("unknown", Span::call_site()));
    Ok(FieldAttrs {
        hint,
        default,
        required,
        checks,
    })
}

fn hint_variant(hint: &Ident) -> syn::Result<TokenStream2> {
    let variant = match hint.to_string().as_str() {
        "core" => "Core",
        "architecture" => "Architecture",
        "optional" => "Optional",
        "feature" => "Feature",
        "performance" => "Performance",
        "stability" => "Stability",
        "unknown" => "Unknown",
        "logging" => "Logging",
        "expert" => "Expert",
        "testing" => "Testing",
        "deprecated" => "Deprecated",
        "wip" => "Wip",
        "setup" => "Setup",
        "derived" => "Derived",
        _ => return Err(syn::Error::new_spanned(hint, "unknown field hint")),
    };
    let ident = Ident::new(variant, hint.span());
    Ok(quote!(crate::FieldHint::#ident))
}

fn derive_struct(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let attrs = container_attrs(input)?;
    let class = &attrs.class;
    let type_name = match &attrs.type_name {
        Some(t) => quote!(Some(#t)),
        None => quote!(None),
    };
    let aliases = &attrs.aliases;
    let Data::Struct(data) = &input.data else {
        unreachable!()
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new_spanned(name, "Config structs need named fields"));
    };

    let mut has_explicit = false;
    let mut infos = Vec::new();
    let mut defaults = Vec::new();
    let mut parses = Vec::new();
    let mut emits = Vec::new();
    let mut walks = Vec::new();
    let mut validates = Vec::new();
    let mut eqs = Vec::new();
    let mut index = 0usize;
    let mut keys = Vec::new();
    let mut reflects = Vec::new();
    let mut setters = Vec::new();
    let mut lacks = Vec::new();
    for field in &named.named {
        let ident = field.ident.as_ref().expect("named field");
        if ident == "explicit" {
            has_explicit = true;
            defaults.push(quote!(explicit: crate::FieldSet::EMPTY));
            continue;
        }
        let fa = field_attrs(field)?;
        let key = LitStr::new(ident.to_string().trim_start_matches("r#"), ident.span());
        let hint = hint_variant(&fa.hint)?;
        let ty: &Type = &field.ty;
        let required = fa.required;
        infos.push(quote!(crate::FieldInfo { name: #key, hint: #hint, required: #required }));
        keys.push((key.value().len(), quote!(#key => ::core::option::Option::Some(#index))));
        reflects.push((
            key.value().len(),
            quote!(#key => ::core::option::Option::Some(crate::FieldType::reflect(&self.#ident))),
        ));
        let default = match &fa.default {
            Some(expr) => quote!(#ident: ::core::convert::Into::<#ty>::into(#expr)),
            None => quote!(#ident: ::core::default::Default::default()),
        };
        defaults.push(default);
        let missing = if required {
            quote!(ctx.error(crate::ErrorKind::MissingField { field: #key });)
        } else {
            quote!()
        };
        // A field without a declared default still holds its type's default here, so a
        // sub-config is read in place rather than built apart and moved in.
        let read = match &fa.default {
            None => quote! {
                <#ty as crate::FieldType>::parse_default_into(&mut out.#ident, value, ctx)
            },
            Some(_) => quote! {
                match <#ty as crate::FieldType>::parse(value, ctx) {
                    Some(parsed) => {
                        out.#ident = parsed;
                        true
                    }
                    None => false,
                }
            },
        };
        parses.push(quote! {
            match found[#index] {
                Some(value) => {
                    ctx.enter(#key);
                    if #read {
                        out.explicit.insert(#index);
                    }
                    ctx.leave();
                }
                None => { #missing }
            }
        });
        emits.push(quote! {
            crate::emit_field(
                &mut out,
                #key,
                crate::FieldType::serialize(&self.#ident, verbosity),
                if self.explicit.contains(#index) || verbosity.includes(#hint) {
                    crate::Presence::Explicit
                } else {
                    crate::Presence::Implicit
                },
            );
        });
        walks.push(quote! {
            path.push(#key.to_string());
            if #hint == crate::FieldHint::Architecture {
                out.push(path.clone());
            }
            crate::FieldType::walk(&self.#ident, path, out);
            path.pop();
        });
        let checks = &fa.checks;
        validates.push(quote! {
            ctx.enter(#key);
            #( if let Err(rule) = #checks(&self.#ident) { ctx.error(crate::ErrorKind::Rule(rule)); } )*
            crate::FieldType::validate(&mut self.#ident, ctx);
            ctx.leave();
        });
        eqs.push(quote!(self.#ident == other.#ident));
        // A parse starts a field it reads from the type's default, not from a declared one.
        let unwritten = if fa.default.is_some() {
            quote!(crate::Prior::Fresh)
        } else {
            quote!(crate::Prior::Pristine)
        };
        setters.push(quote! {
            ::core::option::Option::Some(#index) => {
                let prior = if self.explicit.contains(#index) { crate::Prior::Written } else { #unwritten };
                crate::FieldType::write(&mut self.#ident, rest, value, prior, ctx)?;
                self.explicit.insert(#index);
                ::core::result::Result::Ok(())
            }
        });
        let missing = if required {
            quote!(!self.explicit.contains(#index) ||)
        } else {
            quote!()
        };
        lacks.push(quote! {
            #missing (self.explicit.contains(#index) && crate::FieldType::lacks_required(&self.#ident))
        });
        index += 1;
    }
    if !has_explicit {
        return Err(syn::Error::new_spanned(
            name,
            "Config structs need a field `explicit: FieldSet`",
        ));
    }
    if index > 64 {
        return Err(syn::Error::new_spanned(name, "FieldSet holds at most 64 fields"));
    }
    let field_body = by_length(&reflects);
    let index_body = by_length(&keys);
    let eq_body = if eqs.is_empty() {
        quote!(true)
    } else {
        quote!(#(#eqs)&&*)
    };

    let lacks_body = if lacks.is_empty() {
        quote!(false)
    } else {
        quote!(#(#lacks)||*)
    };
    let field_type_common = field_type_common(class);
    Ok(quote! {
        impl ::core::default::Default for #name {
            fn default() -> Self {
                Self { #(#defaults,)* }
            }
        }

        impl ::core::cmp::PartialEq for #name {
            fn eq(&self, other: &Self) -> bool {
                #eq_body
            }
        }

        impl crate::ConfigClass for #name {
            const CLASS_NAME: &'static str = #class;
            const TYPE_NAME: Option<&'static str> = #type_name;
            const TYPE_ALIASES: &'static [&'static str] = &[#(#aliases),*];
            const FIELDS: &'static [crate::FieldInfo] = &[#(#infos),*];

            fn field_index(name: &str) -> Option<usize> {
                #index_body
            }

            fn parse_map(input: &crate::Map, ctx: &mut crate::Ctx) -> Self {
                let mut out = <Self as ::core::default::Default>::default();
                Self::fill_from_map(&mut out, input, ctx);
                out
            }

            fn to_dict(&self, verbosity: crate::Verbosity) -> crate::Map {
                let mut out = crate::Map::new();
                if let Some(type_name) = Self::TYPE_NAME {
                    out.insert("type".to_string(), crate::Value::Str(type_name.to_string()));
                } else if self.explicit.type_null() {
                    out.insert("type".to_string(), crate::Value::Null);
                }
                #(#emits)*
                out
            }

            fn walk_architecture(&self, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
                #(#walks)*
            }

            fn validate_in(&mut self, ctx: &mut crate::Ctx) {
                ctx.with_class(#class, |ctx| {
                    <Self as crate::ClassRules>::derive_defaults(self, ctx);
                    #(#validates)*
                    <Self as crate::ClassRules>::check(self, ctx);
                });
            }

            fn explicit_fields(&self) -> crate::FieldSet {
                self.explicit
            }
        }

        impl #name {
            /// Reads a dict into `out`, which holds the class defaults: present keys become
            /// explicit, absent ones keep their defaults.
            fn fill_from_map(out: &mut Self, input: &crate::Map, ctx: &mut crate::Ctx) {
                let owned = if <Self as crate::ClassRules>::rewrites_input(input) {
                    let mut copy = input.clone();
                    ctx.with_class(#class, |ctx| <Self as crate::ClassRules>::rewrite_input(&mut copy, ctx));
                    Some(copy)
                } else {
                    None
                };
                let map = owned.as_ref().unwrap_or(input);
                // One pass over the input finds every field's value, instead of one search
                // per declared field (most are absent).
                let mut found: [Option<&crate::Value>; #index] = [None; #index];
                let mut unknown = false;
                for (key, value) in map {
                    match <Self as crate::ConfigClass>::field_index(key) {
                        Some(i) => found[i] = Some(value),
                        None => unknown |= key != "type",
                    }
                }
                ctx.with_class(#class, |ctx| {
                    if crate::check_type_key::<Self>(map, ctx) {
                        out.explicit.mark_type_null();
                    }
                    #(#parses)*
                    if unknown {
                        crate::report_unknown_keys::<Self>(map, ctx);
                    }
                });
            }
        }

        impl #name {
            /// A `type` written to this class: only its canonical name (an alias written beside
            /// it would be a conflict in the dict).
            fn write_type(value: &crate::Value) -> ::core::result::Result<(), crate::Unwritable> {
                match value {
                    crate::Value::Str(name) if #type_name == Some(name.as_str()) => ::core::result::Result::Ok(()),
                    _ => ::core::result::Result::Err(crate::Unwritable),
                }
            }

            /// Stores `value` at `rest` below the field `name` (empty: the field itself), as a
            /// parse of the dict holding it there would, marking the field explicit.
            pub fn write_field(
                &mut self,
                name: &str,
                rest: &str,
                value: &crate::Value,
                ctx: &mut crate::Ctx,
            ) -> ::core::result::Result<(), crate::Unwritable> {
                match <Self as crate::ConfigClass>::field_index(name) {
                    #(#setters)*
                    _ => ::core::result::Result::Err(crate::Unwritable),
                }
            }
        }

        impl crate::Reflect for #name {
            fn class_name(&self) -> &'static str {
                #class
            }
            fn dynamic_type(&self) -> Option<&'static str> {
                #type_name
            }
            fn field(&self, name: &str) -> Option<crate::Field<'_>> {
                #field_body
            }
            fn full_form(&self) -> crate::Map {
                crate::ConfigClass::to_form(self, crate::Form::Full)
            }
            fn as_any(&self) -> &dyn ::core::any::Any {
                self
            }
            fn variant(&self) -> &dyn crate::Reflect {
                self
            }
        }

        impl crate::SubConfig for #name {}

        impl crate::FieldType for #name {
            #field_type_common
            fn default_slot() -> Option<Self> {
                Some(<Self as ::core::default::Default>::default())
            }
            fn parse(value: &crate::Value, ctx: &mut crate::Ctx) -> Option<Self> {
                crate::parse_config_value::<Self>(value, ctx)
            }
            fn parse_default_into(slot: &mut Self, value: &crate::Value, ctx: &mut crate::Ctx) -> bool {
                let Some(map) = crate::config_map(value, #class, ctx) else { return false; };
                Self::fill_from_map(slot, map, ctx);
                true
            }
            fn write(
                &mut self,
                path: &str,
                value: &crate::Value,
                prior: crate::Prior,
                ctx: &mut crate::Ctx,
            ) -> ::core::result::Result<(), crate::Unwritable> {
                if prior == crate::Prior::Fresh {
                    *self = <Self as ::core::default::Default>::default();
                }
                if path.is_empty() {
                    // A whole dict, stored key by key (its required fields are checked once all
                    // writes are in). A legacy key would be rewritten on the whole dict, which
                    // later writes below it may still add to.
                    let crate::Value::Map(map) = value else {
                        return ::core::result::Result::Err(crate::Unwritable);
                    };
                    if prior == crate::Prior::Written || <Self as crate::ClassRules>::rewrites_input(map) {
                        return ::core::result::Result::Err(crate::Unwritable);
                    }
                    for (key, value) in map {
                        if key == "type" {
                            Self::write_type(value)?;
                        } else {
                            self.write_field(key, "", value, ctx)?;
                        }
                    }
                    return ::core::result::Result::Ok(());
                }
                match crate::split_path(path) {
                    ("type", "") => Self::write_type(value),
                    (part, rest) => self.write_field(part, rest, value, ctx),
                }
            }
            fn lacks_required(&self) -> bool {
                #lacks_body
            }
            fn serialize(&self, verbosity: crate::Verbosity) -> crate::Serialized {
                crate::Serialized::Config(crate::ConfigClass::to_dict(self, verbosity))
            }
            fn walk(&self, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
                crate::ConfigClass::walk_architecture(self, path, out)
            }
            fn validate(&mut self, ctx: &mut crate::Ctx) {
                crate::ConfigClass::validate_in(self, ctx)
            }
        }
    })
}

/// What every config's `FieldType` impl holds, struct or polymorphic enum: its kind is its
/// class name, and it is a config (read through `Reflect`).
fn field_type_common(class: &LitStr) -> TokenStream2 {
    quote! {
        const KIND: &'static str = #class;
        const IS_CONFIG: bool = true;
        fn as_config(&self) -> Option<&dyn crate::Reflect> {
            Some(self)
        }
        fn reflect(&self) -> crate::Field<'_> {
            crate::Field::Config(self)
        }
    }
}

/// A `match` on a field `name` from its arms (each with its name's length), by length first: most
/// lookups then compare one or two names instead of every one.
fn by_length(arms: &[(usize, TokenStream2)]) -> TokenStream2 {
    let mut lengths: Vec<usize> = arms.iter().map(|(len, _)| *len).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let groups = lengths.iter().map(|len| {
        let same = arms.iter().filter(|(l, _)| l == len).map(|(_, arm)| arm);
        quote! {
            #len => match name {
                #(#same,)*
                _ => None,
            },
        }
    });
    quote! {
        match name.len() {
            #(#groups)*
            _ => None,
        }
    }
}

fn derive_enum(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let attrs = container_attrs(input)?;
    let class = &attrs.class;
    let Data::Enum(data) = &input.data else { unreachable!() };
    let mut variants = Vec::new();
    let mut types = Vec::new();
    for variant in &data.variants {
        let Fields::Unnamed(fields) = &variant.fields else {
            return Err(syn::Error::new_spanned(
                variant,
                "each variant holds exactly one config struct",
            ));
        };
        if fields.unnamed.len() != 1 {
            return Err(syn::Error::new_spanned(
                variant,
                "each variant holds exactly one config struct",
            ));
        }
        variants.push(variant.ident.clone());
        types.push(fields.unnamed[0].ty.clone());
    }
    let default_impl = match &attrs.default_variant {
        Some(default) => {
            let position = variants.iter().position(|v| v == default).ok_or_else(|| {
                syn::Error::new_spanned(default, "the default variant must be one of the enum's variants")
            })?;
            let ty = &types[position];
            quote! {
                impl ::core::default::Default for #name {
                    fn default() -> Self {
                        Self::#default(<#ty as ::core::default::Default>::default())
                    }
                }
            }
        }
        None => quote!(),
    };
    let default_parse = match &attrs.default_variant {
        Some(default) => {
            let position = variants.iter().position(|v| v == default).expect("checked above");
            let ty = &types[position];
            quote!(Some(Self::#default(<#ty as crate::ConfigClass>::parse_map(map, ctx))))
        }
        None => quote!({
            ctx.error(crate::ErrorKind::AbstractClass { class: #class });
            None
        }),
    };
    let fill_variant = |variant: &Ident, ty: &Type| {
        quote! {{
            if !matches!(slot, Self::#variant(_)) {
                *slot = Self::#variant(<#ty as ::core::default::Default>::default());
            }
            let Self::#variant(inner) = slot else { unreachable!("set above") };
            return <#ty as crate::FieldType>::parse_default_into(inner, value, ctx);
        }}
    };
    let default_fill = match &attrs.default_variant {
        Some(default) => {
            let position = variants.iter().position(|v| v == default).expect("checked above");
            fill_variant(default, &types[position])
        }
        None => quote!({
            ctx.error(crate::ErrorKind::AbstractClass { class: #class });
            return false;
        }),
    };

    // Only a class with a default subclass has a default to read a dict entry into; typed
    // writes fill any variant, which their first write replaces.
    let first = &variants[0];
    let first_type = &types[0];
    let default_slot = match &attrs.default_variant {
        Some(_) => quote! {
            fn default_slot() -> Option<Self> {
                Some(<Self as ::core::default::Default>::default())
            }
        },
        None => quote! {
            fn write_slot() -> Option<Self> {
                Some(Self::#first(<#first_type as ::core::default::Default>::default()))
            }
        },
    };
    // A first write below the config, not its `type`: the default subclass, from its default.
    let fresh_default = match &attrs.default_variant {
        Some(_) => quote!(*self = <Self as ::core::default::Default>::default();),
        None => quote!(return ::core::result::Result::Err(crate::Unwritable);),
    };
    let fills: Vec<TokenStream2> = variants.iter().zip(&types).map(|(v, t)| fill_variant(v, t)).collect();
    let field_type_common = field_type_common(class);
    Ok(quote! {
        #default_impl

        impl #name {
            /// The `type` names this polymorphic config accepts, in declaration order.
            pub const TYPE_NAMES: &'static [&'static str] = &[
                #( match <#types as crate::ConfigClass>::TYPE_NAME { Some(n) => n, None => "" } ),*
            ];

            /// Parses a dict, choosing the variant from its `type` key (or the default subclass).
            pub fn parse_map(map: &crate::Map, ctx: &mut crate::Ctx) -> Option<Self> {
                let Ok(type_name) = crate::dynamic_type_name(map, ctx) else { return None; };
                let Some(type_name) = type_name else { return #default_parse; };
                #(
                    if <#types as crate::ConfigClass>::TYPE_NAME == Some(type_name)
                        || <#types as crate::ConfigClass>::TYPE_ALIASES.contains(&type_name)
                    {
                        return Some(Self::#variants(<#types as crate::ConfigClass>::parse_map(map, ctx)));
                    }
                )*
                crate::unknown_dynamic_type(ctx, type_name, #class, Self::TYPE_NAMES);
                None
            }

            /// The dynamic type name of the held variant.
            pub fn type_name(&self) -> &'static str {
                match self {
                    #( Self::#variants(inner) => crate::type_name_of(inner), )*
                }
            }
        }

        impl ::core::cmp::PartialEq for #name {
            fn eq(&self, other: &Self) -> bool {
                match (self, other) {
                    #( (Self::#variants(a), Self::#variants(b)) => a == b, )*
                    _ => false,
                }
            }
        }

        impl crate::Reflect for #name {
            fn class_name(&self) -> &'static str {
                match self {
                    #( Self::#variants(inner) => crate::Reflect::class_name(inner), )*
                }
            }
            fn dynamic_type(&self) -> Option<&'static str> {
                match self {
                    #( Self::#variants(inner) => crate::Reflect::dynamic_type(inner), )*
                }
            }
            fn field(&self, name: &str) -> Option<crate::Field<'_>> {
                match self {
                    #( Self::#variants(inner) => crate::Reflect::field(inner, name), )*
                }
            }
            fn full_form(&self) -> crate::Map {
                match self {
                    #( Self::#variants(inner) => crate::Reflect::full_form(inner), )*
                }
            }
            fn as_any(&self) -> &dyn ::core::any::Any {
                self
            }
            fn variant(&self) -> &dyn crate::Reflect {
                match self {
                    #( Self::#variants(inner) => inner, )*
                }
            }
        }

        impl crate::SubConfig for #name {}

        impl crate::FieldType for #name {
            #field_type_common
            #default_slot
            fn parse(value: &crate::Value, ctx: &mut crate::Ctx) -> Option<Self> {
                Self::parse_map(crate::config_map(value, #class, ctx)?, ctx)
            }
            // `parse`, reading the chosen variant in place (the slot holds the default variant
            // unless another is chosen).
            fn parse_default_into(slot: &mut Self, value: &crate::Value, ctx: &mut crate::Ctx) -> bool {
                let Some(map) = crate::config_map(value, #class, ctx) else { return false; };
                let Ok(type_name) = crate::dynamic_type_name(map, ctx) else { return false; };
                let Some(type_name) = type_name else #default_fill;
                #(
                    if <#types as crate::ConfigClass>::TYPE_NAME == Some(type_name)
                        || <#types as crate::ConfigClass>::TYPE_ALIASES.contains(&type_name)
                    #fills
                )*
                crate::unknown_dynamic_type(ctx, type_name, #class, Self::TYPE_NAMES);
                false
            }
            // The variant is chosen before any field below it is stored: by the first write, a
            // `type` or (else) the default subclass; a later `type` must name the held one.
            fn write(
                &mut self,
                path: &str,
                value: &crate::Value,
                prior: crate::Prior,
                ctx: &mut crate::Ctx,
            ) -> ::core::result::Result<(), crate::Unwritable> {
                if path.is_empty() {
                    // A whole dict: its `type` (or the default subclass) chooses the variant.
                    let crate::Value::Map(map) = value else {
                        return ::core::result::Result::Err(crate::Unwritable);
                    };
                    if prior == crate::Prior::Written {
                        return ::core::result::Result::Err(crate::Unwritable);
                    }
                    match map.get("type") {
                        Some(type_name) => self.write("type", type_name, prior, ctx)?,
                        None => {
                            #fresh_default
                        }
                    }
                    return match self {
                        #( Self::#variants(inner) => crate::FieldType::write(inner, "", value, crate::Prior::Pristine, ctx), )*
                    };
                }
                let (part, rest) = crate::split_path(path);
                if part == "type" {
                    let crate::Value::Str(name) = value else {
                        return ::core::result::Result::Err(crate::Unwritable);
                    };
                    if !rest.is_empty() {
                        return ::core::result::Result::Err(crate::Unwritable);
                    }
                    #(
                        if <#types as crate::ConfigClass>::TYPE_NAME == Some(name.as_str()) {
                            let held = matches!(self, Self::#variants(_));
                            return match prior {
                                crate::Prior::Written if !held => ::core::result::Result::Err(crate::Unwritable),
                                crate::Prior::Written => ::core::result::Result::Ok(()),
                                crate::Prior::Pristine if held => ::core::result::Result::Ok(()),
                                _ => {
                                    *self = Self::#variants(<#types as ::core::default::Default>::default());
                                    ::core::result::Result::Ok(())
                                }
                            };
                        }
                    )*
                    return ::core::result::Result::Err(crate::Unwritable);
                }
                if prior == crate::Prior::Fresh {
                    #fresh_default
                }
                let inner_prior = match prior {
                    crate::Prior::Written => crate::Prior::Written,
                    _ => crate::Prior::Pristine,
                };
                match self {
                    #( Self::#variants(inner) => crate::FieldType::write(inner, path, value, inner_prior, ctx), )*
                }
            }
            fn lacks_required(&self) -> bool {
                match self {
                    #( Self::#variants(inner) => crate::FieldType::lacks_required(inner), )*
                }
            }
            fn serialize(&self, verbosity: crate::Verbosity) -> crate::Serialized {
                match self {
                    #( Self::#variants(inner) => crate::FieldType::serialize(inner, verbosity), )*
                }
            }
            fn walk(&self, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
                match self {
                    #( Self::#variants(inner) => crate::FieldType::walk(inner, path, out), )*
                }
            }
            fn validate(&mut self, ctx: &mut crate::Ctx) {
                match self {
                    #( Self::#variants(inner) => crate::FieldType::validate(inner, ctx), )*
                }
            }
        }
    })
}
