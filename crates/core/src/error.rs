//! Conversion errors: every problem of one conversion, each naming the Fast-LLM path and/or HF key.

use std::fmt;

use fastllm_config::printable;

/// Which way a conversion goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// HF config → Fast-LLM config.
    Import,
    /// Fast-LLM config → HF config.
    Export,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Import => "import",
            Direction::Export => "export",
        })
    }
}

/// One reason a conversion was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The Fast-LLM config path concerned, if any.
    pub fast_llm: Option<String>,
    /// The HF config key concerned (dotted), if any.
    pub hf: Option<String>,
    /// What is wrong, with expected vs found.
    pub message: String,
}

impl Problem {
    /// A problem at a Fast-LLM path.
    pub fn at_fast_llm(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            fast_llm: Some(path.into()),
            hf: None,
            message: message.into(),
        }
    }

    /// A problem at an HF key.
    pub fn at_hf(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            fast_llm: None,
            hf: Some(key.into()),
            message: message.into(),
        }
    }
}

/// One problem where a list is expected (`?` in a read that collects them).
impl From<Problem> for Vec<Problem> {
    fn from(problem: Problem) -> Self {
        vec![problem]
    }
}

impl From<fastllm_hf::KeyProblem> for Problem {
    fn from(problem: fastllm_hf::KeyProblem) -> Self {
        Problem::at_hf(problem.key, problem.message)
    }
}

/// One line, whatever the input put in its keys or values (see [`printable`]).
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = printable(&self.message);
        match (&self.fast_llm, &self.hf) {
            (Some(fl), Some(hf)) => write!(f, "`{}` ↔ HF `{}`: {message}", printable(fl), printable(hf)),
            (Some(fl), None) => write!(f, "`{}`: {message}", printable(fl)),
            (None, Some(hf)) => write!(f, "HF `{}`: {message}", printable(hf)),
            (None, None) => f.write_str(&message),
        }
    }
}

/// Why a conversion failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConvertError {
    /// The config cannot be converted: every problem found, in declaration order.
    #[error("{}", render_rejection(.format, *.direction, .problems))]
    Rejected {
        format: String,
        direction: Direction,
        problems: Vec<Problem>,
    },
    /// No registered format has this name.
    #[error("unknown format `{name}`; registered formats: {}", .known.join(", "))]
    UnknownFormat { name: String, known: Vec<String> },
    /// `auto` found no format for the config's `model_type`.
    #[error("no registered format reads HF model_type {model_type}; known model types: {}", .known.join(", "))]
    UnknownModelType { model_type: String, known: Vec<String> },
}

fn render_rejection(format: &str, direction: Direction, problems: &[Problem]) -> String {
    render_problems(&format!("{format} {direction} rejected"), problems)
}

/// The message of an error that collects `problems`: `heading` with their count, then one
/// problem per indented line.
pub fn render_problems(heading: &str, problems: &[Problem]) -> String {
    let n = problems.len();
    let mut out = format!("{heading} ({n} problem{}):", if n == 1 { "" } else { "s" });
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    out
}

impl ConvertError {
    /// The problems of a rejection (empty for other errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConvertError::Rejected { problems, .. } => problems,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_counts_its_problems_and_lists_one_per_line() {
        let rejected = |problems: Vec<Problem>| {
            ConvertError::Rejected {
                format: "llama".into(),
                direction: Direction::Import,
                problems,
            }
            .to_string()
        };
        assert_eq!(
            rejected(vec![Problem::at_hf("rope_theta", "expected a number")]),
            "llama import rejected (1 problem):\n  HF `rope_theta`: expected a number"
        );
        assert_eq!(
            rejected(vec![
                Problem::at_fast_llm("decoder.num_blocks", "must be >= 0"),
                Problem::at_hf("vocab_size", "missing"),
            ]),
            "llama import rejected (2 problems):\n  `decoder.num_blocks`: must be >= 0\n  HF `vocab_size`: missing"
        );
    }
}
