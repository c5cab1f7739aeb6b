//! Validation errors: each names the config path, the Fast-LLM class and the rule.

use std::fmt;

/// What went wrong at one config path.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorKind {
    /// A key the class does not declare (Fast-LLM: "Unknown field").
    UnknownField,
    /// A field without a default was not given.
    MissingField { field: &'static str },
    /// The value has the wrong type (Fast-LLM's strict type check: no bool for int, no str for bool).
    WrongType { expected: &'static str, found: String },
    /// A `type` name no class of the base's registry has.
    UnknownType {
        name: String,
        base: &'static str,
        known: &'static [&'static str],
    },
    /// A `type` name that is not the class this field requires.
    TypeMismatch { name: String, expected: &'static str },
    /// The base class has no default subclass and `type` is missing.
    AbstractClass { class: &'static str },
    /// A validation rule of the class or field failed.
    Rule(String),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::UnknownField => write!(f, "unknown field"),
            ErrorKind::MissingField { field } => write!(f, "missing required field `{field}`"),
            ErrorKind::WrongType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            ErrorKind::UnknownType { name, base, known } => {
                let known: Vec<&str> = known.iter().copied().filter(|k| !k.is_empty()).collect();
                let name = crate::printable(name);
                write!(f, "unknown type `{name}` for {base} (known: {})", known.join(", "))
            }
            ErrorKind::TypeMismatch { name, expected } => {
                write!(
                    f,
                    "type `{}` is not allowed here, expected `{expected}`",
                    crate::printable(name)
                )
            }
            ErrorKind::AbstractClass { class } => {
                write!(f, "{class} is abstract: a `type` is required")
            }
            ErrorKind::Rule(rule) => f.write_str(rule),
        }
    }
}

/// One validation failure.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    /// Dotted Fast-LLM path, e.g. `decoder.block.mixer.heads`; empty for the root.
    pub path: String,
    /// The Fast-LLM class whose field or rule failed.
    pub class: &'static str,
    pub kind: ErrorKind,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() { "<root>" } else { &self.path };
        write!(f, "`{}` ({}): {}", crate::printable(path), self.class, self.kind)
    }
}

/// Every problem found in a config, in the order they were found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigErrors {
    pub errors: Vec<ValidationError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "invalid Fast-LLM config ({n} error{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            // One line each, whatever the input's keys hold.
            write!(f, "\n  {}", crate::printable(&error.to_string()))?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// True if some error is at `path` and its message contains `needle`.
    pub fn mentions(&self, path: &str, needle: &str) -> bool {
        self.errors
            .iter()
            .any(|e| e.path == path && e.to_string().contains(needle))
    }
}

/// The walk state while parsing and validating: current path, current class, collected errors.
#[derive(Debug, Default)]
pub struct Ctx {
    /// The dotted path, in one buffer: entering a key appends to it, so a walk over every field
    /// costs no allocation per field.
    path: String,
    /// Where each entered segment starts in `path` (the dot before it included).
    segments: Vec<usize>,
    classes: Vec<&'static str>,
    errors: Vec<ValidationError>,
}

impl Ctx {
    /// A context at the root path.
    pub fn new() -> Self {
        Self::default()
    }

    /// Descends into `key` (a field name, dict key or list index).
    pub fn enter(&mut self, key: impl AsRef<str>) {
        self.segments.push(self.path.len());
        if self.segments.len() > 1 {
            self.path.push('.');
        }
        self.path.push_str(key.as_ref());
    }

    /// Leaves the last entered key.
    pub fn leave(&mut self) {
        if let Some(start) = self.segments.pop() {
            self.path.truncate(start);
        }
    }

    /// Runs `f` with `key` entered.
    pub fn at<R>(&mut self, key: impl AsRef<str>, f: impl FnOnce(&mut Self) -> R) -> R {
        self.enter(key);
        let out = f(self);
        self.leave();
        out
    }

    /// Runs `f` inside `class`, so its errors name that class.
    pub fn with_class<R>(&mut self, class: &'static str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.classes.push(class);
        let out = f(self);
        self.classes.pop();
        out
    }

    /// The current dotted path.
    pub fn path(&self) -> String {
        self.path.clone()
    }

    /// Records an error at the current path.
    pub fn error(&mut self, kind: ErrorKind) {
        let class = self.classes.last().copied().unwrap_or("<value>");
        self.errors.push(ValidationError {
            path: self.path(),
            class,
            kind,
        });
    }

    /// Records a failed rule at the current path.
    pub fn rule(&mut self, message: impl Into<String>) {
        self.error(ErrorKind::Rule(message.into()));
    }

    /// Records a failed rule at `field` below the current path.
    pub fn rule_at(&mut self, field: &str, message: impl Into<String>) {
        let message = message.into();
        self.at(field, |ctx| ctx.rule(message));
    }

    /// Number of errors so far.
    pub fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Finishes the walk: `Ok(value)` when nothing failed.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors { errors: self.errors })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_entered_segments_joined_by_dots() {
        let mut ctx = Ctx::new();
        assert_eq!(ctx.path(), "");
        ctx.enter("");
        ctx.enter("x");
        assert_eq!(ctx.path(), ".x", "an empty segment still takes its dot");
        ctx.leave();
        ctx.leave();
        ctx.enter("decoder");
        ctx.at(String::from("blocks"), |ctx| {
            ctx.at(3.to_string(), |ctx| assert_eq!(ctx.path(), "decoder.blocks.3"));
            assert_eq!(ctx.path(), "decoder.blocks");
        });
        ctx.leave();
        ctx.leave();
        assert_eq!(ctx.path(), "", "leaving the root stays at the root");
    }
}
