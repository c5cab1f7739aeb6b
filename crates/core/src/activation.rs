//! Activation names: Fast-LLM's ↔ transformers' (`ACT2FN` keys), one table for every format.

use fastllm_config::Value;

use crate::Claims;
use crate::Problem;
use crate::dict::show;
use crate::section::Decl;
use crate::values::text;

/// Fast-LLM name ↔ HF name. HF `gelu` (the exact GELU) is also read, as Fast-LLM's tanh GELU, as
/// Fast-LLM does.
const NAMES: &[(&str, &str)] = &[
    ("gelu", "gelu_pytorch_tanh"),
    ("silu", "silu"),
    ("relu", "relu"),
    ("squared_relu", "relu2"),
    ("identity", "identity"),
    ("sigmoid", "sigmoid"),
];

/// The HF name of a Fast-LLM activation.
pub fn hf_name(fast_llm: &str) -> Option<&'static str> {
    NAMES.iter().find(|(f, _)| *f == fast_llm).map(|(_, hf)| *hf)
}

/// The Fast-LLM activation an HF name reads as.
pub fn fast_llm_name(hf: &str) -> Option<&'static str> {
    if hf == "gelu" {
        return Some("gelu");
    }
    NAMES.iter().find(|(_, h)| *h == hf).map(|(f, _)| *f)
}

/// The section's `activation` ↔ the HF activation name under `key` (`hidden_act`,
/// `hidden_activation`, `projector_hidden_act`, ...): a value mapping, hence a Custom.
pub fn activation(key: &'static [&'static str; 1]) -> Decl {
    let name = key[0];
    Decl::custom(
        Claims::exact(&["activation"], key),
        move |fl, _| match fl.value("activation")? {
            Value::Str(a) if hf_name(&a).is_some() => {
                Ok(vec![(name.to_string(), text(hf_name(&a).unwrap_or_default())).into()])
            }
            other => Err(vec![Problem::at_fast_llm(
                "activation",
                format!("activation {} has no HF name", show(&other)),
            )]),
        },
        move |hf, _| match hf.get(name) {
            Some(Value::Str(a)) if fast_llm_name(a).is_some() => {
                Ok(vec![("activation".into(), text(fast_llm_name(a).unwrap_or_default()))])
            }
            other => Err(vec![Problem::at_hf(
                name,
                format!(
                    "unsupported activation {} (supported: {}, gelu)",
                    other.map(show).unwrap_or_else(|| "nothing".into()),
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
    #[case("gelu", "gelu_pytorch_tanh")]
    #[case("squared_relu", "relu2")]
    #[case("silu", "silu")]
    fn names_map_both_ways(#[case] fast_llm: &str, #[case] hf: &str) {
        assert_eq!(hf_name(fast_llm), Some(hf));
        assert_eq!(fast_llm_name(hf), Some(fast_llm));
    }

    #[test]
    fn exact_gelu_reads_as_tanh_gelu_and_unknown_names_are_none() {
        assert_eq!(fast_llm_name("gelu"), Some("gelu"));
        assert_eq!(fast_llm_name("gelu_new"), None);
        assert_eq!(hf_name("swish"), None);
    }
}
