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
//!
//! Inheritance: a field `#[config(base)] base: ParentConfig` holds the Fast-LLM parent class
//! instead of re-declaring its fields. The parent's fields come first in `FIELDS` (dataclass
//! order), and are read, written, reflected, walked, validated and counted in the child's
//! `explicit` as the child's own; the parent's `ClassRules` run before the child's, under the
//! child's class name; the child derefs to the parent. `#[config(base, redeclare(name, default
//! = expr, hint = h))]` gives an inherited field the child's own default and/or hint, where the
//! Python subclass re-declares it. All of it is generated apart, by `Inherited`.
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

/// A `#[config(base)]` field: the parent class a struct holds in place of re-declaring its
/// fields, with the parent fields whose default or hint the child re-declares.
struct BaseField {
    ident: Ident,
    ty: Type,
    redeclared: Vec<Redeclared>,
}

/// `#[config(redeclare(name, default = expr, hint = h))]` on a base field: the child's own
/// default or hint for an inherited field, as a Python subclass that re-declares the field.
struct Redeclared {
    name: Ident,
    default: Option<Expr>,
    hint: Option<Ident>,
}

/// The `#[config(base)]` marker of a field, if any, and its re-declared fields.
fn base_attrs(field: &syn::Field) -> syn::Result<Option<Vec<Redeclared>>> {
    let mut base = false;
    let mut redeclared = Vec::new();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("config")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("base") {
                base = true;
            } else if meta.path.is_ident("redeclare") {
                let content;
                syn::parenthesized!(content in meta.input);
                let name: Ident = content.parse()?;
                let mut entry = Redeclared {
                    name,
                    default: None,
                    hint: None,
                };
                while !content.is_empty() {
                    content.parse::<syn::Token![,]>()?;
                    if content.is_empty() {
                        break;
                    }
                    let key: Ident = content.parse()?;
                    content.parse::<syn::Token![=]>()?;
                    if key == "default" {
                        entry.default = Some(content.parse()?);
                    } else if key == "hint" {
                        entry.hint = Some(content.parse()?);
                    } else {
                        return Err(syn::Error::new_spanned(key, "redeclare takes `default` and `hint`"));
                    }
                }
                redeclared.push(entry);
            } else {
                return Err(meta.error("unknown #[config] key on a field (`base`, `redeclare`)"));
            }
            Ok(())
        })?;
    }
    if !redeclared.is_empty() && !base {
        return Err(syn::Error::new_spanned(field, "`redeclare` needs `#[config(base)]`"));
    }
    Ok(base.then_some(redeclared))
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

    let mut base: Option<BaseField> = None;
    for field in &named.named {
        if let Some(redeclared) = base_attrs(field)? {
            if base.is_some() {
                return Err(syn::Error::new_spanned(
                    field,
                    "a config class has at most one `#[config(base)]`",
                ));
            }
            base = Some(BaseField {
                ident: field.ident.clone().expect("named field"),
                ty: field.ty.clone(),
                redeclared,
            });
        }
    }
    // The class's own fields are numbered after its base's, which come first in `FIELDS` (as
    // dataclass inheritance orders them).
    let base_len = match &base {
        Some(BaseField { ty, .. }) => quote!(<#ty as crate::ConfigClass>::FIELDS.len()),
        None => quote!(0usize),
    };

    let mut has_explicit = false;
    let mut infos = Vec::new();
    let mut defaults = Vec::new();
    let mut parses = Vec::new();
    let mut emits = Vec::new();
    let mut walks = Vec::new();
    let mut validates = Vec::new();
    let mut eqs = Vec::new();
    let mut own = 0usize;
    let mut keys = Vec::new();
    let mut reflects = Vec::new();
    let mut setters = Vec::new();
    let mut slots = Vec::new();
    let mut lacks = Vec::new();
    for field in &named.named {
        let ident = field.ident.as_ref().expect("named field");
        if ident == "explicit" {
            has_explicit = true;
            defaults.push(quote!(explicit: crate::FieldSet::EMPTY));
            continue;
        }
        if base.as_ref().is_some_and(|b| &b.ident == ident) {
            continue;
        }
        let index = quote!((#base_len + #own));
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
                <#ty as crate::FieldType>::parse_default_into(&mut self.#ident, value, ctx)
            },
            Some(_) => quote! {
                match <#ty as crate::FieldType>::parse(value, ctx) {
                    Some(parsed) => {
                        self.#ident = parsed;
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
                        explicit.insert(#index);
                    }
                    ctx.leave();
                }
                None => { #missing }
            }
        });
        // The hint is read from the table of the class being written: a subclass may
        // re-declare it.
        emits.push(quote! {
            crate::emit_field(
                out,
                #key,
                crate::FieldType::serialize(&self.#ident, verbosity),
                if explicit.contains(#index) || verbosity.includes(fields[#index].hint) {
                    crate::Presence::Explicit
                } else {
                    crate::Presence::Implicit
                },
            );
        });
        walks.push(quote! {
            path.push(#key.to_string());
            if fields[#index].hint == crate::FieldHint::Architecture {
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
        // Own fields are matched by their number past the base's, a literal pattern.
        setters.push(quote! {
            ::core::option::Option::Some(#own) => {
                let prior = if explicit.contains(#index) { crate::Prior::Written } else { #unwritten };
                crate::FieldType::write(&mut self.#ident, rest, value, prior, ctx)?;
                explicit.insert(#index);
                ::core::result::Result::Ok(())
            }
        });
        slots.push(quote! {
            ::core::option::Option::Some(#own) => crate::FieldType::slot_at(&mut self.#ident, rest),
        });
        let missing = if required {
            quote!(!explicit.contains(#index) ||)
        } else {
            quote!()
        };
        lacks.push(quote! {
            #missing (explicit.contains(#index) && crate::FieldType::lacks_required(&self.#ident))
        });
        own += 1;
    }
    if !has_explicit {
        return Err(syn::Error::new_spanned(
            name,
            "Config structs need a field `explicit: FieldSet`",
        ));
    }
    let field_body = by_length(&reflects);
    let index_body = by_length(&keys);
    let own_fields = quote!({
        const OWN: &[crate::FieldInfo] = &[#(#infos),*];
        OWN
    });
    let inherited = match &base {
        Some(b) => Inherited::of(name, b, own_fields)?,
        None => Inherited::none(own_fields),
    };
    let Inherited {
        default: base_default,
        fields: fields_table,
        field_index: base_field_index,
        reflect: base_reflect,
        parse: base_parse,
        emit: base_emit,
        walk: base_walk,
        validate: base_validate,
        rules: base_rules,
        deref: base_deref,
        write: base_write,
        slot: base_slot,
        lacks: base_lacks,
    } = inherited;
    if let Some(base) = &base {
        let ident = &base.ident;
        eqs.insert(0, quote!(self.#ident == other.#ident));
    }
    let eq_body = if eqs.is_empty() {
        quote!(true)
    } else {
        quote!(#(#eqs)&&*)
    };

    lacks.insert(0, base_lacks);
    let lacks_body = quote!(#(#lacks)||*);
    let field_type_common = field_type_common(class);
    let write_signature = write_signature();
    Ok(quote! {
        impl ::core::default::Default for #name {
            fn default() -> Self {
                Self { #base_default #(#defaults,)* }
            }
        }

        impl ::core::cmp::PartialEq for #name {
            fn eq(&self, other: &Self) -> bool {
                #eq_body
            }
        }

        const _: () = assert!(
            <#name as crate::ConfigClass>::FIELDS.len() <= 64,
            "FieldSet holds at most 64 fields"
        );

        impl crate::ConfigClass for #name {
            const CLASS_NAME: &'static str = #class;
            const TYPE_NAME: Option<&'static str> = #type_name;
            const TYPE_ALIASES: &'static [&'static str] = &[#(#aliases),*];
            const FIELDS: &'static [crate::FieldInfo] = #fields_table;

            fn field_index(name: &str) -> Option<usize> {
                (#index_body) #base_field_index
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
                crate::Fields::emit_fields(self, &mut out, verbosity, Self::FIELDS, self.explicit);
                out
            }

            fn walk_architecture(&self, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
                crate::Fields::walk_fields(self, Self::FIELDS, path, out);
            }

            fn validate_in(&mut self, ctx: &mut crate::Ctx) {
                ctx.with_class(#class, |ctx| {
                    crate::Fields::derive_all_defaults(self, ctx);
                    crate::Fields::validate_fields(self, ctx);
                    crate::Fields::check_all(self, ctx);
                });
            }

            fn explicit_fields(&self) -> crate::FieldSet {
                self.explicit
            }
        }

        impl crate::Fields for #name {
            fn parse_fields(
                &mut self,
                found: &[Option<&crate::Value>],
                explicit: &mut crate::FieldSet,
                ctx: &mut crate::Ctx,
            ) {
                #base_parse
                #(#parses)*
            }

            fn emit_fields(
                &self,
                out: &mut crate::Map,
                verbosity: crate::Verbosity,
                fields: &[crate::FieldInfo],
                explicit: crate::FieldSet,
            ) {
                #base_emit
                #(#emits)*
            }

            fn walk_fields(&self, fields: &[crate::FieldInfo], path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
                #base_walk
                #(#walks)*
            }

            fn validate_fields(&mut self, ctx: &mut crate::Ctx) {
                #base_validate
                #(#validates)*
            }

            fn write_field_at(
                &mut self,
                write: crate::FieldWrite<'_>,
                explicit: &mut crate::FieldSet,
                ctx: &mut crate::Ctx,
            ) -> ::core::result::Result<(), crate::Unwritable> {
                let crate::FieldWrite { index, rest, value } = write;
                match index.checked_sub(#base_len) {
                    #(#setters)*
                    #base_write
                    _ => ::core::result::Result::Err(crate::Unwritable),
                }
            }

            fn slot_field_at(&mut self, index: usize, rest: &str) -> ::core::option::Option<&mut dyn crate::WriteSlot> {
                match index.checked_sub(#base_len) {
                    #(#slots)*
                    #base_slot
                    _ => ::core::option::Option::None,
                }
            }

            fn lacks_required_fields(&self, explicit: crate::FieldSet) -> bool {
                #lacks_body
            }

            #base_rules
        }

        #base_deref

        impl #name {
            /// Reads a dict into `out`, which holds the class defaults: present keys become
            /// explicit, absent ones keep their defaults.
            fn fill_from_map(out: &mut Self, input: &crate::Map, ctx: &mut crate::Ctx) {
                let owned = if <Self as crate::Fields>::rewrites_any_input(input) {
                    let mut copy = input.clone();
                    ctx.with_class(#class, |ctx| <Self as crate::Fields>::rewrite_all_input(&mut copy, ctx));
                    Some(copy)
                } else {
                    None
                };
                let map = owned.as_ref().unwrap_or(input);
                // One pass over the input finds every field's value, instead of one search
                // per declared field (most are absent).
                let mut found: [Option<&crate::Value>; <#name as crate::ConfigClass>::FIELDS.len()] =
                    [None; <#name as crate::ConfigClass>::FIELDS.len()];
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
                    let mut explicit = out.explicit;
                    crate::Fields::parse_fields(out, &found, &mut explicit, ctx);
                    out.explicit = explicit;
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
                let ::core::option::Option::Some(index) = <Self as crate::ConfigClass>::field_index(name) else {
                    return ::core::result::Result::Err(crate::Unwritable);
                };
                // The explicit set is the class's, which an inherited field's write marks too.
                let mut explicit = self.explicit;
                let written = crate::Fields::write_field_at(self, crate::FieldWrite { index, rest, value }, &mut explicit, ctx);
                self.explicit = explicit;
                written
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
                (#field_body) #base_reflect
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
            #[inline]
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
            #write_signature {
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
                    if prior == crate::Prior::Written || <Self as crate::Fields>::rewrites_any_input(map) {
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
            fn slot_at(&mut self, path: &str) -> ::core::option::Option<&mut dyn crate::WriteSlot> {
                if path.is_empty() {
                    return ::core::option::Option::Some(self);
                }
                match crate::split_path(path) {
                    ("type", "") => ::core::option::Option::None,
                    (part, rest) => {
                        let index = <Self as crate::ConfigClass>::field_index(part)?;
                        crate::Fields::slot_field_at(self, index, rest)
                    }
                }
            }
            fn lacks_required(&self) -> bool {
                crate::Fields::lacks_required_fields(self, self.explicit)
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

/// The generated code of a flattened base (`#[config(base)]`), kept apart from the class's own
/// fields': each piece runs the base's part first, as its fields come first. Without a base,
/// every piece is empty and the class's table is its own fields.
struct Inherited {
    /// The base's entry in `Default` (with re-declared defaults applied).
    default: TokenStream2,
    /// `FIELDS`: the base's table, with the re-declared hints, then the class's own.
    fields: TokenStream2,
    /// Appended to `field_index`'s own-field lookup.
    field_index: TokenStream2,
    /// Appended to `Reflect::field`'s own-field lookup.
    reflect: TokenStream2,
    parse: TokenStream2,
    emit: TokenStream2,
    walk: TokenStream2,
    validate: TokenStream2,
    /// The `Fields` rule chain (base's rules, then the class's).
    rules: TokenStream2,
    /// `Deref`/`DerefMut` to the base, so inherited fields read as the class's own.
    deref: TokenStream2,
    /// `write_field_at`'s arm for a field number below the class's own: the base's field.
    write: TokenStream2,
    /// `slot_field_at`'s arm for a field number below the class's own: the base's field.
    slot: TokenStream2,
    /// Whether an inherited field lacks a required field (`lacks_required_fields`'s first term).
    lacks: TokenStream2,
}

impl Inherited {
    /// A class without a base: its table is `own_fields`.
    fn none(own_fields: TokenStream2) -> Self {
        Inherited {
            default: quote!(),
            fields: own_fields,
            field_index: quote!(),
            reflect: quote!(),
            parse: quote!(),
            emit: quote!(),
            walk: quote!(),
            validate: quote!(),
            rules: quote!(),
            deref: quote!(),
            write: quote!(),
            slot: quote!(),
            lacks: quote!(false),
        }
    }

    /// Class `name`'s part from `base`, given its own fields' table.
    fn of(name: &Ident, base: &BaseField, own_fields: TokenStream2) -> syn::Result<Self> {
        let BaseField { ident, ty, redeclared } = base;
        let mut default_sets = Vec::new();
        let mut hint_sets = Vec::new();
        for entry in redeclared {
            let field = &entry.name;
            let key = LitStr::new(&field.to_string(), field.span());
            if entry.default.is_none() && entry.hint.is_none() {
                return Err(syn::Error::new_spanned(
                    field,
                    "redeclare a `default`, a `hint` or both",
                ));
            }
            if let Some(default) = &entry.default {
                default_sets.push(quote!(base.#field = ::core::convert::Into::into(#default);));
            }
            if let Some(hint) = &entry.hint {
                let hint = hint_variant(hint)?;
                hint_sets.push(quote!((#key, #hint)));
            }
        }
        let default = if default_sets.is_empty() {
            quote!(#ident: ::core::default::Default::default(),)
        } else {
            quote!(#ident: {
                let mut base = <#ty as ::core::default::Default>::default();
                #(#default_sets)*
                base
            },)
        };
        Ok(Inherited {
            default,
            fields: quote!(&crate::inherited_fields::<{ <#ty as crate::ConfigClass>::FIELDS.len() + (#own_fields).len() }>(
                <#ty as crate::ConfigClass>::FIELDS,
                &[#(#hint_sets),*],
                #own_fields,
            )),
            field_index: quote!(.or_else(|| <#ty as crate::ConfigClass>::field_index(name))),
            reflect: quote!(.or_else(|| crate::Reflect::field(&self.#ident, name))),
            parse: quote!(crate::Fields::parse_fields(&mut self.#ident, found, explicit, ctx);),
            emit: quote!(crate::Fields::emit_fields(&self.#ident, out, verbosity, fields, explicit);),
            walk: quote!(crate::Fields::walk_fields(&self.#ident, fields, path, out);),
            validate: quote!(crate::Fields::validate_fields(&mut self.#ident, ctx);),
            write: quote! {
                ::core::option::Option::None => crate::Fields::write_field_at(&mut self.#ident, write, explicit, ctx),
            },
            slot: quote! {
                ::core::option::Option::None => crate::Fields::slot_field_at(&mut self.#ident, index, rest),
            },
            lacks: quote!(crate::Fields::lacks_required_fields(&self.#ident, explicit)),
            rules: quote! {
                fn derive_all_defaults(&mut self, ctx: &mut crate::Ctx) {
                    crate::Fields::derive_all_defaults(&mut self.#ident, ctx);
                    <Self as crate::ClassRules>::derive_defaults(self, ctx);
                }
                fn check_all(&mut self, ctx: &mut crate::Ctx) {
                    crate::Fields::check_all(&mut self.#ident, ctx);
                    <Self as crate::ClassRules>::check(self, ctx);
                }
                fn rewrites_any_input(map: &crate::Map) -> bool {
                    <#ty as crate::Fields>::rewrites_any_input(map) || <Self as crate::ClassRules>::rewrites_input(map)
                }
                fn rewrite_all_input(map: &mut crate::Map, ctx: &mut crate::Ctx) {
                    <#ty as crate::Fields>::rewrite_all_input(map, ctx);
                    <Self as crate::ClassRules>::rewrite_input(map, ctx);
                }
            },
            deref: quote! {
                impl ::core::ops::Deref for #name {
                    type Target = #ty;
                    fn deref(&self) -> &#ty {
                        &self.#ident
                    }
                }

                impl ::core::ops::DerefMut for #name {
                    fn deref_mut(&mut self) -> &mut #ty {
                        &mut self.#ident
                    }
                }
            },
        })
    }
}

/// What every config's `FieldType` impl holds, struct or polymorphic enum: its kind is its
/// class name, and it is a config (read through `Reflect`).
fn field_type_common(class: &LitStr) -> TokenStream2 {
    quote! {
        const KIND: &'static str = #class;
        const IS_CONFIG: bool = true;
        const HAS_WRITE_SLOT: bool = true;
        fn as_config(&self) -> Option<&dyn crate::Reflect> {
            Some(self)
        }
        fn reflect(&self) -> crate::Field<'_> {
            crate::Field::Config(self)
        }
    }
}

/// The signature of `FieldType::write`, which a config struct and a dynamic config enum both
/// implement (their bodies differ: a struct stores fields, an enum first chooses its variant).
fn write_signature() -> TokenStream2 {
    quote! {
        fn write(
            &mut self,
            path: &str,
            value: &crate::Value,
            prior: crate::Prior,
            ctx: &mut crate::Ctx,
        ) -> ::core::result::Result<(), crate::Unwritable>
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
            #[inline]
            fn default_slot() -> Option<Self> {
                Some(<Self as ::core::default::Default>::default())
            }
        },
        None => quote! {
            #[inline]
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
    let write_signature = write_signature();
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
            #write_signature {
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
            fn slot_at(&mut self, path: &str) -> ::core::option::Option<&mut dyn crate::WriteSlot> {
                if path.is_empty() {
                    return ::core::option::Option::Some(self);
                }
                match self {
                    #( Self::#variants(inner) => crate::FieldType::slot_at(inner, path), )*
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
