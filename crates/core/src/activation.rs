//! Activation names: Fast-LLM's ↔ transformers' (`ACT2FN` keys), one table for every format.

use fastllm_config::{ActivationType, Value};

use crate::Claims;
use crate::Problem;
use crate::dict::show;
use crate::section::Decl;
use crate::values::text;

/// Fast-LLM activation ↔ HF name. HF `gelu` (the exact GELU) is also read, as Fast-LLM's tanh
/// GELU, as Fast-LLM does.
const NAMES: &[(ActivationType, &str)] = &[
    (ActivationType::Gelu, "gelu_pytorch_tanh"),
    (ActivationType::Silu, "silu"),
    (ActivationType::Relu, "relu"),
    (ActivationType::SquaredRelu, "relu2"),
    (ActivationType::Identity, "identity"),
    (ActivationType::Sigmoid, "sigmoid"),
];

/// The HF name of a Fast-LLM activation, if the table has one.
pub fn hf_name(fast_llm: ActivationType) -> Option<&'static str> {
    NAMES.iter().find(|(f, _)| *f == fast_llm).map(|(_, hf)| *hf)
}

/// The Fast-LLM activation an HF name reads as.
pub fn fast_llm_name(hf: &str) -> Option<ActivationType> {
    if hf == "gelu" {
        return Some(ActivationType::Gelu);
    }
    NAMES.iter().find(|(_, h)| *h == hf).map(|(f, _)| *f)
}

/// The section's `activation` ↔ the HF activation name under `key` (`hidden_act`,
/// `hidden_activation`, `projector_hidden_act`, ...): a value mapping, hence a Custom.
pub fn activation(key: &'static [&'static str; 1]) -> Decl {
    let name = key[0];
    Decl::custom(
        Claims::exact(&["activation"], key),
        move |fl, _| {
            let found = fl.activation()?;
            match found.and_then(hf_name) {
                Some(hf) => Ok(vec![(name.to_string(), text(hf)).into()]),
                None => {
                    let found = found.map_or(Value::Null, |a| text(a.as_str()));
                    let message = format!("activation {} has no HF name", show(&found));
                    Err(vec![Problem::at_fast_llm("activation", message)])
                }
            }
        },
        move |hf, _| match hf.get(name).and_then(|found| match found {
            Value::Str(found) => fast_llm_name(found),
            _ => None,
        }) {
            Some(activation) => Ok(vec![("activation".into(), text(activation.as_str()))]),
            None => Err(vec![Problem::at_hf(
                name,
                format!(
                    "unsupported activation {} (supported: {}, gelu)",
                    hf.get(name).map(show).unwrap_or_else(|| "nothing".into()),
                    NAMES.iter().map(|(_, hf)| *hf).collect::<Vec<_>>().join(", ")
                ),
            )]),
        },
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case(ActivationType::Gelu, "gelu_pytorch_tanh")]
    #[case(ActivationType::SquaredRelu, "relu2")]
    #[case(ActivationType::Silu, "silu")]
    fn names_map_both_ways(#[case] fast_llm: ActivationType, #[case] hf: &str) {
        assert_eq!(hf_name(fast_llm), Some(hf));
        assert_eq!(fast_llm_name(hf), Some(fast_llm));
    }

    #[test]
    fn exact_gelu_reads_as_tanh_gelu_and_unknown_names_are_none() {
        assert_eq!(fast_llm_name("gelu"), Some(ActivationType::Gelu));
        assert_eq!(fast_llm_name("gelu_new"), None);
    }

    #[test]
    fn every_fast_llm_activation_has_an_hf_name() {
        for value in ActivationType::VALUES {
            let activation = ActivationType::from_value(value).unwrap();
            assert!(hf_name(activation).is_some(), "{activation}");
        }
    }
}
