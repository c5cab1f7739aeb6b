//! Section converters: a Fast-LLM config class ↔ an HF dict subtree, declared as an ordered table
//! of named primitives.
//!
//! A child format is its parent's table with entries replaced (keeping their position) or added
//! (appended): `llama_attention().replace("add_linear_biases", Decl::const_import(...))`. The
//! primitives a declaration can be are in [`crate::primitives`].

use std::sync::Arc;

use fastllm_config::{ConfigClass, Form, Map, Value};

use crate::fl::{Checked, Fl};
use crate::primitives::{Primitive, Shape};
use crate::{HfLayout, Problem};
use fastllm_hf::Unconverted;

/// The Fast-LLM class a section converts: what coverage checks need to know about it.
#[derive(Clone, Copy)]
pub struct FlClass {
    /// The Python class name.
    pub name: &'static str,
    /// Its dynamic `type` name; import injects it, export requires it.
    pub type_name: Option<&'static str>,
    /// Architecture paths of a default instance.
    pub architecture_paths: fn() -> Vec<Vec<String>>,
    /// The full-form dict of a default instance (for sentinel checks).
    pub default_dict: fn() -> Map,
}

impl FlClass {
    /// The description of config class `T`.
    pub fn of<T: ConfigClass>() -> Self {
        FlClass {
            name: T::CLASS_NAME,
            type_name: T::TYPE_NAME,
            architecture_paths: || T::default().architecture_paths(),
            default_dict: || T::default().to_form(Form::Full),
        }
    }
}

/// What an export function sees besides the section's Fast-LLM config.
pub struct ExportContext<'a> {
    pub layout: HfLayout,
    pub format: &'a str,
    /// The Fast-LLM path of the section (for messages).
    pub fast_llm_path: &'a str,
}

/// What an import function sees besides the section's HF dict.
pub struct ImportContext<'a> {
    /// The whole HF dict as the config class loaded it (for cross-section fallbacks).
    pub root: &'a Map,
    pub format: &'a str,
    /// The HF path of the section (for messages).
    pub hf_path: &'a str,
}

/// A list of `(path, value)` writes, or the problems that prevented them.
pub type Writes = Result<Vec<(String, Value)>, Vec<Problem>>;

/// One HF write of a custom export, with the Fast-LLM path it comes from (relative to the
/// section) when that is more precise than the declaration's own path.
#[derive(Debug, Clone, PartialEq)]
pub struct HfWrite {
    pub key: String,
    pub value: Value,
    pub source: Option<String>,
}

impl HfWrite {
    /// A write of `value` at `key`, sourced at the declaration's own path.
    pub fn new(key: impl Into<String>, value: Value) -> Self {
        HfWrite {
            key: key.into(),
            value,
            source: None,
        }
    }
}

impl From<(String, Value)> for HfWrite {
    fn from((key, value): (String, Value)) -> Self {
        HfWrite::new(key, value)
    }
}

/// HF writes of a custom export, or the problems that prevented them.
pub type HfWrites = Result<Vec<HfWrite>, Vec<Problem>>;
/// A cross-field export rule: the section's typed Fast-LLM config → problems (paths relative).
pub type ValidateFn = Arc<dyn Fn(Fl) -> Checked + Send + Sync>;

/// How far a declaration's Fast-LLM paths reach, for architecture coverage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Covers {
    /// Exactly the listed paths: each architecture sub-field needs a declaration of its own.
    Exact,
    /// The listed paths and everything below them.
    Subtree,
}

/// One declaration of a section: a primitive ([`crate::primitives`]), built by the `Decl`
/// constructors each primitive's module defines (`Decl::rename`, `Decl::nested`, ...).
#[derive(Clone)]
pub struct Decl(Arc<dyn Primitive>);

impl Decl {
    pub(crate) fn new(primitive: impl Primitive + 'static) -> Self {
        Decl(Arc::new(primitive))
    }

    /// The primitive's name, as in Fast-LLM.
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    pub(crate) fn primitive(&self) -> &dyn Primitive {
        &*self.0
    }

    /// What it claims and runs; `name` is its name in the section.
    pub(crate) fn shape(&self, name: &str) -> Shape {
        self.0.shape(name)
    }
}

/// A section converter: an ordered table of named declarations for one Fast-LLM class.
#[derive(Clone)]
pub struct Section {
    /// A name for messages and `explain` (e.g. `llama.attention`).
    pub(crate) name: &'static str,
    pub(crate) class: FlClass,
    /// The HF discriminator value this section is found under (for `Dispatch`/`TypedDict`).
    pub(crate) hf_type_name: Option<&'static str>,
    pub(crate) decls: Vec<(&'static str, Decl)>,
    pub(crate) validators: Vec<(&'static str, ValidateFn)>,
    /// The weight declarations, composed like `decls` (named, replaceable).
    pub(crate) weights: Vec<(&'static str, crate::weights::WeightDecl)>,
    /// HF tensor-name prefixes read in another spelling too: `(declared, alternative)`. Only a
    /// root section's count; see [`Section::hf_prefix_alias`].
    pub(crate) hf_prefix_aliases: Vec<(&'static str, &'static str)>,
    /// Parts of the HF checkpoint the format recognises but does not convert. Only a root
    /// section's count; see [`Section::unconverted`].
    pub(crate) unconverted: Vec<Unconverted>,
}

impl Section {
    /// An empty section for config class `T`.
    pub fn of<T: ConfigClass>(name: &'static str) -> Self {
        Section {
            name,
            class: FlClass::of::<T>(),
            hf_type_name: None,
            decls: Vec::new(),
            validators: Vec::new(),
            weights: Vec::new(),
            hf_prefix_aliases: Vec::new(),
            unconverted: Vec::new(),
        }
    }

    /// Lets an HF checkpoint spell the declared tensor-name prefix `declared` as `alternative`
    /// (e.g. transformers ≥ 4.52 saves Llava's `language_model.model.` as
    /// `model.language_model.`). A checkpoint that uses any alternative prefix is read with all of
    /// them; writing always uses the declared names.
    pub fn hf_prefix_alias(mut self, declared: &'static str, alternative: &'static str) -> Self {
        self.hf_prefix_aliases.push((declared, alternative));
        self
    }

    /// Declares `part` of the HF checkpoint (a multimodal wrapper's vision tower) as recognised
    /// but not converted: its keys are claimed, the export writes what the HF class gives them
    /// when absent, and importing anything else of it needs the user's consent
    /// ([`crate::unconverted`]).
    pub fn unconverted(mut self, part: Unconverted) -> Self {
        self.unconverted.push(part);
        self
    }

    /// The same table on config class `T` (a root class that holds the same fields, e.g. the
    /// multimodal root over a text root's table).
    pub fn on_class<T: ConfigClass>(mut self) -> Self {
        self.class = FlClass::of::<T>();
        self
    }

    /// Renames the section (a child format's copy).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Sets the HF discriminator value.
    pub fn hf_type(mut self, name: &'static str) -> Self {
        self.hf_type_name = Some(name);
        self
    }

    /// Appends a declaration. A duplicate name is a declaration bug and panics at build time.
    pub fn add(mut self, name: &'static str, decl: impl Into<Decl>) -> Self {
        self.named_decls().push(name, decl.into());
        self
    }

    /// Adds [`Decl::rename`]`(fl, hf)`, named `fl`.
    pub fn rename(self, fl: &'static str, hf: &'static str) -> Self {
        self.add(fl, Decl::rename(fl, hf))
    }

    /// Adds [`Decl::same`]`(fl)` (the HF key of the same name), named `fl`.
    pub fn same(self, fl: &'static str) -> Self {
        self.add(fl, Decl::same(fl))
    }

    /// Adds [`Decl::const_import`]`(fl, value)`, named `fl`.
    pub fn constant(self, fl: &'static str, value: Value) -> Self {
        self.add(fl, Decl::const_import(fl, value))
    }

    /// Replaces the declaration named `fl` by [`Decl::const_import`]`(fl, value)`.
    pub fn replace_constant(self, fl: &'static str, value: Value) -> Self {
        self.replace(fl, Decl::const_import(fl, value))
    }

    /// Adds [`Decl::optional`]`(fl, hf, sentinel)`, named `fl`.
    pub fn optional(self, fl: &'static str, hf: &'static str, sentinel: Value) -> Self {
        self.add(fl, Decl::optional(fl, hf, sentinel))
    }

    /// Adds [`Decl::ignored`]`(fl)`, named by its first path.
    pub fn ignore(self, fl: &'static [&'static str]) -> Self {
        self.add(fl.first().copied().unwrap_or(""), Decl::ignored(fl))
    }

    /// Replaces the declaration `name`, keeping its position.
    pub fn replace(mut self, name: &'static str, decl: impl Into<Decl>) -> Self {
        self.named_decls().replace(name, decl.into());
        self
    }

    /// Removes the declaration `name`.
    pub fn remove(mut self, name: &'static str) -> Self {
        self.named_decls().remove(name);
        self
    }

    /// Adds (or replaces) a named export rule.
    pub fn validate(mut self, name: &'static str, rule: impl Fn(Fl) -> Checked + Send + Sync + 'static) -> Self {
        self.validators.retain(|(n, _)| *n != name);
        self.validators.push((name, Arc::new(rule)));
        self
    }

    /// Removes the export rule `name`.
    pub fn without_validator(mut self, name: &'static str) -> Self {
        self.validators.retain(|(n, _)| *n != name);
        self
    }

    /// Appends a weight declaration.
    pub fn weight(mut self, name: &'static str, decl: impl Into<crate::weights::WeightDecl>) -> Self {
        self.named_weights().push(name, decl.into());
        self
    }

    /// Replaces the weight declaration `name`, keeping its position.
    pub fn replace_weight(mut self, name: &'static str, decl: impl Into<crate::weights::WeightDecl>) -> Self {
        self.named_weights().replace(name, decl.into());
        self
    }

    /// Inserts a weight declaration just before the weight declaration `anchor` (parameters
    /// Fast-LLM orders before it). A duplicate name or a missing anchor is a declaration bug and
    /// panics at build time.
    pub fn weight_before(
        mut self,
        anchor: &'static str,
        name: &'static str,
        decl: impl Into<crate::weights::WeightDecl>,
    ) -> Self {
        self.named_weights().insert_before(anchor, name, decl.into());
        self
    }

    /// The same table with its weight declarations mounted under the HF prefix `hf`, as the one
    /// weight declaration `name` (a text model's weights inside the module a root names, e.g.
    /// Gemma 4's `model`, while a multimodal wrapper mounts the same table elsewhere).
    pub fn weights_under(mut self, name: &'static str, hf: &'static str) -> Self {
        let section = self.clone().build();
        self.weights = vec![(name, crate::weights::under_hf(hf, &section))];
        self
    }

    /// Freezes the section for sharing.
    pub fn build(self) -> Arc<Section> {
        Arc::new(self)
    }

    /// Its name, for messages and `explain`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Fast-LLM class it converts.
    pub fn class(&self) -> &FlClass {
        &self.class
    }

    /// The HF discriminator value it is found under, if any.
    pub fn hf_type_name(&self) -> Option<&'static str> {
        self.hf_type_name
    }

    /// Its declarations, in order.
    pub fn decls(&self) -> &[(&'static str, Decl)] {
        &self.decls
    }

    /// Its weight declarations, in order.
    pub fn weights(&self) -> &[(&'static str, crate::weights::WeightDecl)] {
        &self.weights
    }

    /// The HF tensor-name prefixes read in another spelling too (a root section's).
    pub fn hf_prefix_aliases(&self) -> &[(&'static str, &'static str)] {
        &self.hf_prefix_aliases
    }

    /// The parts of the HF checkpoint it recognises but does not convert (a root section's).
    pub fn unconverted_parts(&self) -> &[Unconverted] {
        &self.unconverted
    }

    /// The declaration `name`.
    pub fn decl(&self, name: &str) -> Option<&Decl> {
        self.decls.iter().find(|(n, _)| *n == name).map(|(_, d)| d)
    }

    fn named_decls(&mut self) -> NamedEntries<'_, Decl> {
        NamedEntries {
            section: self.name,
            kind: "declaration",
            entries: &mut self.decls,
        }
    }

    fn named_weights(&mut self) -> NamedEntries<'_, crate::weights::WeightDecl> {
        NamedEntries {
            section: self.name,
            kind: "weight declaration",
            entries: &mut self.weights,
        }
    }
}

/// One of a section's tables of named entries (declarations, weight declarations), edited by a
/// builder. Names are unique within a table; a duplicate name, or a name to replace, remove or
/// insert before that is not there, is a bug in a format's declarations, so it panics when the
/// table is built, naming the section, the kind of entry and the name.
struct NamedEntries<'a, T> {
    section: &'static str,
    kind: &'static str,
    entries: &'a mut Vec<(&'static str, T)>,
}

impl<T> NamedEntries<'_, T> {
    fn push(self, name: &'static str, entry: T) {
        self.assert_absent(name);
        self.entries.push((name, entry));
    }

    fn insert_before(self, anchor: &'static str, name: &'static str, entry: T) {
        self.assert_absent(name);
        let position = self.position(anchor, "");
        self.entries.insert(position, (name, entry));
    }

    fn replace(self, name: &'static str, entry: T) {
        let position = self.position(name, " to replace");
        self.entries[position].1 = entry;
    }

    fn remove(self, name: &'static str) {
        let position = self.position(name, " to remove");
        self.entries.remove(position);
    }

    fn assert_absent(&self, name: &str) {
        let (section, kind) = (self.section, self.kind);
        assert!(
            self.entries.iter().all(|(n, _)| *n != name),
            "{section}: duplicate {kind} `{name}`"
        );
    }

    /// Where entry `name` stands; `purpose` ends the panic message when it is not there.
    fn position(&self, name: &str, purpose: &str) -> usize {
        let position = self.entries.iter().position(|(n, _)| *n == name);
        let (section, kind) = (self.section, self.kind);
        position.unwrap_or_else(|| panic!("{section}: no {kind} `{name}`{purpose}"))
    }
}

#[cfg(test)]
mod tests {
    use fastllm_config::RmsNormalizationConfig;
    use rstest::rstest;

    use super::*;
    use crate::weights::{Transform, WeightDecl};

    fn weight(name: &'static str) -> WeightDecl {
        WeightDecl::param(name, &["w"], Transform::Copy, |_| vec![1])
    }

    fn norm() -> Section {
        Section::of::<RmsNormalizationConfig>("test.norm")
            .same("epsilon")
            .weight("weight", weight("weight"))
    }

    #[rstest]
    #[case::duplicate_declaration(|s: Section| s.same("epsilon"), "test.norm: duplicate declaration `epsilon`")]
    #[case::declaration_to_replace(|s: Section| s.replace("eps", Decl::same("eps")), "test.norm: no declaration `eps` to replace")]
    #[case::declaration_to_remove(|s: Section| s.remove("eps"), "test.norm: no declaration `eps` to remove")]
    #[case::duplicate_weight(|s: Section| s.weight("weight", weight("weight")), "test.norm: duplicate weight declaration `weight`")]
    #[case::duplicate_weight_before(|s: Section| s.weight_before("weight", "weight", weight("weight")), "test.norm: duplicate weight declaration `weight`")]
    #[case::missing_anchor(|s: Section| s.weight_before("bias", "scale", weight("scale")), "test.norm: no weight declaration `bias`")]
    #[case::weight_to_replace(|s: Section| s.replace_weight("bias", weight("bias")), "test.norm: no weight declaration `bias` to replace")]
    fn a_declaration_bug_panics_naming_the_section_and_the_name(
        #[case] edit: fn(Section) -> Section,
        #[case] message: &str,
    ) {
        let panic = std::panic::catch_unwind(|| edit(norm()))
            .err()
            .expect("the edit panics");
        let found = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(found, message);
    }

    fn names<T>(entries: &[(&'static str, T)]) -> Vec<&'static str> {
        entries.iter().map(|(name, _)| *name).collect()
    }

    #[test]
    fn edits_keep_each_entry_in_its_place() {
        let section = norm()
            .same("implementation")
            .replace("epsilon", Decl::same("epsilon"))
            .weight_before("weight", "scale", weight("scale"))
            .replace_weight("weight", weight("weight"));
        assert_eq!(names(section.decls()), ["epsilon", "implementation"]);
        assert_eq!(names(section.weights()), ["scale", "weight"]);
        assert_eq!(names(section.remove("epsilon").decls()), ["implementation"]);
    }
}
