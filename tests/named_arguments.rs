//! Calls read at the call site: no product function takes more than four positional arguments
//! (the receiver aside) or a bare `bool`. A flag or a long argument list becomes an option
//! struct with named fields, a builder or an enum. Scans every `fn` under `crates/*/src`, `src`
//! and `xtask/src`, test code aside.
//!
//! Not scanned: `#[cfg(test)]` items and `#[test]` functions (rstest's `#[case]` parameters
//! name themselves in the case list); the methods of `impl Trait for T`, whose signature the
//! trait fixes (the trait's own declaration is scanned); and `#[pyfunction]`s, which Python
//! calls with keywords. Everything else that breaks the rule is listed in `EXEMPT`, with why.

use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The most positional arguments a function takes, its receiver aside.
const MOST_ARGUMENTS: usize = 4;

/// Functions allowed to break the rule: file, function, why.
const EXEMPT: &[(&str, &str, &str)] = &[
    // Each converts a value that is a bool (a config field's or a document's), selecting no
    // behaviour.
    (
        "crates/core/src/values.rs",
        "boolean",
        "the value constructor of a bool",
    ),
    (
        "crates/config/src/classes/common.rs",
        "from_flag",
        "the value of `add_linear_biases`",
    ),
    (
        "crates/config/src/classes/block.rs",
        "default_activation",
        "the value of `gated`",
    ),
];

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The product source directories: each crate's `src`, the root package's and xtask's.
fn product_sources(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("src"), root.join("xtask/src")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            dirs.push(src);
        }
    }
    let mut files = Vec::new();
    for dir in dirs {
        sources(&dir, &mut files);
    }
    files.sort();
    files
}

/// Whether `attrs` hold `#[name]` (or `#[path::name]`).
fn has_attribute(attrs: &[syn::Attribute], name: &str) -> bool {
    attrs
        .iter()
        .any(|attr| attr.path().segments.last().is_some_and(|s| s.ident == name))
}

/// Whether `attrs` make an item test code: `#[test]` or `#[cfg(test)]`.
fn is_test_code(attrs: &[syn::Attribute]) -> bool {
    has_attribute(attrs, "test")
        || attrs.iter().any(|attr| {
            attr.path().is_ident("cfg") && attr.parse_args::<syn::Ident>().is_ok_and(|ident| ident == "test")
        })
}

/// Whether `ty` is the plain `bool` type.
fn is_bool(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(path) if path.qself.is_none() && path.path.is_ident("bool"))
}

/// Collects the signatures that break the rule, as `function: why` lines.
#[derive(Default)]
struct Scan {
    found: Vec<String>,
}

impl Scan {
    fn signature(&mut self, attrs: &[syn::Attribute], signature: &syn::Signature) {
        if is_test_code(attrs) || has_attribute(attrs, "pyfunction") {
            return;
        }
        let arguments: Vec<&syn::PatType> = signature
            .inputs
            .iter()
            .filter_map(|input| match input {
                syn::FnArg::Typed(typed) => Some(typed),
                syn::FnArg::Receiver(_) => None,
            })
            .collect();
        let name = &signature.ident;
        if arguments.len() > MOST_ARGUMENTS {
            self.found.push(format!("{name}: {} arguments", arguments.len()));
        }
        for argument in arguments.iter().filter(|argument| is_bool(&argument.ty)) {
            let pattern = quote_pattern(&argument.pat);
            self.found.push(format!("{name}: `{pattern}: bool`"));
        }
    }
}

/// A parameter's pattern as source text (`flag`, `_`, ...).
fn quote_pattern(pattern: &syn::Pat) -> String {
    match pattern {
        syn::Pat::Ident(ident) => ident.ident.to_string(),
        syn::Pat::Wild(_) => "_".to_string(),
        _ => "(pattern)".to_string(),
    }
}

impl<'ast> Visit<'ast> for Scan {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test_code(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if is_test_code(&item.attrs) {
            return;
        }
        self.signature(&item.attrs, &item.sig);
        syn::visit::visit_item_fn(self, item);
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if is_test_code(&item.attrs) {
            return;
        }
        if item.trait_.is_some() {
            // A trait impl's methods: the trait's declaration is what is scanned.
            for member in &item.items {
                if let syn::ImplItem::Fn(method) = member {
                    syn::visit::visit_block(self, &method.block);
                }
            }
            return;
        }
        syn::visit::visit_item_impl(self, item);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if is_test_code(&item.attrs) {
            return;
        }
        self.signature(&item.attrs, &item.sig);
        syn::visit::visit_impl_item_fn(self, item);
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        self.signature(&item.attrs, &item.sig);
        syn::visit::visit_trait_item_fn(self, item);
    }

    fn visit_foreign_item_fn(&mut self, item: &'ast syn::ForeignItemFn) {
        self.signature(&item.attrs, &item.sig);
    }
}

/// The rule's breaches in one file's text.
fn breaches(text: &str) -> Vec<String> {
    let file = syn::parse_file(text).unwrap_or_else(|e| panic!("parse: {e}"));
    let mut scan = Scan::default();
    scan.visit_file(&file);
    scan.found
}

#[test]
fn product_functions_take_at_most_four_arguments_and_no_bool() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = product_sources(root);
    assert!(files.len() > 100, "the sources were found: {files:?}");
    let mut found = Vec::new();
    let mut exempted = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let relative = file.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{relative}: {e}"));
        let mut scan = Scan::default();
        scan.visit_file(&parsed);
        for breach in scan.found {
            let function = breach.split(':').next().unwrap_or_default();
            if EXEMPT
                .iter()
                .any(|(path, name, _)| *path == relative && *name == function)
            {
                exempted.push((relative.clone(), function.to_string()));
            } else {
                found.push(format!("{relative}: {breach}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "take an option struct with named fields, a builder or an enum instead:\n{}",
        found.join("\n")
    );
    let stale: Vec<_> = EXEMPT
        .iter()
        .filter(|(path, name, _)| !exempted.iter().any(|(p, n)| p == path && n == name))
        .collect();
    assert!(stale.is_empty(), "exemptions that no longer break the rule: {stale:?}");
}

#[test]
fn a_long_or_flagged_signature_is_found_and_test_code_is_not() {
    let text = r#"
        pub fn five(a: u8, b: u8, c: u8, d: u8, e: u8) {}
        pub fn four(a: u8, b: u8, c: u8, d: u8) {}
        fn flagged(path: &str, force: bool) {}
        fn borrowed(flag: &bool) {}
        struct S;
        impl S {
            fn method(&self, a: u8, b: u8, c: u8, d: u8) {}
            fn switch(&mut self, on: bool) {}
        }
        trait T { fn declared(&self, on: bool); }
        impl T for S { fn declared(&self, on: bool) {} }
        #[test]
        fn a_test(x: bool) {}
        #[cfg(test)]
        mod tests { fn helper(a: u8, b: u8, c: u8, d: u8, e: u8) {} }
        fn outer() { fn inner(x: bool) {} }
    "#;
    assert_eq!(
        breaches(text),
        [
            "five: 5 arguments",
            "flagged: `force: bool`",
            "switch: `on: bool`",
            "declared: `on: bool`",
            "inner: `x: bool`",
        ]
    );
}
